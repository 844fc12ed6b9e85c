//! Judging a campaign's history: per-key register linearizability (Wing & Gong's search
//! with memoisation, written for this harness so the verdict does not depend on the code
//! under test or on `petrel-check`), acknowledged writes lost after heal, and the
//! duplication's difference.
//!
//! An operation whose call ended in an error (a timeout, a refusal after the retry
//! budget) has an unknown outcome: a write may have taken effect at any time after its
//! invocation, or never; a read constrains nothing and is left out.
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    Put(String),
    Del,
    Get,
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// A write acknowledged at this time (µs since the campaign's start).
    Written(u64),
    /// A read answered at this time with this value.
    Read(u64, Option<String>),
    /// An error or no answer: the effect is unknown.
    Unknown(String),
}

/// One client operation of the history.
#[derive(Clone, Debug, Serialize)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub act: Act,
    pub invoke_us: u64,
    pub end: End,
    /// One of the final reads after heal (not part of the workload's counts).
    pub final_read: bool,
}

impl Op {
    fn ret_us(&self) -> Option<u64> {
        match &self.end {
            End::Written(t) | End::Read(t, _) => Some(*t),
            End::Unknown(_) => None,
        }
    }
    pub fn acked_write(&self) -> bool {
        matches!(self.end, End::Written(_)) && self.act != Act::Get
    }
}

/// States visited per key before the search gives up (then the verdict is
/// inconclusive, which fails the campaign: never a pass).
pub const MAX_STATES: usize = 1_000_000;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Lin {
    Yes,
    /// The keys with no linearization, with a description.
    No(Vec<String>),
    /// The search ran out of budget on these keys.
    Inconclusive(Vec<String>),
}

impl Lin {
    pub fn ok(&self) -> bool {
        *self == Lin::Yes
    }
    pub fn short(&self) -> &'static str {
        match self {
            Lin::Yes => "yes",
            Lin::No(_) => "NO",
            Lin::Inconclusive(_) => "??",
        }
    }
}

/// Group by key, in invocation order.
fn by_key(ops: &[Op]) -> BTreeMap<&str, Vec<&Op>> {
    let mut m: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        m.entry(op.key.as_str()).or_default().push(op);
    }
    for v in m.values_mut() {
        v.sort_by_key(|o| o.invoke_us);
    }
    m
}

/// Is the history of per-key registers linearizable?
pub fn linearizable(ops: &[Op]) -> Lin {
    let mut bad = Vec::new();
    let mut unknown = Vec::new();
    for (key, ops) in by_key(ops) {
        match check_key(&ops) {
            KeyResult::Ok => {}
            KeyResult::Violation(why) => bad.push(format!("key {key}: {why}")),
            KeyResult::Budget => unknown.push(format!("key {key}: search budget exhausted")),
        }
    }
    if !bad.is_empty() {
        Lin::No(bad)
    } else if !unknown.is_empty() {
        Lin::Inconclusive(unknown)
    } else {
        Lin::Yes
    }
}

enum KeyResult {
    Ok,
    Violation(String),
    Budget,
}

fn check_key(all: &[&Op]) -> KeyResult {
    // Reads with unknown outcome constrain nothing.
    let ops: Vec<&Op> = all
        .iter()
        .copied()
        .filter(|o| !(o.act == Act::Get && matches!(o.end, End::Unknown(_))))
        .collect();
    let n = ops.len();
    if n == 0 {
        return KeyResult::Ok;
    }
    // Values by index: 0 = absent, i + 1 = the value of op i (a put).
    let value_of = |i: usize| -> u32 { (i + 1) as u32 };
    let mut put_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, o) in ops.iter().enumerate() {
        if let Act::Put(v) = &o.act {
            put_of.insert(v.as_str(), i);
        }
    }
    // A read of a value no put wrote is a violation on its own.
    for o in &ops {
        if let End::Read(_, Some(v)) = &o.end {
            if !put_of.contains_key(v.as_str()) {
                return KeyResult::Violation(format!(
                    "a read at {} µs returned {v:?}, which no put wrote",
                    o.invoke_us
                ));
            }
        }
    }
    let expect: Vec<Option<u32>> = ops
        .iter()
        .map(|o| match &o.end {
            End::Read(_, None) => Some(0),
            End::Read(_, Some(v)) => put_of.get(v.as_str()).map(|i| value_of(*i)),
            _ => None,
        })
        .collect();
    let words = n.div_ceil(64);
    let definite: Vec<bool> = ops.iter().map(|o| o.ret_us().is_some()).collect();
    let must = definite.iter().filter(|d| **d).count();
    let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, u32, usize)> = vec![(vec![0; words], 0, 0)];
    seen.insert((vec![0; words], 0));
    let mut deepest = 0usize;
    while let Some((done, value, count)) = stack.pop() {
        if count == must {
            return KeyResult::Ok;
        }
        if seen.len() > MAX_STATES {
            return KeyResult::Budget;
        }
        let has = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // The earliest return among the definite operations not yet linearized: nothing
        // invoked after it may go next.
        let horizon = (0..n)
            .filter(|i| !has(*i))
            .filter_map(|i| ops[i].ret_us())
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..n {
            if has(i) || ops[i].invoke_us > horizon {
                continue;
            }
            let next = match &ops[i].act {
                Act::Put(_) => value_of(i),
                Act::Del => 0,
                Act::Get => {
                    if expect[i] != Some(value) {
                        continue;
                    }
                    value
                }
            };
            let mut d = done.clone();
            d[i / 64] |= 1 << (i % 64);
            let c = count + usize::from(definite[i]);
            if seen.insert((d.clone(), next)) {
                deepest = deepest.max(c);
                stack.push((d, next, c));
            }
        }
    }
    KeyResult::Violation(format!(
        "no order of its {n} operations explains the results (at most {deepest} of {must} answered ones placed)"
    ))
}

/// Acknowledged writes that the final read of their key contradicts: every write that
/// could explain the value read had completed before the acknowledged write was
/// invoked. `finals`: the key's final read (None: the read failed). Returns the lost
/// writes and the keys whose final read failed.
pub fn lost_writes(ops: &[Op]) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let mut unread = Vec::new();
    for (key, ops) in by_key(ops) {
        let writes: Vec<&&Op> = ops
            .iter()
            .filter(|o| !o.final_read && o.act != Act::Get)
            .collect();
        let last = ops
            .iter()
            .rev()
            .find(|o| o.final_read && matches!(o.end, End::Read(..)));
        let Some(last) = last else {
            if ops.iter().any(|o| o.final_read) && writes.iter().any(|w| w.acked_write()) {
                unread.push(key.to_string());
            }
            continue;
        };
        let End::Read(_, value) = &last.end else {
            continue;
        };
        // Completion times of the writes that may explain `value` (None = never
        // completed: it may have taken effect at any time).
        let explain: Vec<Option<u64>> = match value {
            Some(v) => writes
                .iter()
                .filter(|w| w.act == Act::Put(v.clone()))
                .map(|w| w.ret_us())
                .collect(),
            None => std::iter::once(Some(0))
                .chain(
                    writes
                        .iter()
                        .filter(|w| w.act == Act::Del)
                        .map(|w| w.ret_us()),
                )
                .collect(),
        };
        for w in writes.iter().filter(|w| w.acked_write()) {
            let overwritten_before = explain
                .iter()
                .all(|e| e.is_some_and(|done| done < w.invoke_us));
            if overwritten_before {
                lost.push(format!(
                    "key {key}: {:?} acknowledged at {} µs, but the final read returned {value:?}",
                    w.act,
                    w.ret_us().unwrap_or(0)
                ));
            }
        }
    }
    (lost, unread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, act: Act, t0: u64, end: End) -> Op {
        Op {
            client: 0,
            key: key.into(),
            act,
            invoke_us: t0,
            end,
            final_read: false,
        }
    }
    fn put(v: &str, t0: u64, t1: u64) -> Op {
        op("k", Act::Put(v.into()), t0, End::Written(t1))
    }
    fn get(v: Option<&str>, t0: u64, t1: u64) -> Op {
        op("k", Act::Get, t0, End::Read(t1, v.map(str::to_string)))
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        let ok = vec![put("a", 0, 10), get(Some("a"), 20, 30), put("b", 40, 50)];
        assert_eq!(linearizable(&ok), Lin::Yes);
        // A stale read: b was acknowledged before the read began.
        let stale = vec![put("a", 0, 10), put("b", 20, 30), get(Some("a"), 40, 50)];
        assert!(matches!(linearizable(&stale), Lin::No(_)));
        // Concurrent with b's put, either value is fine.
        let conc = vec![put("a", 0, 10), put("b", 20, 60), get(Some("a"), 30, 50)];
        assert_eq!(linearizable(&conc), Lin::Yes);
        // A read of a value nobody wrote.
        assert!(matches!(linearizable(&[get(Some("z"), 0, 1)]), Lin::No(_)));
        // An unknown write may happen late, or never.
        let late = vec![
            op("k", Act::Put("a".into()), 0, End::Unknown("timeout".into())),
            get(None, 10, 20),
            get(Some("a"), 100, 110),
        ];
        assert_eq!(linearizable(&late), Lin::Yes);
        // …but not un-happen.
        let flip = vec![
            op("k", Act::Put("a".into()), 0, End::Unknown("timeout".into())),
            get(Some("a"), 10, 20),
            get(None, 100, 110),
        ];
        assert!(matches!(linearizable(&flip), Lin::No(_)));
        // Deletes.
        let del = vec![
            put("a", 0, 10),
            op("k", Act::Del, 20, End::Written(30)),
            get(None, 40, 50),
        ];
        assert_eq!(linearizable(&del), Lin::Yes);
    }

    #[test]
    fn many_concurrent_operations_check_quickly() {
        let mut ops = Vec::new();
        for i in 0..400u64 {
            let t = i * 10;
            ops.push(put(&format!("v{i}"), t, t + 35));
            ops.push(get(Some(&format!("v{i}")), t + 36, t + 60));
        }
        let started = std::time::Instant::now();
        assert_eq!(linearizable(&ops), Lin::Yes);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn lost_writes_are_found() {
        let mut fin = get(Some("a"), 100, 110);
        fin.final_read = true;
        let h = vec![put("a", 0, 10), put("b", 20, 30), fin.clone()];
        let (lost, unread) = lost_writes(&h);
        assert_eq!((lost.len(), unread.len()), (1, 0), "{lost:?}");
        // b's put unknown: not counted (it may never have happened).
        let h = vec![
            put("a", 0, 10),
            op("k", Act::Put("b".into()), 20, End::Unknown("t".into())),
            fin.clone(),
        ];
        assert_eq!(lost_writes(&h).0.len(), 0);
        // Concurrent writes: either may win.
        let h = vec![put("a", 0, 40), put("b", 20, 30), fin];
        assert_eq!(lost_writes(&h).0.len(), 0);
        // Absent after an acknowledged put and no delete: lost.
        let mut none = get(None, 100, 110);
        none.final_read = true;
        assert_eq!(lost_writes(&[put("a", 5, 10), none.clone()]).0.len(), 1);
        // …unless a delete may have come after it.
        let h = vec![
            put("a", 5, 10),
            op("k", Act::Del, 7, End::Unknown("t".into())),
            none,
        ];
        assert_eq!(lost_writes(&h).0.len(), 0);
    }
}
