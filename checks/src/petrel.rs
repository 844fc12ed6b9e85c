//! Glue between Petrel's spec and the generic engine: fairness of Petrel's actions, and
//! counterexample export in the `petrel-trace/1` format (docs/trace-format.md).
use crate::engine::{Fairness, PropertyResult, Trace};
use petrel_spec::model::{Action, PetrelModel, State};
use petrel_spec::properties::id_of;
use serde_json::{json, Value};
use stateright::actor::{ActorModelAction, Id, Network};
use stateright::{Expectation, Model};

impl Fairness for PetrelModel {
    fn fair_class(&self, _state: &State, action: &Action) -> Option<u64> {
        PetrelModel::fair_class(self, action)
    }
}

fn states_json(s: &State) -> Value {
    Value::Array(s.actor_states.iter().map(|a| serde_json::to_value(&**a).unwrap_or(Value::Null)).collect())
}

fn kind_of(a: &Action) -> (&'static str, Option<Id>, String) {
    match a {
        Action::Actor(ActorModelAction::Deliver { src, msg, .. }) => ("deliver", Some(*src), msg.kind().to_string()),
        Action::Actor(ActorModelAction::Timeout(_, t)) => ("timeout", None, format!("{t:?}")),
        Action::Actor(ActorModelAction::Drop(env)) => ("drop", Some(env.src), env.msg.kind().to_string()),
        Action::Crash(_) | Action::Actor(ActorModelAction::Crash(_)) => ("crash", None, "Crash".into()),
        Action::Recover(_) | Action::Actor(ActorModelAction::Recover(_)) => ("recover", None, "Restart".into()),
        Action::Suspect(_) => ("env", None, "Suspect".into()),
        Action::Actor(ActorModelAction::SelectRandom { .. }) => ("env", None, "Random".into()),
    }
}

/// Messages present after a step that were not there before: what the step sent.
fn sends(before: &State, after: &State) -> Vec<Value> {
    let count = |n: &Network<petrel_core::Msg>| -> std::collections::HashMap<String, (usize, usize, String, String)> {
        let mut m = std::collections::HashMap::new();
        if let Network::UnorderedNonDuplicating(map) = n {
            for (env, c) in map.iter() {
                let key = format!("{:?}{:?}{:?}", env.src, env.dst, env.msg);
                m.insert(key, (*c, usize::from(env.dst), env.msg.kind().to_string(), format!("{:?}", env.msg)));
            }
        }
        m
    };
    let (b, a) = (count(&before.network), count(&after.network));
    let mut out: Vec<Value> = a
        .iter()
        .filter(|(k, (c, ..))| b.get(*k).map_or(0, |x| x.0) < *c)
        .map(|(_, (_, dst, kind, label))| json!({"dst": dst, "msg_kind": kind, "label": label}))
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// Action indices of each step in `model.actions()`: the stateright Explorer's path.
pub fn explorer_path(model: &PetrelModel, trace: &Trace<PetrelModel>) -> String {
    let mut path = String::from("#/steps");
    let mut prev = &trace.init;
    let mut actions = Vec::new();
    for (a, s) in &trace.steps {
        actions.clear();
        model.actions(prev, &mut actions);
        let i = actions.iter().position(|x| x == a).unwrap_or(0);
        path.push_str(&format!("/{i}"));
        prev = s;
    }
    path
}

pub fn trace_json(model: &PetrelModel, mutant: Option<&str>, p: &PropertyResult<PetrelModel>, trace: &Trace<PetrelModel>) -> Value {
    let actors: Vec<Value> = model
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let role = n.split('-').next().unwrap_or("");
            json!({"id": i, "name": n, "role": role, "cluster": "A"})
        })
        .collect();
    let mut prev = &trace.init;
    let steps: Vec<Value> = trace
        .steps
        .iter()
        .enumerate()
        .map(|(i, (a, s))| {
            let (kind, src, msg_kind) = kind_of(a);
            let v = json!({
                "index": i + 1,
                "kind": kind,
                "actor": usize::from(model.action_actor(a)),
                "src": src.map(usize::from),
                "msg_kind": msg_kind,
                "label": model.format_action(a),
                "sends": sends(prev, s),
                "actors": states_json(s),
                "crashed": s.crashed,
            });
            prev = s;
            v
        })
        .collect();
    let kind = match p.expectation {
        Expectation::Always => "always",
        Expectation::Eventually => "eventually",
        Expectation::Sometimes => "sometimes",
    };
    json!({
        "schema": "petrel-trace/1",
        "scenario": model.scenario.name,
        "mutant": mutant,
        "property": {"id": id_of(p.name), "name": p.name, "kind": kind},
        "actors": actors,
        "initial": {"actors": states_json(&trace.init), "crashed": trace.init.crashed},
        "steps": steps,
        "loop_start": trace.loop_start.map(|i| i + 1),
        "explorer_path": explorer_path(model, trace),
    })
}

/// A counterexample as readable numbered steps.
pub fn print_trace(model: &PetrelModel, trace: &Trace<PetrelModel>) {
    for (i, (a, _)) in trace.steps.iter().enumerate() {
        if trace.loop_start == Some(i) {
            println!("      ── from here it loops ──");
        }
        println!("  {:>3}. [{}] {}", i + 1, model.name(model.action_actor(a)), model.format_action(a));
    }
    if trace.loop_start.is_some() {
        println!("      ── back to the first step of the loop ──");
    }
}
