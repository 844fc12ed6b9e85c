//! Conformance: one node's recorded inputs replayed through the unchanged core actor
//! (`petrel_core::Node`), every recorded output compared with the replayed one, in order,
//! and the driver's effects checked against the replayed commands: the value it made
//! durable is the last `Save` of its batch, no send left before the save it depends on was
//! durable, a fired timer was armed, a restart got the previous life's last durable save.
use super::log::{Input, Life};
use petrel_core::{Msg, Node, NodeState, NodeStorage, Timer};
use serde::Serialize;
use serde_json::Value;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// The same hash as the node's `eventlog::value_hash` (a 64-bit hash over `std::hash::Hash`):
/// deterministic for a build, which is enough since the validator links the same core.
pub fn value_hash<T: Hash + ?Sized>(v: &T) -> String {
    /// Eight bytes at a time (a multiply-rotate mix per word, FNV-1a for the tail):
    /// the hash runs over the whole durable state on every save, so its speed matters.
    struct Words(u64);
    impl Hasher for Words {
        fn finish(&self) -> u64 {
            let mut x = self.0;
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^ (x >> 33)
        }
        fn write(&mut self, bytes: &[u8]) {
            let mut chunks = bytes.chunks_exact(8);
            for c in &mut chunks {
                let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                self.0 = (self.0 ^ w)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(29);
            }
            for &b in chunks.remainder() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    let mut h = Words(0xcbf2_9ce4_8422_2325);
    v.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A command as the event log writes it (the shape of `node/src/eventlog.rs`'s `Cmd`).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Cmd<'a> {
    Send {
        dst: u64,
        msg: &'a Msg,
    },
    SetTimer {
        timer: &'a Timer,
        min_ms: u128,
        max_ms: u128,
    },
    CancelTimer {
        timer: &'a Timer,
    },
    Save {},
    ChooseRandom {
        key: &'a str,
    },
}

/// The replayed commands in the log's JSON form.
pub fn commands_json(out: &Out<Node>) -> Vec<Value> {
    out.iter()
        .map(|c| {
            let cmd = match c {
                Command::Send(dst, msg) => Cmd::Send {
                    dst: usize::from(*dst) as u64,
                    msg,
                },
                Command::SetTimer(timer, r) => Cmd::SetTimer {
                    timer,
                    min_ms: r.start.as_millis(),
                    max_ms: r.end.as_millis(),
                },
                Command::CancelTimer(timer) => Cmd::CancelTimer { timer },
                Command::Save(_) => Cmd::Save {},
                Command::ChooseRandom(key, _) => Cmd::ChooseRandom { key },
            };
            serde_json::to_value(&cmd)
                .unwrap_or_else(|e| Value::String(format!("(not serialisable: {e})")))
        })
        .collect()
}

/// The first place where two JSON values differ: (path, recorded, replayed).
pub fn first_diff(
    path: &str,
    recorded: &Value,
    replayed: &Value,
) -> Option<(String, String, String)> {
    match (recorded, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                first_diff(&format!("{path}.{k}"), x, y)
            })
        }
        (Value::Array(a), Value::Array(b)) => {
            let d = (0..a.len().max(b.len())).find_map(|i| {
                let (x, y) = (
                    a.get(i).unwrap_or(&Value::Null),
                    b.get(i).unwrap_or(&Value::Null),
                );
                first_diff(&format!("{path}[{i}]"), x, y)
            });
            d.or_else(|| {
                (a.len() != b.len()).then(|| {
                    (
                        format!("{path}.len"),
                        a.len().to_string(),
                        b.len().to_string(),
                    )
                })
            })
        }
        (a, b) if a == b => None,
        (a, b) => Some((path.to_string(), short(a), short(b))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// What went wrong at one point of one node's log.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The run broke a rule (conformance or persist-before-send): exit 1.
    Violation(String),
    /// The log cannot be judged here (a restart from storage the log does not show being
    /// written, a message that does not decode): exit 2.
    Incomplete(String),
}

pub struct Replayer {
    pub id: u64,
    pub actor: Option<Node>,
    /// `None` before the first start.
    pub state: Option<NodeState>,
    /// Lives started so far.
    pub lives: usize,
    pub events: u64,
    armed: BTreeSet<Timer>,
    /// The last `Save` of this life not yet covered by a `durable` line: (seq, value).
    /// A restart may find it in storage: the process can die after the fsync, before the
    /// `durable` line reached the log (only a batch's last save is ever written, and no
    /// event is recorded after a batch's fsync until its `durable` line).
    pending_save: Option<(u64, NodeStorage)>,
    /// The last value a `durable` line confirmed (across lives: storage outlives them).
    pub durable: Option<NodeStorage>,
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> Result<T, Fault> {
    serde_json::from_value(v.clone()).map_err(|e| {
        Fault::Incomplete(format!(
            "cannot decode the recorded {what} ({e}): {}",
            short(v)
        ))
    })
}

impl Replayer {
    pub fn new(id: u64) -> Replayer {
        Replayer {
            id,
            actor: None,
            state: None,
            lives: 0,
            events: 0,
            armed: BTreeSet::new(),
            pending_save: None,
            durable: None,
        }
    }

    fn me(&self) -> Id {
        Id::from(self.id as usize)
    }

    /// A new life: the storage it was given must be the previous life's last durable save.
    /// Returns the commands without their saves.
    pub fn start(&mut self, life: &Life) -> Result<Out<Node>, Fault> {
        let s = &life.start;
        let actor: Node = decode("actor", &s.actor)?;
        let storage = if s.storage {
            if self.lives == 0 {
                return Err(Fault::Incomplete(format!(
                    "node {} started from stored state written before its log begins (line {})",
                    self.id, life.line
                )));
            }
            let want = s.storage_hash.clone().unwrap_or_default();
            let found = self
                .pending_save
                .iter()
                .map(|(_, v)| v)
                .chain(self.durable.iter())
                .find(|v| value_hash(*v) == want)
                .cloned();
            match found {
                Some(v) => Some(v),
                None => {
                    return Err(Fault::Violation(format!(
                        "node {} restarted (line {}) with stored state {want}, which is not its previous life's last durable save ({})",
                        self.id,
                        life.line,
                        self.durable.as_ref().map(value_hash).unwrap_or_else(|| "none".into())
                    )))
                }
            }
        } else {
            // Without storage after durable saves: a lost or replaced disk. Allowed only
            // as a node without a life (0) that asks for a new one and holds no role: the
            // model's `Replace` fault. Any other start would pass for the life that held
            // the lost data.
            if self.durable.is_some() && s.incarnation != 0 {
                return Err(Fault::Violation(format!(
                    "node {} restarted (line {}) without storage, but its previous life made a save durable",
                    self.id, life.line
                )));
            }
            None
        };
        self.lives += 1;
        self.armed.clear();
        self.pending_save = None;
        let mut out = Out::new();
        let state = actor.on_start(self.me(), &storage, &mut out);
        if state.incarnation() != s.incarnation {
            return Err(Fault::Violation(format!(
                "node {} life {}: the transport announced life {}, the core chose {}",
                self.id,
                self.lives,
                s.incarnation,
                state.incarnation()
            )));
        }
        self.compare(1, &life.start_out, &out)?;
        self.state = Some(state);
        self.actor = Some(actor);
        Ok(self.after(1, out))
    }

    /// One recorded event: replay it and compare the outputs. Returns the commands
    /// without their saves.
    pub fn event(
        &mut self,
        seq: u64,
        input: &Input,
        recorded: &[Value],
    ) -> Result<Out<Node>, Fault> {
        let (Some(actor), Some(state)) = (self.actor.as_ref(), self.state.take()) else {
            return Err(Fault::Incomplete(format!(
                "node {}: an event before any start",
                self.id
            )));
        };
        let mut cow: Cow<'static, NodeState> = Cow::Owned(state);
        let mut out = Out::new();
        match input {
            Input::Msg { src, msg } => {
                let msg: Msg = match decode("message", msg) {
                    Ok(m) => m,
                    Err(e) => {
                        self.state = Some(cow.into_owned());
                        return Err(e);
                    }
                };
                actor.on_msg(self.me(), &mut cow, Id::from(*src as usize), msg, &mut out);
            }
            Input::Timer(t) => {
                let timer: Timer = match decode("timer", t) {
                    Ok(t) => t,
                    Err(e) => {
                        self.state = Some(cow.into_owned());
                        return Err(e);
                    }
                };
                if !self.armed.remove(&timer) {
                    self.state = Some(cow.into_owned());
                    return Err(Fault::Violation(format!(
                        "node {} life {} event {seq}: timer {} fired but was not armed (the driver fired a timer the core did not set, or one it cancelled)",
                        self.id,
                        self.lives,
                        short(t)
                    )));
                }
                actor.on_timeout(self.me(), &mut cow, &timer, &mut out);
            }
        }
        self.state = Some(cow.into_owned());
        self.events += 1;
        self.compare(seq, recorded, &out)?;
        Ok(self.after(seq, out))
    }

    fn compare(&self, seq: u64, recorded: &[Value], out: &Out<Node>) -> Result<(), Fault> {
        let replayed = commands_json(out);
        let (a, b) = (Value::Array(recorded.to_vec()), Value::Array(replayed));
        match first_diff("out", &a, &b) {
            None => Ok(()),
            Some((path, rec, rep)) => Err(Fault::Violation(format!(
                "node {} life {} event {seq}: the recorded output differs from the core's at {path}: recorded {rec}, replayed {rep}",
                self.id, self.lives
            ))),
        }
    }

    /// Apply the commands' timers and keep the last save; the commands come back without
    /// their saves (moved, not copied: a save is the whole durable state).
    fn after(&mut self, seq: u64, out: Out<Node>) -> Out<Node> {
        let mut rest = Out::new();
        for c in out {
            match c {
                Command::SetTimer(t, r) => {
                    self.armed.insert(t.clone());
                    rest.set_timer(t, r);
                }
                Command::CancelTimer(t) => {
                    self.armed.remove(&t);
                    rest.cancel_timer(t);
                }
                Command::Save(v) => self.pending_save = Some((seq, v)),
                Command::Send(dst, m) => rest.send(dst, m),
                Command::ChooseRandom(..) => {}
            }
        }
        rest
    }

    /// A `durable` line: the fsynced value must be the last save of the events `..=upto`.
    pub fn durable(&mut self, upto: u64, hash: &str) -> Result<(), Fault> {
        let Some((seq, value)) = self.pending_save.take() else {
            return Err(Fault::Violation(format!(
                "node {} life {}: a durable write after event {upto} that no Save of the core asked for",
                self.id, self.lives
            )));
        };
        let want = value_hash(&value);
        if want != hash {
            return Err(Fault::Violation(format!(
                "node {} life {}: the value made durable after event {upto} (hash {hash}) is not the core's last Save (event {seq}, hash {want})",
                self.id, self.lives
            )));
        }
        self.durable = Some(value);
        Ok(())
    }

    /// A `sent` line: no send may leave while a save before it is not durable.
    pub fn sent(&mut self, upto: u64) -> Result<(), Fault> {
        match &self.pending_save {
            Some((seq, _)) if *seq <= upto => Err(Fault::Violation(format!(
                "node {} life {}: the sends of events ..={upto} left before the save of event {seq} was durable (persist-before-send)",
                self.id, self.lives
            ))),
            _ => Ok(()),
        }
    }
}
