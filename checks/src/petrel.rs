//! Glue between Petrel's spec and the generic engine: fairness of Petrel's actions, and
//! counterexample export in the `petrel-trace/1` format (docs/trace-format.md).
use crate::engine::{ActorCodec, Codec, Fairness, PropertyResult, Trace};
use crate::trace::{self as doc, StepKind};
use petrel_spec::model::{Action, PetrelModel, State};
use petrel_spec::properties::id_of;
use serde_json::{json, Value};
use stateright::actor::{ActorModelAction, Id, Network};
use stateright::{Expectation, Model};

impl Fairness for PetrelModel {
    fn fair_class(&self, _state: &State, action: &Action) -> Option<u64> {
        PetrelModel::fair_class(self, action)
    }

    fn codec(&self) -> Box<dyn Codec<State>> {
        Box::new(ActorCodec::default())
    }
}

/// An actor's role: its name up to the first `-` (`meta`, `replica-1` → `replica`, …).
fn role_of(name: &str) -> &str {
    name.split('-').next().unwrap_or("")
}

/// An actor's cluster, when its name carries one: `meta-A`, `replica-B1` → `A`, `B`; none for
/// `replica-1` or `client-1` (single-cluster scenarios).
fn cluster_of(name: &str) -> Option<&str> {
    let rest = name.split_once('-')?.1;
    let n = rest.chars().take_while(char::is_ascii_uppercase).count();
    (n > 0).then(|| &rest[..n])
}

/// The JSON state of every actor. The role's enum tag (`{"Replica": {..}}`) is left out, the
/// lane already says the role; a state that cannot be serialised shows the error instead.
fn states_json(model: &PetrelModel, s: &State) -> Vec<Value> {
    let one = |i: usize, a: &petrel_core::NodeState| -> Value {
        match json::to_value(a) {
            Ok(Value::Object(m)) if m.len() == 1 => {
                let role = model.names.get(i).map_or("", |n| role_of(n));
                let (k, v) = m.into_iter().next().expect("one entry");
                if k.eq_ignore_ascii_case(role) {
                    v
                } else {
                    json!({ k: v })
                }
            }
            Ok(v) => v,
            Err(e) => json!({ "(not serialisable)": e.to_string() }),
        }
    };
    s.actor_states
        .iter()
        .enumerate()
        .map(|(i, a)| one(i, a))
        .collect()
}

fn kind_of(a: &Action) -> (StepKind, Option<Id>, String) {
    match a {
        Action::Actor(ActorModelAction::Deliver { src, msg, .. }) => {
            (StepKind::Deliver, Some(*src), msg.kind().to_string())
        }
        Action::Actor(ActorModelAction::Timeout(_, t)) => {
            (StepKind::Timeout, None, format!("{t:?}"))
        }
        Action::Actor(ActorModelAction::Drop(env)) | Action::Drop(env) => {
            (StepKind::Drop, Some(env.src), env.msg.kind().to_string())
        }
        Action::Crash(_) | Action::Actor(ActorModelAction::Crash(_)) => {
            (StepKind::Crash, None, "Crash".into())
        }
        Action::Recover(_) | Action::Actor(ActorModelAction::Recover(_)) => {
            (StepKind::Recover, None, "Restart".into())
        }
        Action::Suspect(_) => (StepKind::Env, None, "Suspect".into()),
        Action::Forge(_) => (StepKind::Env, None, "Forge".into()),
        Action::Replace(_) => (StepKind::Crash, None, "Disk replaced".into()),
        Action::Cut(_) => (StepKind::Env, None, "Cut".into()),
        Action::Break(..) => (StepKind::Env, None, "Break".into()),
        Action::Actor(ActorModelAction::SelectRandom { .. }) => {
            (StepKind::Env, None, "Random".into())
        }
    }
}

/// A step's one-line label: the message (its sender and receiver are the lanes), else the
/// model's own description of the action.
fn label_of(model: &PetrelModel, a: &Action) -> String {
    match a {
        Action::Actor(ActorModelAction::Deliver { msg, .. }) => format!("{msg:?}"),
        Action::Actor(ActorModelAction::Drop(env)) | Action::Drop(env) => format!("{:?}", env.msg),
        other => model.format_action(other),
    }
}

/// Messages present after a step that were not there before: what the step sent.
fn sends(before: &State, after: &State) -> Vec<doc::Send> {
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
    let mut out: Vec<doc::Send> = a
        .into_iter()
        .filter(|(k, (c, ..))| b.get(k).map_or(0, |x| x.0) < *c)
        .map(|(_, (_, dst, kind, label))| doc::Send {
            dst,
            msg_kind: Some(kind),
            label: Some(label),
        })
        .collect();
    // The network is a hash map: sort for a stable order.
    out.sort_by(|x, y| (x.dst, &x.label, &x.msg_kind).cmp(&(y.dst, &y.label, &y.msg_kind)));
    out
}

/// The stateright Explorer's fragment for a trace: `#/steps/{init}/{a1}/{a2}/…`, where `init`
/// is the initial state's index in `model.init_states()` and each `a` is the index of the
/// step's action in `model.actions()` of the state before it. This is what stateright 0.31's
/// Explorer UI (`ui/app.js`, `prepareView`) walks: the first component picks an initial
/// state, every further one an action (`Path::final_state` in `src/checker/path.rs`).
///
/// `actions()` lists in-flight messages in the network's hash-map order, which is seeded per
/// process, so the path is only meaningful to an Explorer served by the same process
/// (`petrel-check explore` computes it that way).
pub fn explorer_path(model: &PetrelModel, trace: &Trace<PetrelModel>) -> String {
    let init = model
        .init_states()
        .iter()
        .position(|s| s == &trace.init)
        .unwrap_or(0);
    let mut path = format!("#/steps/{init}");
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

/// A counterexample as a `petrel-trace/1` document.
pub fn trace_json(
    model: &PetrelModel,
    mutant: Option<&str>,
    p: &PropertyResult<PetrelModel>,
    trace: &Trace<PetrelModel>,
) -> doc::Trace {
    let actors = model
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| doc::Actor {
            id: i,
            name: n.clone(),
            role: Some(role_of(n).into()),
            cluster: cluster_of(n).map(String::from),
        })
        .collect();
    let mut prev = &trace.init;
    let steps = trace
        .steps
        .iter()
        .enumerate()
        .map(|(i, (a, s))| {
            let (kind, src, msg_kind) = kind_of(a);
            let step = doc::Step {
                index: i + 1,
                kind,
                actor: usize::from(model.action_actor(a)),
                src: src.map(usize::from),
                msg_kind: Some(msg_kind),
                label: label_of(model, a),
                sends: Some(sends(prev, s)),
                actors: states_json(model, s),
                crashed: s.crashed.clone(),
            };
            prev = s;
            step
        })
        .collect();
    let kind = match p.expectation {
        Expectation::Always => doc::PropertyKind::Always,
        Expectation::Eventually => doc::PropertyKind::Eventually,
        Expectation::Sometimes => doc::PropertyKind::Sometimes,
    };
    doc::Trace {
        schema: doc::Schema,
        scenario: model.scenario.name.to_string(),
        mutant: mutant.map(String::from),
        property: doc::Property {
            id: id_of(p.name).to_string(),
            name: p.name.to_string(),
            kind,
        },
        actors,
        initial: doc::States {
            actors: states_json(model, &trace.init),
            crashed: trace.init.crashed.clone(),
        },
        steps,
        loop_start: trace.loop_start.map(|i| i + 1),
        explorer_path: Some(explorer_path(model, trace)),
    }
}

/// A counterexample as readable numbered steps.
pub fn print_trace(model: &PetrelModel, trace: &Trace<PetrelModel>) {
    for (i, (a, _)) in trace.steps.iter().enumerate() {
        if trace.loop_start == Some(i) {
            println!("      ── from here it loops ──");
        }
        println!(
            "  {:>3}. [{}] {}",
            i + 1,
            model.name(model.action_actor(a)),
            model.format_action(a)
        );
    }
    if trace.loop_start.is_some() {
        println!("      ── back to the first step of the loop ──");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{self, Options};
    use petrel_core::Bugs;
    use petrel_spec::{mutant, scenario};

    #[test]
    fn names_give_roles_and_clusters() {
        assert_eq!((role_of("meta"), cluster_of("meta")), ("meta", None));
        assert_eq!(
            (role_of("replica-2"), cluster_of("replica-2")),
            ("replica", None)
        );
        assert_eq!(
            (role_of("client-1"), cluster_of("client-1")),
            ("client", None)
        );
        assert_eq!(
            (role_of("meta-B"), cluster_of("meta-B")),
            ("meta", Some("B"))
        );
        assert_eq!(
            (role_of("replica-A1"), cluster_of("replica-A1")),
            ("replica", Some("A"))
        );
    }

    /// A real counterexample exports as a valid trace whose states are all objects, and its
    /// Explorer path, walked the way stateright's Explorer walks it (`Path::final_state`: the
    /// first index picks an initial state, each further one an action of `actions()`), passes
    /// through exactly the trace's states.
    #[test]
    fn real_trace_exports_and_its_explorer_path_replays() {
        let m = mutant("s5-client-no-refresh").expect("mutant");
        let model = PetrelModel::new(
            &scenario(m.scenario).expect("scenario"),
            Bugs::none().with(m.bug),
        );
        let report = engine::check(
            &model,
            &Options {
                threads: 1,
                stop_when_decided: false,
                ..Options::default()
            },
        );
        let p = report
            .properties
            .iter()
            .find(|p| !p.holds && id_of(p.name) == m.caught_by)
            .expect("caught");
        let t = p.counterexample.as_ref().expect("counterexample");
        let j = trace_json(&model, Some(m.name), p, t);
        // What `check --trace-out` writes reads back as the same document.
        let text = serde_json::to_string_pretty(&j).expect("serialises");
        assert_eq!(
            crate::trace::Trace::parse(&text).expect("valid petrel-trace/1"),
            j
        );
        for (i, st) in std::iter::once(&j.initial.actors)
            .chain(j.steps.iter().map(|s| &s.actors))
            .enumerate()
        {
            for a in st {
                assert!(
                    a.is_object() && a.get("(not serialisable)").is_none(),
                    "state {i}: {a}"
                );
            }
        }
        let path = j.explorer_path.as_deref().expect("path");
        let idx: Vec<usize> = path
            .strip_prefix("#/steps/")
            .expect("prefix")
            .split('/')
            .map(|x| x.parse().expect("index"))
            .collect();
        assert_eq!(
            idx.len(),
            t.len() + 1,
            "{path}: the initial state's index, then one per step"
        );
        let mut s = model.init_states().swap_remove(idx[0]);
        assert!(s == t.init);
        for (k, (&ai, (_, expected))) in idx[1..].iter().zip(&t.steps).enumerate() {
            let mut actions = Vec::new();
            model.actions(&s, &mut actions);
            s = model
                .next_state(&s, actions.swap_remove(ai))
                .expect("enabled");
            assert!(
                &s == expected,
                "step {}: the Explorer's action #{ai} leads elsewhere",
                k + 1
            );
        }
    }
}

/// Serde to `serde_json::Value` for states whose maps have non-string keys (e.g.
/// `BTreeMap<Gpid, Part>`), which `serde_json::to_value` refuses ("key must be a string").
/// The output is what `serde_json::to_value` would produce, except that every map key is
/// rendered as text: strings as they are, numbers and booleans as JSON, unit variants by
/// name, structs as `{field: value, ..}` in declaration order, sequences and tuples as
/// `(a, b)`, other enum variants as `Name(..)` / `Name {..}`.
pub mod json {
    use serde::ser::{self, Serialize};
    use serde_json::{Map, Number, Value};
    use std::fmt;

    #[derive(Debug)]
    pub struct Error(String);
    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl ser::Error for Error {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Error(msg.to_string())
        }
    }

    pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
        v.serialize(ValueSer { key: false })
    }

    /// A map key as text. In key mode every compound value comes back as a `Value::String`
    /// holding its rendering (and string leaves come back quoted), so only the top-level
    /// string needs no quotes.
    fn key_text<T: Serialize + ?Sized>(k: &T) -> Result<String, Error> {
        Ok(match to_value(k)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => raw(k.serialize(ValueSer { key: true })?),
        })
    }

    /// The text of a key-mode value.
    fn raw(v: Value) -> String {
        match v {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    #[derive(Clone, Copy)]
    struct ValueSer {
        key: bool,
    }

    impl ValueSer {
        fn value<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
            v.serialize(self)
        }
        fn tagged(self, variant: &str, v: Value) -> Value {
            if self.key {
                let inner = raw(v);
                if inner.starts_with('{') {
                    Value::String(format!("{variant} {inner}"))
                } else if inner.starts_with('(') {
                    Value::String(format!("{variant}{inner}"))
                } else {
                    Value::String(format!("{variant}({inner})"))
                }
            } else {
                let mut m = Map::new();
                m.insert(variant.to_string(), v);
                Value::Object(m)
            }
        }
        fn seq(self, items: Vec<Value>) -> Value {
            if self.key {
                Value::String(format!(
                    "({})",
                    items.into_iter().map(raw).collect::<Vec<_>>().join(", ")
                ))
            } else {
                Value::Array(items)
            }
        }
        fn fields(self, fields: Vec<(String, Value)>) -> Value {
            if self.key {
                let parts: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{k}: {}", raw(v)))
                    .collect();
                Value::String(format!("{{{}}}", parts.join(", ")))
            } else {
                Value::Object(fields.into_iter().collect())
            }
        }
    }

    pub struct Seq(ValueSer, Vec<Value>);
    pub struct VariantSeq(ValueSer, &'static str, Vec<Value>);
    pub struct MapSer(ValueSer, Vec<(String, Value)>, Option<String>);
    pub struct StructSer(ValueSer, Vec<(String, Value)>);
    pub struct VariantStruct(ValueSer, &'static str, Vec<(String, Value)>);

    impl ser::Serializer for ValueSer {
        type Ok = Value;
        type Error = Error;
        type SerializeSeq = Seq;
        type SerializeTuple = Seq;
        type SerializeTupleStruct = Seq;
        type SerializeTupleVariant = VariantSeq;
        type SerializeMap = MapSer;
        type SerializeStruct = StructSer;
        type SerializeStructVariant = VariantStruct;

        fn serialize_bool(self, v: bool) -> Result<Value, Error> {
            Ok(Value::Bool(v))
        }
        fn serialize_i8(self, v: i8) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_i16(self, v: i16) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_i32(self, v: i32) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_i64(self, v: i64) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_i128(self, v: i128) -> Result<Value, Error> {
            Ok(i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from))
        }
        fn serialize_u8(self, v: u8) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_u16(self, v: u16) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_u32(self, v: u32) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_u64(self, v: u64) -> Result<Value, Error> {
            Ok(Value::from(v))
        }
        fn serialize_u128(self, v: u128) -> Result<Value, Error> {
            Ok(u64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::from))
        }
        fn serialize_f32(self, v: f32) -> Result<Value, Error> {
            self.serialize_f64(f64::from(v))
        }
        fn serialize_f64(self, v: f64) -> Result<Value, Error> {
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn serialize_char(self, v: char) -> Result<Value, Error> {
            self.serialize_str(v.encode_utf8(&mut [0; 4]))
        }
        fn serialize_str(self, v: &str) -> Result<Value, Error> {
            Ok(Value::String(if self.key {
                format!("{v:?}")
            } else {
                v.to_string()
            }))
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
            Ok(self.seq(v.iter().map(|b| Value::from(*b)).collect()))
        }
        fn serialize_none(self) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Error> {
            Ok(Value::Null)
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
        ) -> Result<Value, Error> {
            Ok(Value::String(variant.to_string()))
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            v: &T,
        ) -> Result<Value, Error> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
            v: &T,
        ) -> Result<Value, Error> {
            let inner = self.value(v)?;
            Ok(self.tagged(variant, inner))
        }
        fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
            Ok(Seq(self, Vec::with_capacity(len.unwrap_or(0))))
        }
        fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Error> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
            len: usize,
        ) -> Result<VariantSeq, Error> {
            Ok(VariantSeq(self, variant, Vec::with_capacity(len)))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<MapSer, Error> {
            Ok(MapSer(self, Vec::new(), None))
        }
        fn serialize_struct(self, _: &'static str, len: usize) -> Result<StructSer, Error> {
            Ok(StructSer(self, Vec::with_capacity(len)))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
            len: usize,
        ) -> Result<VariantStruct, Error> {
            Ok(VariantStruct(self, variant, Vec::with_capacity(len)))
        }
    }

    impl ser::SerializeSeq for Seq {
        type Ok = Value;
        type Error = Error;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            self.1.push(self.0.value(v)?);
            Ok(())
        }
        fn end(self) -> Result<Value, Error> {
            Ok(self.0.seq(self.1))
        }
    }
    impl ser::SerializeTuple for Seq {
        type Ok = Value;
        type Error = Error;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            ser::SerializeSeq::serialize_element(self, v)
        }
        fn end(self) -> Result<Value, Error> {
            ser::SerializeSeq::end(self)
        }
    }
    impl ser::SerializeTupleStruct for Seq {
        type Ok = Value;
        type Error = Error;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            ser::SerializeSeq::serialize_element(self, v)
        }
        fn end(self) -> Result<Value, Error> {
            ser::SerializeSeq::end(self)
        }
    }
    impl ser::SerializeTupleVariant for VariantSeq {
        type Ok = Value;
        type Error = Error;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            self.2.push(self.0.value(v)?);
            Ok(())
        }
        fn end(self) -> Result<Value, Error> {
            let inner = self.0.seq(self.2);
            Ok(self.0.tagged(self.1, inner))
        }
    }
    impl ser::SerializeMap for MapSer {
        type Ok = Value;
        type Error = Error;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
            self.2 = Some(key_text(k)?);
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            let k = self
                .2
                .take()
                .ok_or_else(|| Error("map value without a key".into()))?;
            self.1.push((k, self.0.value(v)?));
            Ok(())
        }
        fn end(self) -> Result<Value, Error> {
            Ok(self.0.fields(self.1))
        }
    }
    impl ser::SerializeStruct for StructSer {
        type Ok = Value;
        type Error = Error;
        fn serialize_field<T: Serialize + ?Sized>(
            &mut self,
            key: &'static str,
            v: &T,
        ) -> Result<(), Error> {
            self.1.push((key.to_string(), self.0.value(v)?));
            Ok(())
        }
        fn end(self) -> Result<Value, Error> {
            Ok(self.0.fields(self.1))
        }
    }
    impl ser::SerializeStructVariant for VariantStruct {
        type Ok = Value;
        type Error = Error;
        fn serialize_field<T: Serialize + ?Sized>(
            &mut self,
            key: &'static str,
            v: &T,
        ) -> Result<(), Error> {
            self.2.push((key.to_string(), self.0.value(v)?));
            Ok(())
        }
        fn end(self) -> Result<Value, Error> {
            let inner = self.0.fields(self.2);
            Ok(self.0.tagged(self.1, inner))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::collections::BTreeMap;

        #[derive(serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
        struct K {
            table: u8,
            partition: u8,
        }
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tup(u8, bool),
            Rec { a: Option<u8> },
        }
        #[derive(serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
        enum KE {
            A(u8),
            B { x: u8 },
        }

        #[test]
        fn values_match_serde_json() {
            let v = vec![E::Unit, E::New(3), E::Tup(1, true), E::Rec { a: None }];
            assert_eq!(to_value(&v).unwrap(), serde_json::to_value(&v).unwrap());
            let mut n = BTreeMap::new();
            n.insert(7u64, (1u8, "x", 'c', Some(2.5f64)));
            assert_eq!(to_value(&n).unwrap(), serde_json::to_value(&n).unwrap());
        }

        #[test]
        fn compound_keys_become_text() {
            let mut m = BTreeMap::new();
            m.insert(
                K {
                    table: 0,
                    partition: 1,
                },
                E::New(3),
            );
            assert_eq!(
                to_value(&m).unwrap(),
                serde_json::json!({"{table: 0, partition: 1}": {"New": 3}})
            );
            let mut t = BTreeMap::new();
            t.insert((1u8, "a".to_string()), 2u8);
            assert_eq!(to_value(&t).unwrap(), serde_json::json!({"(1, \"a\")": 2}));
            let mut e = BTreeMap::new();
            e.insert(KE::A(1), 1u8);
            e.insert(KE::B { x: 2 }, 2u8);
            assert_eq!(
                to_value(&e).unwrap(),
                serde_json::json!({"A(1)": 1, "B {x: 2}": 2})
            );
        }
    }
}
