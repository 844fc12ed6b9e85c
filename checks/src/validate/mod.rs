//! `petrel-check validate`: trace validation of a real run of `petrel`.
//!
//! 1. **Conformance** (`replay.rs`): each node's recorded inputs are replayed through the
//!    unchanged core actor and every recorded output must equal the replayed one; the
//!    driver's durable writes, sends and timers are checked against the replayed commands
//!    (persist-before-send among them).
//! 2. **Global properties** (`props.rs`): the logs are merged by happens-before
//!    (`merge.rs`) and the SAFE properties meaningful on a real run are judged after every
//!    step on the replayed states.
//! 3. **Linearizability** (`linearize.rs`) of the clients' recorded history (`history.rs`),
//!    per key, against SAFE-7's sequential map.
//!
//! Verdict: 0 everything holds on complete logs; 1 a violation (with what and where); 2
//! the logs are incomplete or unreadable, or the linearizability search gave up — never a
//! pass.
pub mod history;
pub mod linearize;
pub mod log;
pub mod merge;
pub mod props;
pub mod replay;
pub mod trace;

pub use replay::value_hash;

use crate::trace::{Send as TraceSend, StepKind};
use log::{Input, Item, NodeLog};
use petrel_core::{Msg, Node, NodeState};
use replay::{Fault, Replayer};
use serde_json::{json, Value};
use stateright::actor::{Command, Out};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// History files besides the ones found under the directories.
    pub histories: Vec<PathBuf>,
    /// Write the run (a window of it) as petrel-trace/1.
    pub trace_out: Option<PathBuf>,
    /// Steps kept for `trace_out`.
    pub trace_window: usize,
}

#[derive(Clone, Debug)]
pub struct NodeSummary {
    pub id: u64,
    pub role: String,
    pub path: PathBuf,
    pub lives: usize,
    pub events: u64,
}

#[derive(Clone, Debug, Default)]
pub struct LinSummary {
    pub files: usize,
    pub ops: usize,
    pub keys: usize,
    /// Operations on follower tables (copies of another cluster's table), not judged.
    pub skipped: usize,
    pub violations: Vec<String>,
    pub inconclusive: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub nodes: Vec<NodeSummary>,
    /// Why the run cannot be judged in full.
    pub incomplete: Vec<String>,
    /// Conformance and persist-before-send violations, and deliveries never sent.
    pub conformance: Vec<String>,
    /// (id, name, first violation).
    pub properties: Vec<(String, String, Option<String>)>,
    pub lin: LinSummary,
    /// Properties were judged up to this step only: there a node's replay stopped (its
    /// later states are unknown, so judging them would report its frozen state).
    pub props_until: Option<usize>,
    pub steps: usize,
    pub events: u64,
    pub seconds: f64,
    pub trace_written: Option<PathBuf>,
}

impl Report {
    pub fn violated(&self) -> bool {
        !self.conformance.is_empty()
            || self.properties.iter().any(|p| p.2.is_some())
            || !self.lin.violations.is_empty()
    }

    /// 0 all hold; 1 a violation; 2 incomplete, unreadable or inconclusive.
    pub fn exit_code(&self) -> u8 {
        if self.violated() {
            1
        } else if !self.incomplete.is_empty()
            || !self.lin.inconclusive.is_empty()
            || self.nodes.is_empty()
        {
            2
        } else {
            0
        }
    }

    pub fn text(&self) -> String {
        let mut t = String::new();
        for n in &self.nodes {
            t += &format!(
                "node {:>4} {:<8} {} lives, {} events replayed  ({})\n",
                n.id,
                n.role,
                n.lives,
                n.events,
                n.path.display()
            );
        }
        for c in &self.conformance {
            t += &format!("CONFORMANCE violated: {c}\n");
        }
        let upto = self
            .props_until
            .map(|k| format!(" up to step {k}, where a node's replay stopped"))
            .unwrap_or_default();
        for (id, name, v) in &self.properties {
            match v {
                None => t += &format!("{id} {name}: holds{upto}\n"),
                Some(why) => t += &format!("{id} {name}: VIOLATED — {why}\n"),
            }
        }
        let l = &self.lin;
        if l.files == 0 {
            t += "SAFE-7 linearizable: no client history given (not judged)\n";
        } else if l.violations.is_empty() && l.inconclusive.is_empty() {
            t += &format!("SAFE-7 linearizable: holds ({} operations on {} keys, {} on follower tables not judged)\n", l.ops, l.keys, l.skipped);
        }
        for v in &l.violations {
            t += &format!("SAFE-7 linearizable: VIOLATED — {v}\n");
        }
        for v in &l.inconclusive {
            t += &format!("SAFE-7 linearizable: inconclusive — {v}\n");
        }
        for i in &self.incomplete {
            t += &format!("INCOMPLETE: {i}\n");
        }
        let rate = self.events as f64 / self.seconds.max(1e-6);
        t += &format!(
            "{} steps ({} events) validated in {:.2} s ({:.0} events/s)\n",
            self.steps, self.events, self.seconds, rate
        );
        if let Some(p) = &self.trace_written {
            t += &format!("trace written to {}\n", p.display());
        }
        t += match self.exit_code() {
            0 => "verdict: the run conforms and every property holds\n",
            1 => "verdict: VIOLATION\n",
            _ => "verdict: INCOMPLETE (not a pass)\n",
        };
        t
    }

    pub fn json(&self) -> Value {
        json!({
            "exit": self.exit_code(),
            "nodes": self.nodes.iter().map(|n| json!({"id": n.id, "role": n.role, "path": n.path, "lives": n.lives, "events": n.events})).collect::<Vec<_>>(),
            "conformance": self.conformance,
            "properties": self.properties.iter().map(|(id, name, v)| json!({"id": id, "name": name, "holds": v.is_none(), "violation": v})).collect::<Vec<_>>(),
            "linearizability": {"files": self.lin.files, "ops": self.lin.ops, "keys": self.lin.keys, "skipped_follower_ops": self.lin.skipped,
                                "violations": self.lin.violations, "inconclusive": self.lin.inconclusive},
            "incomplete": self.incomplete,
            "properties_judged_until_step": self.props_until,
            "steps": self.steps,
            "events": self.events,
            "seconds": self.seconds,
        })
    }
}

fn role_of(actor: &Value) -> &'static str {
    if actor.get("Meta").is_some() {
        "meta"
    } else if actor.get("Replica").is_some() {
        "replica"
    } else {
        "client"
    }
}

fn kind_of(msg: &Value) -> String {
    match msg {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// A replayed event: its commands, trace kind, sender lane, message kind, description.
type Moved = (Out<Node>, StepKind, Option<usize>, String, String);

/// Validate the run whose node data directories (or a parent of them) are `dirs`.
pub fn validate(dirs: &[PathBuf], opts: &Options) -> Report {
    let began = Instant::now();
    let mut report = Report::default();
    let mut logs: Vec<NodeLog> = Vec::new();
    let mut history_files = opts.histories.clone();
    for d in dirs {
        match log::find_logs(d) {
            Ok(found) if found.is_empty() => {
                report
                    .incomplete
                    .push(format!("{}: no {} under it", d.display(), log::FILE_NAME))
            }
            Ok(found) => {
                for p in found {
                    match log::read(&p) {
                        Ok(l) => logs.push(l),
                        Err(e) => {
                            report
                                .incomplete
                                .push(format!("{}: {}", e.path.display(), e.why))
                        }
                    }
                }
            }
            Err(e) => report
                .incomplete
                .push(format!("{}: cannot list: {e}", d.display())),
        }
        match history::find(d) {
            Ok(h) => history_files.extend(h),
            Err(e) => report
                .incomplete
                .push(format!("{}: cannot list: {e}", d.display())),
        }
    }
    history_files.sort();
    history_files.dedup();
    // One node's lives may be in two files: a replaced disk takes its log with it, and
    // the operator may keep the old disk's log elsewhere. Lives join in time order; two
    // files whose lives interleave are two runs, not one node's history.
    logs.sort_by_key(|l| (l.id, l.lives.first().map_or(0, |v| v.start.unix_ms)));
    let mut joined: Vec<NodeLog> = Vec::new();
    for l in logs {
        match joined.last_mut() {
            Some(prev) if prev.id == l.id => {
                let prev_last = prev.lives.last().map_or(0, |v| v.start.unix_ms);
                let next_first = l.lives.first().map_or(0, |v| v.start.unix_ms);
                let prev_lives: Vec<u32> = prev.lives.iter().map(|v| v.start.incarnation).collect();
                let overlap = next_first <= prev_last
                    || l.lives.iter().any(|v| {
                        v.start.incarnation != 0 && prev_lives.contains(&v.start.incarnation)
                    });
                if overlap {
                    report.incomplete.push(format!(
                        "node {} has two logs from one time ({} and {}): give each run's directories once",
                        l.id,
                        prev.path.display(),
                        l.path.display()
                    ));
                } else {
                    prev.lives.extend(l.lives);
                }
            }
            _ => joined.push(l),
        }
    }
    let logs = joined;
    for l in &logs {
        let role = role_of(&l.lives[0].start.actor).to_string();
        report.nodes.push(NodeSummary {
            id: l.id,
            role,
            path: l.path.clone(),
            lives: l.lives.len(),
            events: 0,
        });
    }

    let mut reps: Vec<Replayer> = logs.iter().map(|l| Replayer::new(l.id)).collect();
    let mut props = props::Props::default();
    let mut recorder = opts.trace_out.as_ref().map(|_| {
        let names = logs
            .iter()
            .map(|l| {
                let role = role_of(&l.lives[0].start.actor);
                // A cluster is named by its meta server's id.
                let actor = &l.lives[0].start.actor;
                let meta = if role == "meta" {
                    Some(l.id)
                } else {
                    actor
                        .get("Replica")
                        .and_then(|r| r.get("meta"))
                        .and_then(Value::as_u64)
                };
                let cluster = meta
                    .map(|m| format!("cluster of meta {m}"))
                    .unwrap_or_default();
                (format!("{role}-{}", l.id), role.to_string(), cluster)
            })
            .collect();
        trace::Recorder::new(opts.trace_window.max(1), names)
    });
    let index_of: BTreeMap<u64, usize> = logs.iter().enumerate().map(|(i, l)| (l.id, i)).collect();
    match merge::merge(&logs) {
        Err(e) => report.incomplete.push(e),
        Ok(merged) => {
            report.conformance.extend(merged.unmatched.iter().cloned());
            let mut stopped = vec![false; logs.len()];
            for (k, step) in merged.order.iter().enumerate() {
                let n = step.node;
                if stopped[n] {
                    continue;
                }
                let life = &logs[n].lives[step.life];
                let time = life.start.unix_ms + step.item.map(|i| life.items[i].ms()).unwrap_or(0);
                let result: Result<Option<Moved>, Fault> = match step.item {
                    None => reps[n].start(life).map(|o| {
                        let label = format!(
                            "start, life {} (incarnation {})",
                            step.life + 1,
                            life.start.incarnation
                        );
                        Some((o, StepKind::Recover, None, "start".to_string(), label))
                    }),
                    Some(i) => match &life.items[i] {
                        Item::Event {
                            seq, input, out, ..
                        } => reps[n].event(*seq, input, out).map(|o| {
                            let (kind, src, msg_kind, what) = match input {
                                Input::Msg { src, msg } => {
                                    let kind = if msg.get("PeerDown").is_some()
                                        || !index_of.contains_key(src)
                                    {
                                        StepKind::Env
                                    } else {
                                        StepKind::Deliver
                                    };
                                    let from = index_of
                                        .get(src)
                                        .copied()
                                        .filter(|_| kind == StepKind::Deliver);
                                    (
                                        kind,
                                        from,
                                        kind_of(msg),
                                        format!("{} from {src}", kind_of(msg)),
                                    )
                                }
                                Input::Timer(t) => (
                                    StepKind::Timeout,
                                    None,
                                    kind_of(t),
                                    format!("timer {}", kind_of(t)),
                                ),
                            };
                            Some((o, kind, src, msg_kind, what))
                        }),
                        Item::Durable { upto, hash, .. } => {
                            reps[n].durable(*upto, hash).map(|_| None)
                        }
                        Item::Sent { upto, .. } => reps[n].sent(*upto).map(|_| None),
                    },
                };
                match result {
                    Ok(None) => {}
                    Ok(Some((out, kind, src, msg_kind, what))) => {
                        report.events += 1;
                        if report.props_until.is_none() {
                            props.observe(k, n, &reps, &out);
                        }
                        if let Some(rec) = recorder.as_mut() {
                            let sends = out
                                .iter()
                                .filter_map(|c| match c {
                                    Command::Send(dst, m) => {
                                        let d = usize::from(*dst) as u64;
                                        index_of.get(&d).map(|&dst| TraceSend {
                                            dst,
                                            msg_kind: Some(m.kind().to_string()),
                                            label: Some(label_of(m)),
                                        })
                                    }
                                    _ => None,
                                })
                                .collect();
                            let state = reps[n]
                                .state
                                .as_ref()
                                .map(trace::state_json)
                                .unwrap_or(Value::Null);
                            let label = format!("[{}] {what}", trace::clock(time));
                            rec.push(trace::TraceStep {
                                kind,
                                actor: n,
                                src,
                                msg_kind,
                                label,
                                sends,
                                state,
                            });
                            if !props.violations.is_empty() {
                                rec.frozen = true;
                            }
                        }
                    }
                    Err(Fault::Violation(v)) => {
                        report.conformance.push(v);
                        stopped[n] = true;
                        report.props_until.get_or_insert(k + 1);
                        if let Some(rec) = recorder.as_mut() {
                            rec.frozen = true;
                        }
                    }
                    Err(Fault::Incomplete(v)) => {
                        report.incomplete.push(v);
                        stopped[n] = true;
                        report.props_until.get_or_insert(k + 1);
                    }
                }
            }
            report.steps = merged.order.len();
        }
    }
    for (s, r) in report.nodes.iter_mut().zip(&reps) {
        s.events = r.events;
    }
    for (id, name) in props::REAL {
        let v = props
            .violations
            .get(id)
            .map(|v| format!("{} (at step {}, node {})", v.detail, v.step + 1, v.node));
        report
            .properties
            .push((id.to_string(), name.to_string(), v));
    }

    // Follower tables are copies of another cluster's table: not objects of their own.
    let mut followers: HashSet<(u64, u8)> = HashSet::new();
    for r in &reps {
        if let Some(NodeState::Meta(m)) = &r.state {
            followers.extend(m.followers.keys().map(|t| (r.id, *t)));
        }
    }
    report.lin.files = history_files.len();
    if !history_files.is_empty() {
        match history::read(&history_files) {
            Err(e) => report
                .incomplete
                .push(format!("client history unreadable: {e}")),
            Ok(calls) => {
                report.lin.skipped = calls
                    .iter()
                    .filter(|c| followers.contains(&(c.meta, c.table)))
                    .count();
                let verdicts = linearize::check(&calls, &followers);
                report.lin.ops = verdicts.iter().map(|v| v.ops).sum();
                report.lin.keys = verdicts.len();
                for v in verdicts {
                    let name = format!(
                        "key {} (table {} of the cluster of meta {})",
                        v.key.to_text(),
                        v.table,
                        v.meta
                    );
                    match v.outcome {
                        linearize::Outcome::Linearizable => {}
                        linearize::Outcome::Violation(why) => {
                            report.lin.violations.push(format!("{name}: {why}"))
                        }
                        linearize::Outcome::Inconclusive => report.lin.inconclusive.push(format!(
                            "{name}: the search passed {} states",
                            linearize::MAX_STATES
                        )),
                    }
                }
            }
        }
    }
    report.seconds = began.elapsed().as_secs_f64();

    if let (Some(path), Some(rec)) = (&opts.trace_out, &recorder) {
        let first = props.violations.values().min_by_key(|v| v.step);
        let prop = first.map(|v| {
            let name = props::REAL
                .iter()
                .find(|(id, _)| *id == v.property)
                .map(|(_, n)| *n)
                .unwrap_or("");
            (v.property, name)
        });
        let full_names: Option<String> = prop.map(|(id, name)| format!("{id} {name}"));
        let scenario = format!(
            "real run: {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let doc = rec.document(&scenario, prop.map(|(id, _)| id).zip(full_names.as_deref()));
        match serde_json::to_vec(&doc)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(path, b).map_err(|e| e.to_string()))
        {
            Ok(()) => report.trace_written = Some(path.clone()),
            Err(e) => report
                .incomplete
                .push(format!("cannot write {}: {e}", path.display())),
        }
    }
    report
}

/// A one-line description of a message for the trace's send list.
fn label_of(m: &Msg) -> String {
    let s = format!("{m:?}");
    if s.len() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}
