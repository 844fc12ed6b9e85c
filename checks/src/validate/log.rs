//! Reading a node's event log (`events.jsonl`, format `petrel-events/2`, written by
//! `node/src/eventlog.rs`) into lives: a start line and the events and effects after it.
//!
//! Nothing read from disk is trusted: a line that does not parse, a log that does not
//! begin with a start line, a rotated log (its beginning is gone) or a line the node could
//! not serialise makes the log *incomplete*, which validation reports (exit 2), never as a
//! pass. Messages and timers stay JSON here; the replay decodes them into the core's
//! types, so this reader survives new `Msg`/`Timer` variants.
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "events.jsonl";
pub const FORMAT: &str = "petrel-events/2";

#[derive(Clone, Debug, Deserialize)]
pub struct StartRec {
    pub format: String,
    pub id: u64,
    /// The actor (`petrel_core::Node`) with its whole static configuration.
    pub actor: Value,
    pub storage: bool,
    pub storage_hash: Option<String>,
    pub incarnation: u32,
    pub unix_ms: u64,
    pub pid: u32,
}

#[derive(Clone, Debug)]
pub enum Input {
    Msg { src: u64, msg: Value },
    Timer(Value),
}

#[derive(Clone, Debug)]
pub enum Item {
    Event {
        seq: u64,
        ms: u64,
        input: Input,
        out: Vec<Value>,
    },
    Durable {
        upto: u64,
        hash: String,
        ms: u64,
    },
    Sent {
        upto: u64,
        count: u64,
        ms: u64,
    },
}

impl Item {
    pub fn ms(&self) -> u64 {
        match self {
            Item::Event { ms, .. } | Item::Durable { ms, .. } | Item::Sent { ms, .. } => *ms,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Life {
    pub start: StartRec,
    /// The commands `on_start` produced.
    pub start_out: Vec<Value>,
    pub items: Vec<Item>,
    /// 1-based line number of the start line in the file (for messages).
    pub line: usize,
    /// Events after the start.
    pub events: u64,
}

#[derive(Clone, Debug)]
pub struct NodeLog {
    pub path: PathBuf,
    pub id: u64,
    pub lives: Vec<Life>,
}

/// Why a log cannot be judged.
#[derive(Clone, Debug)]
pub struct Incomplete {
    pub path: PathBuf,
    pub why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    seq: u64,
    ms: u64,
    event: EventRec,
    out: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventRec {
    Start(StartRec),
    Msg { src: u64, msg: Value },
    Timer(Value),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EffectLine {
    Durable { upto: u64, hash: String, ms: u64 },
    Sent { upto: u64, count: u64, ms: u64 },
}

/// Every `events.jsonl` under `dir` (a node's data directory, a cluster's, or a whole
/// `petrel up --dir`), sorted by path.
pub fn find_logs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() == FILE_NAME {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the lines after a line are only blank lines, or begin (after blank lines) with
/// the start of a new life.
fn ends_a_life(rest: &[&str]) -> bool {
    match rest.iter().find(|l| !l.trim().is_empty()) {
        None => true,
        Some(next) => serde_json::from_str::<Value>(next)
            .ok()
            .is_some_and(|v| v.pointer("/event/start").is_some()),
    }
}

/// Read one node's log. `Err` says why it is incomplete or unreadable.
pub fn read(path: &Path) -> Result<NodeLog, Incomplete> {
    let bad = |why: String| Incomplete {
        path: path.to_path_buf(),
        why,
    };
    let rotated = path.with_extension("jsonl.1");
    if rotated.exists() {
        return Err(bad(format!(
            "the log rotated ({} exists): its beginning is gone, so the run cannot be replayed (raise [eventlog] max_bytes)",
            rotated.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut lives: Vec<Life> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // The last line of a life may be torn by a `kill -9` (the node writes its
            // lines through a buffer). Nothing of it took effect: its event's saves and
            // sends are confirmed only by `durable` / `sent` lines after it, which a torn
            // line cannot have. Anywhere else a line that is not JSON is damage.
            Err(e) if !ends_a_life(&lines[i + 1..]) => {
                return Err(bad(format!("line {n} is not JSON ({e})")))
            }
            Err(_) => continue,
        };
        if let Some(e) = v.get("error") {
            return Err(bad(format!(
                "line {n}: the node could not record an event ({e})"
            )));
        }
        if v.get("event").is_some() {
            let ev: EventLine = serde_json::from_value(v)
                .map_err(|e| bad(format!("line {n}: not an event line ({e})")))?;
            let input = match ev.event {
                EventRec::Start(start) => {
                    if start.format != FORMAT {
                        return Err(bad(format!(
                            "line {n}: format {:?}, this validator reads {FORMAT}",
                            start.format
                        )));
                    }
                    if ev.seq != 1 {
                        return Err(bad(format!(
                            "line {n}: a start with seq {} (expected 1)",
                            ev.seq
                        )));
                    }
                    if let Some(prev) = lives.first() {
                        if prev.start.id != start.id {
                            return Err(bad(format!(
                                "line {n}: node {} in the log of node {}",
                                start.id, prev.start.id
                            )));
                        }
                    }
                    lives.push(Life {
                        start,
                        start_out: ev.out,
                        items: Vec::new(),
                        line: n,
                        events: 0,
                    });
                    continue;
                }
                EventRec::Msg { src, msg } => Input::Msg { src, msg },
                EventRec::Timer(t) => Input::Timer(t),
            };
            let Some(life) = lives.last_mut() else {
                return Err(bad(format!(
                    "line {n}: events before any start line (the log lost its beginning)"
                )));
            };
            let expected = life.events + 2;
            if ev.seq != expected {
                return Err(bad(format!(
                    "line {n}: event seq {} where {expected} was expected (lines are missing)",
                    ev.seq
                )));
            }
            life.events += 1;
            life.items.push(Item::Event {
                seq: ev.seq,
                ms: ev.ms,
                input,
                out: ev.out,
            });
        } else {
            let eff: EffectLine = serde_json::from_value(v)
                .map_err(|e| bad(format!("line {n}: unknown line ({e})")))?;
            let Some(life) = lives.last_mut() else {
                return Err(bad(format!(
                    "line {n}: effects before any start line (the log lost its beginning)"
                )));
            };
            life.items.push(match eff {
                EffectLine::Durable { upto, hash, ms } => Item::Durable { upto, hash, ms },
                EffectLine::Sent { upto, count, ms } => Item::Sent { upto, count, ms },
            });
        }
    }
    let Some(first) = lives.first() else {
        return Err(bad("the log is empty".into()));
    };
    Ok(NodeLog {
        path: path.to_path_buf(),
        id: first.start.id,
        lives,
    })
}
