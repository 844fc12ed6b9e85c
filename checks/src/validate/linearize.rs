//! Linearizability of a real client history against the sequential key-value map that
//! SAFE-7 uses in the model (`petrel_spec::kv::Kv`).
//!
//! P-compositionality: a map's operations on different keys commute, so the history is
//! linearizable iff each key's sub-history is; each key (of each cluster's table) is
//! searched alone. The search per key is Wing & Gong's, with Lowe's memoisation: a search
//! state is the set of operations linearized so far and the map, visited once. An
//! operation may go next iff no operation still open returned before it was invoked. The
//! set is kept as "all before index f" plus the few linearized beyond it,
//! so a state costs little to store even for thousands of operations.
//!
//! Unknown outcomes: a write that ended in an error (or whose process died) may or may
//! not have taken effect — it returns "at infinity", may be linearized anywhere after its
//! invocation, and need not be; a read that ended in an error constrains nothing and is
//! left out.
use super::history::Call;
use petrel_core::{ClientOp, Key};
use petrel_spec::kv::{Kv, KvRet};
use stateright::semantics::SequentialSpec;
use std::collections::{BTreeMap, HashSet};

/// States visited per key before giving up (the verdict is then "inconclusive", exit 2).
pub const MAX_STATES: usize = 2_000_000;

#[derive(Clone, Debug)]
pub struct KeyVerdict {
    pub meta: u64,
    pub table: u8,
    pub key: Key,
    pub ops: usize,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Linearizable,
    /// No order explains the results; the report names the operations.
    Violation(String),
    /// The search hit [`MAX_STATES`].
    Inconclusive,
}

struct Op<'a> {
    call: &'a Call,
    ret_us: u64,
    /// `None`: unknown outcome (a write that may or may not have happened).
    ret: Option<KvRet>,
}

#[derive(Clone, PartialEq)]
struct State(Kv);
impl Eq for State {}
impl std::hash::Hash for State {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

/// Linearized operations: every index below `first`, and `extra` (sorted, all > first).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Done {
    first: u32,
    extra: Vec<u32>,
}

impl Done {
    fn has(&self, i: u32) -> bool {
        i < self.first || self.extra.binary_search(&i).is_ok()
    }
    fn with(&self, i: u32) -> Done {
        let mut d = self.clone();
        if i == d.first {
            d.first += 1;
            while d.extra.first() == Some(&d.first) {
                d.extra.remove(0);
                d.first += 1;
            }
        } else if let Err(p) = d.extra.binary_search(&i) {
            d.extra.insert(p, i);
        }
        d
    }
}

fn key_of(op: &ClientOp) -> &Key {
    match op {
        ClientOp::Put(k, _) | ClientOp::Get(k) | ClientOp::Del(k) => k,
    }
}

fn describe(op: &Op) -> String {
    let what = match &op.call.op {
        ClientOp::Put(_, v) => format!("put {}", v.to_text()),
        ClientOp::Del(_) => "del".into(),
        ClientOp::Get(_) => "get".into(),
    };
    let result = match &op.ret {
        Some(KvRet::WriteOk) => "ok".into(),
        Some(KvRet::ReadOk(Some(v))) => format!("→ {}", v.to_text()),
        Some(KvRet::ReadOk(None)) => "→ absent".into(),
        None => "outcome unknown".into(),
    };
    let end = if op.ret_us == u64::MAX {
        "…".into()
    } else {
        op.ret_us.to_string()
    };
    format!(
        "call {} (pid {}) {what} {result}, [{} µs, {end} µs] ({})",
        op.call.call, op.call.pid, op.call.invoked_us, op.call.at
    )
}

/// Check every key of `calls`, skipping `(meta, table)` pairs in `skip` (follower
/// tables: copies of another cluster's table, not objects of their own).
pub fn check(calls: &[Call], skip: &HashSet<(u64, u8)>) -> Vec<KeyVerdict> {
    let mut by_key: BTreeMap<(u64, u8, Key), Vec<&Call>> = BTreeMap::new();
    for c in calls {
        if skip.contains(&(c.meta, c.table)) {
            continue;
        }
        by_key
            .entry((c.meta, c.table, key_of(&c.op).clone()))
            .or_default()
            .push(c);
    }
    by_key
        .into_iter()
        .map(|((meta, table, key), calls)| {
            let ops = calls.len();
            KeyVerdict {
                meta,
                table,
                key,
                ops,
                outcome: check_key(&calls),
            }
        })
        .collect()
}

fn check_key(calls: &[&Call]) -> Outcome {
    let mut ops: Vec<Op> = calls
        .iter()
        .filter_map(|c| {
            let definite = c
                .done
                .as_ref()
                .and_then(|(us, r)| Some((*us, KvRet::of(r)?)));
            match (definite, &c.op) {
                (Some((us, r)), _) => Some(Op {
                    call: c,
                    ret_us: us,
                    ret: Some(r),
                }),
                (None, ClientOp::Get(_)) => None,
                (None, _) => Some(Op {
                    call: c,
                    ret_us: u64::MAX,
                    ret: None,
                }),
            }
        })
        .collect();
    ops.sort_by_key(|o| (o.call.invoked_us, o.ret_us));
    let n = ops.len() as u32;
    let required = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut visited: HashSet<(Done, State)> = HashSet::new();
    let start = (
        Done {
            first: 0,
            extra: Vec::new(),
        },
        State(Kv::default()),
        0usize,
    );
    let mut stack = vec![start];
    // The deepest state reached, for the report.
    let mut deepest: (usize, Done, Kv) = (
        0,
        Done {
            first: 0,
            extra: Vec::new(),
        },
        Kv::default(),
    );
    while let Some((done, state, count)) = stack.pop() {
        if count >= required {
            return Outcome::Linearizable;
        }
        if count > deepest.0 || (count == deepest.0 && done.first > deepest.1.first) {
            deepest = (count, done.clone(), state.0.clone());
        }
        if visited.len() >= MAX_STATES {
            return Outcome::Inconclusive;
        }
        // The earliest return among the operations still open bounds who may go next.
        let mut min_ret = u64::MAX;
        let mut window = Vec::new();
        for i in done.first..n {
            let o = &ops[i as usize];
            // Invoked after an open operation returned: that one must go first.
            if o.call.invoked_us > min_ret {
                break;
            }
            if done.has(i) {
                continue;
            }
            window.push(i);
            min_ret = min_ret.min(o.ret_us);
        }
        for &i in window.iter().rev() {
            let o = &ops[i as usize];
            let mut next = state.0.clone();
            let ok = match &o.ret {
                Some(r) => next.is_valid_step(&o.call.op, r),
                None => next.is_valid_step(&o.call.op, &KvRet::WriteOk),
            };
            if !ok {
                continue;
            }
            let d = done.with(i);
            let c = count + usize::from(o.ret.is_some());
            if visited.insert((d.clone(), State(next.clone()))) {
                stack.push((d, State(next), c));
            }
        }
    }
    Outcome::Violation(report(&ops, &deepest.1, &deepest.2))
}

/// Why the deepest search state could not go on: the open operation that returned first
/// (it had to be linearized next or after one of the operations invoked before its
/// return), the value the map held, and those operations.
fn report(ops: &[Op], done: &Done, kv: &Kv) -> String {
    let open: Vec<usize> = (0..ops.len()).filter(|i| !done.has(*i as u32)).collect();
    let Some(&blocker) = open
        .iter()
        .filter(|i| ops[**i].ret.is_some())
        .min_by_key(|i| ops[**i].ret_us)
    else {
        return "no operation blocks (internal)".into();
    };
    let value =
        kv.0.values()
            .next()
            .map(|v| v.to_text())
            .unwrap_or_else(|| "absent".into());
    let candidates: Vec<String> = open
        .iter()
        .filter(|i| ops[**i].call.invoked_us < ops[blocker].ret_us && **i != blocker)
        .take(8)
        .map(|i| format!("    {}", describe(&ops[*i])))
        .collect();
    let last_writes: Vec<String> = (0..ops.len())
        .filter(|i| done.has(*i as u32) && !matches!(ops[*i].call.op, ClientOp::Get(_)))
        .rev()
        .take(3)
        .map(|i| format!("    {}", describe(&ops[i])))
        .collect();
    format!(
        "after {} operations in a valid order the key holds {value}, and\n    {}\ncannot be next: it contradicts that value, and no operation invoked before it returned makes it hold.\n  the last writes linearized before it:\n{}\n  operations concurrent with it:\n{}",
        done.first as usize + done.extra.len(),
        describe(&ops[blocker]),
        if last_writes.is_empty() { "    (none)".to_string() } else { last_writes.join("\n") },
        if candidates.is_empty() { "    (none)".to_string() } else { candidates.join("\n") },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::OpResult;

    fn call(n: u32, op: ClientOp, inv: u64, done: Option<(u64, OpResult)>) -> Call {
        Call {
            call: format!("1-{n}"),
            pid: 1,
            meta: 0,
            table: 1,
            op,
            invoked_us: inv,
            done,
            failed: None,
            at: format!("h:{n}"),
        }
    }

    fn verdict(calls: &[Call]) -> Outcome {
        let v = check(calls, &HashSet::new());
        v.into_iter()
            .map(|k| k.outcome)
            .find(|o| *o != Outcome::Linearizable)
            .unwrap_or(Outcome::Linearizable)
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        let ok = vec![
            call(1, ClientOp::put("k", "1"), 0, Some((10, OpResult::WriteOk))),
            call(
                2,
                ClientOp::get("k"),
                20,
                Some((30, OpResult::ReadOk(Some("1".into())))),
            ),
            // Concurrent put 2 and get: the get may see either value.
            call(
                3,
                ClientOp::put("k", "2"),
                40,
                Some((60, OpResult::WriteOk)),
            ),
            call(
                4,
                ClientOp::get("k"),
                45,
                Some((50, OpResult::ReadOk(Some("1".into())))),
            ),
            call(
                5,
                ClientOp::get("k"),
                70,
                Some((80, OpResult::ReadOk(Some("2".into())))),
            ),
            call(6, ClientOp::del("k"), 90, Some((95, OpResult::WriteOk))),
            call(
                7,
                ClientOp::get("k"),
                96,
                Some((99, OpResult::ReadOk(None))),
            ),
        ];
        assert_eq!(verdict(&ok), Outcome::Linearizable);
    }

    #[test]
    fn a_stale_read_is_caught_and_named() {
        let stale = vec![
            call(1, ClientOp::put("k", "1"), 0, Some((10, OpResult::WriteOk))),
            call(
                2,
                ClientOp::put("k", "2"),
                20,
                Some((30, OpResult::WriteOk)),
            ),
            call(
                3,
                ClientOp::get("k"),
                40,
                Some((50, OpResult::ReadOk(Some("1".into())))),
            ),
        ];
        match verdict(&stale) {
            Outcome::Violation(why) => {
                assert!(why.contains("call 1-3") && why.contains("→ 1"), "{why}")
            }
            o => panic!("not caught: {o:?}"),
        }
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let seen = vec![
            call(1, ClientOp::put("k", "1"), 0, None),
            call(
                2,
                ClientOp::get("k"),
                20,
                Some((30, OpResult::ReadOk(Some("1".into())))),
            ),
        ];
        assert_eq!(verdict(&seen), Outcome::Linearizable);
        let not_seen = vec![
            call(1, ClientOp::put("k", "1"), 0, None),
            call(
                2,
                ClientOp::get("k"),
                20,
                Some((30, OpResult::ReadOk(None))),
            ),
        ];
        assert_eq!(verdict(&not_seen), Outcome::Linearizable);
        // A read cannot see a write invoked after it returned.
        let future = vec![
            call(
                1,
                ClientOp::get("k"),
                0,
                Some((10, OpResult::ReadOk(Some("1".into())))),
            ),
            call(2, ClientOp::put("k", "1"), 20, None),
        ];
        assert!(matches!(verdict(&future), Outcome::Violation(_)));
    }

    #[test]
    fn thousands_of_concurrent_operations_check_quickly() {
        // 8 writers and readers on 4 keys, overlapping in time, consistent by construction:
        // each write takes effect at its invocation + 1, each read sees what was in effect
        // at its invocation + 2.
        let mut calls = Vec::new();
        let mut n = 0;
        let mut value: BTreeMap<u64, (u64, String)> = BTreeMap::new();
        for round in 0..1000u64 {
            for w in 0..8u64 {
                n += 1;
                let key = format!("k{}", (round + w) % 4);
                let inv = round * 100 + w * 7;
                if w % 2 == 0 {
                    let v = format!("{round}-{w}");
                    value.insert(inv + 1, (key.len() as u64, format!("{key}={v}")));
                    calls.push(call(
                        n,
                        ClientOp::put(key.as_str(), v.as_str()),
                        inv,
                        Some((inv + 30, OpResult::WriteOk)),
                    ));
                } else {
                    let seen = value
                        .range(..=inv + 2)
                        .rev()
                        .map(|(_, (_, kv))| kv)
                        .find(|kv| kv.starts_with(&format!("{key}=")))
                        .map(|kv| kv[key.len() + 1..].to_string());
                    let r = OpResult::ReadOk(seen.map(|s| s.as_str().into()));
                    calls.push(call(
                        n,
                        ClientOp::get(key.as_str()),
                        inv,
                        Some((inv + 30, r)),
                    ));
                }
            }
        }
        let t = std::time::Instant::now();
        assert_eq!(verdict(&calls), Outcome::Linearizable);
        assert!(
            t.elapsed().as_secs() < 10,
            "8,000 operations took {:?}",
            t.elapsed()
        );
    }
}
