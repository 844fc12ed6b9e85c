//! A real run as a `petrel-trace/1` file (`docs/trace-format.md`), so the viewer shows
//! it with the same lanes, diffs and search as a model counterexample: one lane per
//! logged node (named by its real id), one step per replayed event, each label starting
//! with the event's wall-clock time. Only a window of steps is kept (the ones before the
//! first violation, or the end of the run): every step holds every node's whole state.
use crate::petrel::json;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// One replayed step, ready for the trace.
pub struct TraceStep {
    pub kind: &'static str,
    pub actor: usize,
    pub src: Option<usize>,
    pub msg_kind: String,
    pub label: String,
    pub sends: Vec<Value>,
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
    pub fn document(&self, scenario: &str, property: Option<(&str, &str)>) -> Value {
        let actors: Vec<Value> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, (name, role, cluster))| json!({"id": i, "name": name, "role": role, "cluster": cluster}))
            .collect();
        let mut current = self.base.clone();
        let crashed = vec![false; current.len()];
        let initial = json!({"actors": current.clone(), "crashed": crashed.clone()});
        let steps: Vec<Value> = self
            .kept
            .iter()
            .enumerate()
            .map(|(k, s)| {
                current[s.actor] = s.state.clone();
                json!({
                    "index": k + 1,
                    "kind": s.kind,
                    "actor": s.actor,
                    "src": s.src,
                    "msg_kind": s.msg_kind,
                    "label": s.label,
                    "sends": s.sends,
                    "actors": current.clone(),
                    "crashed": crashed.clone(),
                })
            })
            .collect();
        let (id, name) = property.unwrap_or(("REAL-RUN", "real run (no violation)"));
        json!({
            "schema": "petrel-trace/1",
            "scenario": scenario,
            "mutant": null,
            "property": {"id": id, "name": name, "kind": "always"},
            "actors": actors,
            "initial": initial,
            "steps": steps,
            "loop_start": null,
            "explorer_path": null,
        })
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
