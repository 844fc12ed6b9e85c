//! The `petrel-trace/1` document (docs/trace-format.md) as types: the model's counterexample
//! export (`petrel::trace_json`), the real-run export (`validate --trace-out`) and the viewer
//! all go through these, so a field cannot be written one way and read another.
//!
//! Every struct refuses fields it does not know: a typo or a field from a newer format is an
//! error, not something silently ignored. What serde cannot say (ids are array indices, step
//! references name existing actors, ...) is checked by [`Trace::check`].
//!
//! Optional fields are written as `null` rather than left out: that is the shape the viewer's
//! JavaScript and the documentation show.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema tag every trace carries.
pub const SCHEMA: &str = "petrel-trace/1";

/// A whole trace file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    pub schema: Schema,
    pub scenario: String,
    /// The mutant checked, `None` for the clean model.
    pub mutant: Option<String>,
    pub property: Property,
    /// One lane per actor; `actors[i].id == i`.
    pub actors: Vec<Actor>,
    /// The state before step 1.
    pub initial: States,
    pub steps: Vec<Step>,
    /// Lassos only: the 1-based index of the first step of the repeating part; after the
    /// last step the system is back in the state that preceded this step.
    pub loop_start: Option<usize>,
    /// The stateright Explorer fragment (`#/steps/…`) for the same path, when there is one.
    pub explorer_path: Option<String>,
}

/// The `schema` field: only ever `"petrel-trace/1"`, so a trace in another format is refused
/// before anything in it is read as if it were this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schema;

impl Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SCHEMA)
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schema, D::Error> {
        struct Tag;
        impl serde::de::Visitor<'_> for Tag {
            type Value = Schema;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "the string {SCHEMA:?}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Schema, E> {
                if s == SCHEMA {
                    Ok(Schema)
                } else {
                    Err(E::custom(format!("schema is {s:?}, expected {SCHEMA:?}")))
                }
            }
        }
        d.deserialize_str(Tag)
    }
}

/// The violated property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    /// The stable ID from spec/SPEC.md, e.g. `SAFE-7`.
    pub id: String,
    /// The full name, e.g. `SAFE-7 no-invariant-broken`.
    pub name: String,
    pub kind: PropertyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    Always,
    Eventually,
    Sometimes,
}

/// One lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub id: usize,
    pub name: String,
    pub role: Option<String>,
    pub cluster: Option<String>,
}

/// Every actor's state at one point of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct States {
    /// Each actor's state, in whatever JSON shape its role has.
    pub actors: Vec<Value>,
    pub crashed: Vec<bool>,
}

/// One step. The states after it are spelled out rather than flattened from [`States`]:
/// serde cannot refuse unknown fields of a struct with a flattened part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// 1-based, in order.
    pub index: usize,
    pub kind: StepKind,
    /// The actor that took the step: the receiver, the timer's owner, the crashed or
    /// recovered actor, or the one an environment event is about.
    pub actor: usize,
    /// The sender, for `deliver` and `drop`.
    pub src: Option<usize>,
    /// The message or timer variant's name (what the viewer filters by).
    pub msg_kind: Option<String>,
    /// A one-line description.
    pub label: String,
    /// The messages the step sent.
    pub sends: Option<Vec<Send>>,
    /// Every actor's state after the step.
    pub actors: Vec<Value>,
    pub crashed: Vec<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Deliver,
    Timeout,
    Crash,
    Recover,
    Drop,
    Env,
}

/// A message a step sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    pub dst: usize,
    pub msg_kind: Option<String>,
    pub label: Option<String>,
}

impl Trace {
    /// Read a trace from JSON text and [check](Trace::check) it. The error says what is
    /// wrong and, for a fault inside `actors`, `steps` or a step's `sends`, which element.
    pub fn parse(text: &str) -> Result<Trace, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("not a petrel trace: the input is not valid JSON ({e})"))?;
        // serde reads a struct from an array too, which would make `[1, 2]` fail on its
        // first element's type; say what is actually wrong.
        if !v.is_object() {
            return Err(format!(
                "invalid petrel trace: the top level must be a JSON object, found {}",
                type_name(&v)
            ));
        }
        let trace: Trace = match serde_json::from_value(v) {
            Ok(t) => t,
            Err(e) => {
                // The document was consumed; reading it again only costs on this path.
                let v: Value = serde_json::from_str(text).expect("parsed above");
                return Err(match fault_at(&v, &e.to_string()) {
                    Some(path) => format!("invalid petrel trace: {path}: {e}"),
                    None => format!("invalid petrel trace: {e}"),
                });
            }
        };
        trace
            .check()
            .map_err(|e| format!("invalid petrel trace: {e}"))?;
        Ok(trace)
    }

    /// The rules of the format the types do not carry. The error names the offending field
    /// by its JSON path, e.g. `steps[3].actor: 12 is not an actor id (the trace has 4 actors)`.
    pub fn check(&self) -> Result<(), String> {
        let n = self.actors.len();
        if n == 0 {
            return Err("actors is empty: a trace needs at least one actor".into());
        }
        for (i, a) in self.actors.iter().enumerate() {
            if a.id != i {
                return Err(format!(
                    "actors[{i}].id is {}, expected {i} (ids are array indices)",
                    a.id
                ));
            }
        }
        check_states(&self.initial.actors, &self.initial.crashed, "initial", n)?;
        for (i, s) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            if s.index != i + 1 {
                return Err(format!(
                    "{path}.index is {}, expected {} (1-based, in order)",
                    s.index,
                    i + 1
                ));
            }
            actor_ref(s.actor, &format!("{path}.actor"), n)?;
            match s.src {
                Some(src) => actor_ref(src, &format!("{path}.src"), n)?,
                None if matches!(s.kind, StepKind::Deliver | StepKind::Drop) => {
                    return Err(format!(
                        "{path}.src is required (an actor id) in a {} step",
                        s.kind.name()
                    ))
                }
                None => {}
            }
            for (j, m) in s.sends.iter().flatten().enumerate() {
                actor_ref(m.dst, &format!("{path}.sends[{j}].dst"), n)?;
            }
            check_states(&s.actors, &s.crashed, &path, n)?;
        }
        if let Some(ls) = self.loop_start {
            let len = self.steps.len();
            if ls < 1 || ls > len {
                return Err(format!(
                    "loop_start is {ls}, but the trace has {len} steps (valid: 1..={len})"
                ));
            }
        }
        if let Some(p) = &self.explorer_path {
            if !p.starts_with("#/steps") {
                return Err(format!(
                    "explorer_path must start with \"#/steps\", found {p:?}"
                ));
            }
        }
        Ok(())
    }
}

impl StepKind {
    /// The name as written in a trace.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Deliver => "deliver",
            StepKind::Timeout => "timeout",
            StepKind::Crash => "crash",
            StepKind::Recover => "recover",
            StepKind::Drop => "drop",
            StepKind::Env => "env",
        }
    }
}

fn check_states(actors: &[Value], crashed: &[bool], path: &str, n: usize) -> Result<(), String> {
    if actors.len() != n {
        return Err(format!(
            "{path}.actors has {} states, expected one per actor ({n})",
            actors.len()
        ));
    }
    if crashed.len() != n {
        return Err(format!(
            "{path}.crashed has {} entries, expected one per actor ({n})",
            crashed.len()
        ));
    }
    Ok(())
}

fn actor_ref(id: usize, path: &str, n: usize) -> Result<(), String> {
    if id < n {
        Ok(())
    } else {
        Err(format!(
            "{path}: {id} is not an actor id (the trace has {n} actors)"
        ))
    }
}

/// serde's message names the field but not which array element it is in. Find the element
/// (or `property`/`initial`) that fails with that same message on its own; `None` when the
/// fault is at the top level.
fn fault_at(doc: &Value, message: &str) -> Option<String> {
    fn fails_with<T: DeserializeOwned>(v: &Value, message: &str) -> bool {
        T::deserialize(v).is_err_and(|e| e.to_string() == message)
    }
    fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
        v.get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    if doc
        .get("property")
        .is_some_and(|p| fails_with::<Property>(p, message))
    {
        return Some("property".into());
    }
    if doc
        .get("initial")
        .is_some_and(|s| fails_with::<States>(s, message))
    {
        return Some("initial".into());
    }
    if let Some(i) = items(doc, "actors")
        .iter()
        .position(|a| fails_with::<Actor>(a, message))
    {
        return Some(format!("actors[{i}]"));
    }
    let steps = doc.get("steps").and_then(Value::as_array)?;
    let i = steps.iter().position(|s| fails_with::<Step>(s, message))?;
    Some(
        match items(&steps[i], "sends")
            .iter()
            .position(|m| fails_with::<Send>(m, message))
        {
            Some(j) => format!("steps[{i}].sends[{j}]"),
            None => format!("steps[{i}]"),
        },
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::synthetic_trace;

    /// A change that breaks a valid document.
    type Break = fn(&mut Value);

    /// A valid document (a lasso, so `loop_start` is set) as a `Value` to break.
    fn good() -> Value {
        serde_json::from_str(&synthetic_trace(12, 3, Some(5))).unwrap()
    }

    fn refused(v: &Value) -> String {
        Trace::parse(&v.to_string()).expect_err("must be refused")
    }

    #[test]
    fn writes_what_it_reads() {
        let text = synthetic_trace(12, 3, Some(5));
        let t = Trace::parse(&text).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), good());
        assert_eq!(
            Trace::parse(&serde_json::to_string(&t).unwrap()).unwrap(),
            t
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let cases: [(&str, Break); 6] = [
            ("top level", |v| v["colour"] = "red".into()),
            ("property", |v| v["property"]["colour"] = "red".into()),
            ("actor", |v| v["actors"][1]["colour"] = "red".into()),
            ("initial", |v| v["initial"]["colour"] = "red".into()),
            ("step", |v| v["steps"][4]["colour"] = "red".into()),
            ("send", |v| {
                let step = v["steps"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|s| !s["sends"].as_array().unwrap().is_empty())
                    .expect("a step that sends");
                step["sends"][0]["colour"] = "red".into();
            }),
        ];
        for (place, break_it) in cases {
            let mut v = good();
            break_it(&mut v);
            let err = refused(&v);
            assert!(err.contains("unknown field `colour`"), "{place}: {err}");
            let at = match place {
                "top level" => "invalid petrel trace: unknown field",
                "property" => "property: unknown field",
                "actor" => "actors[1]: unknown field",
                "initial" => "initial: unknown field",
                "step" => "steps[4]: unknown field",
                _ => ".sends[0]: unknown field",
            };
            assert!(err.contains(at), "{place}: {err}");
        }
    }

    #[test]
    fn only_this_schema_is_read() {
        for (schema, expected) in [
            (
                Value::from("petrel-trace/2"),
                "schema is \"petrel-trace/2\"",
            ),
            (
                Value::from("Petrel-Trace/1"),
                "schema is \"Petrel-Trace/1\"",
            ),
            (Value::from(1), "expected the string \"petrel-trace/1\""),
            (Value::Null, "expected the string \"petrel-trace/1\""),
        ] {
            let mut v = good();
            v["schema"] = schema;
            let err = refused(&v);
            assert!(err.contains(expected), "{err}");
        }
        let mut v = good();
        v.as_object_mut().unwrap().remove("schema");
        assert!(refused(&v).contains("missing field `schema`"));
    }

    #[test]
    fn semantic_rules_are_checked() {
        let cases: [(Break, &str); 9] = [
            (|v| v["actors"] = Value::Array(vec![]), "actors is empty"),
            (
                |v| v["actors"][2]["id"] = 1.into(),
                "actors[2].id is 1, expected 2",
            ),
            (
                |v| v["steps"][1]["index"] = 3.into(),
                "steps[1].index is 3, expected 2",
            ),
            (
                |v| v["steps"][3]["actor"] = 3.into(),
                "steps[3].actor: 3 is not an actor id (the trace has 3 actors)",
            ),
            (
                |v| {
                    let s = &mut v["steps"][0];
                    s["kind"] = "deliver".into();
                    s["src"] = Value::Null;
                },
                "steps[0].src is required",
            ),
            (
                |v| v["steps"][0]["src"] = 7.into(),
                "steps[0].src: 7 is not an actor id",
            ),
            (
                |v| v["steps"][2]["crashed"] = serde_json::json!([false]),
                "steps[2].crashed has 1 entries, expected one per actor (3)",
            ),
            (|v| v["loop_start"] = 0.into(), "loop_start is 0"),
            (
                |v| v["explorer_path"] = "#/other".into(),
                "explorer_path must start with \"#/steps\"",
            ),
        ];
        for (break_it, expected) in cases {
            let mut v = good();
            break_it(&mut v);
            let err = refused(&v);
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }

    #[test]
    fn type_errors_name_the_element() {
        let cases: [(Break, &str); 5] = [
            (
                |v| v["steps"][2]["crashed"][0] = "yes".into(),
                "steps[2]: invalid type: string \"yes\", expected a boolean",
            ),
            (
                |v| v["steps"][0]["kind"] = "teleport".into(),
                "steps[0]: unknown variant `teleport`, expected one of `deliver`",
            ),
            (
                |v| v["property"]["kind"] = "never".into(),
                "property: unknown variant `never`",
            ),
            (
                |v| v["actors"][1]["name"] = 5.into(),
                "actors[1]: invalid type: integer `5`, expected a string",
            ),
            (
                |v| v["loop_start"] = (-1).into(),
                "invalid petrel trace: invalid value: integer `-1`",
            ),
        ];
        for (break_it, expected) in cases {
            let mut v = good();
            break_it(&mut v);
            let err = refused(&v);
            assert!(err.contains(expected), "expected {expected:?} in {err}");
        }
    }

    #[test]
    fn optional_fields_may_be_null_or_absent() {
        let mut v = good();
        for s in v["steps"].as_array_mut().unwrap() {
            s["sends"] = Value::Null;
            s.as_object_mut().unwrap().remove("msg_kind");
        }
        v["actors"][0]["role"] = Value::Null;
        v.as_object_mut().unwrap().remove("mutant");
        v.as_object_mut().unwrap().remove("explorer_path");
        Trace::parse(&v.to_string()).unwrap();
    }
}
