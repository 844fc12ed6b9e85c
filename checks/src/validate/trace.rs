//! A real run as a `petrel-trace/1` file (`docs/trace-format.md`), so the viewer shows
//! it with the same lanes, diffs and search as a model counterexample: one lane per
//! logged node (named by its real id), one step per replayed event, each label starting
//! with the event's wall-clock time. Only a window of steps is kept (the ones before the
//! first violation, or the end of the run): every step holds every node's whole state.
use crate::petrel::json;
use crate::trace::{Actor, Property, PropertyKind, Schema, Send, States, Step, StepKind, Trace};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// One replayed step, ready for the trace.
pub struct TraceStep {
    pub kind: StepKind,
    pub actor: usize,
    pub src: Option<usize>,
    pub msg_kind: String,
    pub label: String,
    pub sends: Vec<Send>,
    /// The mover's state after the step.
    pub state: Value,
}

/// The last `window` steps, and every lane's state before the first of them.
pub struct Recorder {
    pub window: usize,
    pub names: Vec<(String, String, String)>,
    base: Vec<Value>,
    kept: VecDeque<TraceStep>,
    /// Steps dropped from the front (so kept step k is run step `dropped + k + 1`).
    pub dropped: usize,
    pub frozen: bool,
}

pub fn state_json<T: serde::Serialize>(v: &T) -> Value {
    json::to_value(v).unwrap_or_else(|e| json!({ "(not serialisable)": e.to_string() }))
}

impl Recorder {
    pub fn new(window: usize, names: Vec<(String, String, String)>) -> Recorder {
        let n = names.len();
        Recorder {
            window: window.max(1),
            names,
            base: vec![json!(null); n],
            kept: VecDeque::new(),
            dropped: 0,
            frozen: false,
        }
    }

    pub fn push(&mut self, step: TraceStep) {
        if self.frozen {
            return;
        }
        if self.kept.len() == self.window {
            if let Some(old) = self.kept.pop_front() {
                self.base[old.actor] = old.state;
                self.dropped += 1;
            }
        }
        self.kept.push_back(step);
    }

    /// The trace document; `property` is (id, name) of the violated property, if any.
    pub fn document(&self, scenario: &str, property: Option<(&str, &str)>) -> Trace {
        let actors = self
            .names
            .iter()
            .enumerate()
            .map(|(i, (name, role, cluster))| Actor {
                id: i,
                name: name.clone(),
                role: Some(role.clone()),
                cluster: Some(cluster.clone()),
            })
            .collect();
        let mut current = self.base.clone();
        let crashed = vec![false; current.len()];
        let initial = States {
            actors: current.clone(),
            crashed: crashed.clone(),
        };
        let steps = self
            .kept
            .iter()
            .enumerate()
            .map(|(k, s)| {
                current[s.actor] = s.state.clone();
                Step {
                    index: k + 1,
                    kind: s.kind,
                    actor: s.actor,
                    src: s.src,
                    msg_kind: Some(s.msg_kind.clone()),
                    label: s.label.clone(),
                    sends: Some(s.sends.clone()),
                    actors: current.clone(),
                    crashed: crashed.clone(),
                }
            })
            .collect();
        let (id, name) = property.unwrap_or(("REAL-RUN", "real run (no violation)"));
        Trace {
            schema: Schema,
            scenario: scenario.to_string(),
            mutant: None,
            property: Property {
                id: id.to_string(),
                name: name.to_string(),
                kind: PropertyKind::Always,
            },
            actors,
            initial,
            steps,
            loop_start: None,
            explorer_path: None,
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub fn clock(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let s = unix_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run's window reads back through the viewer's reader, with the states before
    /// the window (here none) as `null`.
    #[test]
    fn a_recorded_window_is_a_valid_trace() {
        let names = vec![
            ("meta-1".into(), "meta".into(), String::new()),
            (
                "replica-2".into(),
                "replica".into(),
                "cluster of meta 1".into(),
            ),
        ];
        let mut rec = Recorder::new(2, names);
        for (k, actor) in [0, 1, 1].into_iter().enumerate() {
            rec.push(TraceStep {
                kind: if k == 0 {
                    StepKind::Recover
                } else {
                    StepKind::Deliver
                },
                actor,
                src: (k > 0).then_some(0),
                msg_kind: "Beacon".into(),
                label: format!("[{}] step {k}", clock(1_000 * k as u64)),
                sends: vec![Send {
                    dst: 1 - actor,
                    msg_kind: Some("Beacon".into()),
                    label: Some("Beacon { .. }".into()),
                }],
                state: json!({ "k": k }),
            });
        }
        let doc = rec.document("real run: /tmp/x", Some(("SAFE-1", "SAFE-1 one-primary")));
        let text = serde_json::to_string(&doc).unwrap();
        let back = Trace::parse(&text).expect("valid petrel-trace/1");
        assert_eq!(back, doc);
        assert_eq!(back.steps.len(), 2);
        assert_eq!(back.initial.actors, vec![json!({ "k": 0 }), Value::Null]);
        assert_eq!(back.property.id, "SAFE-1");
    }
}
