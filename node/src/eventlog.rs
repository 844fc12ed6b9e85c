//! A per-node record of every event the actor handled and the commands it produced, as
//! JSON lines — so a run can be read after the fact, replayed through the core, and
//! checked against the model.
//!
//! One line per event:
//! ```json
//! {"seq":7,"ms":1234,"event":{"msg":{"src":3,"msg":{"Write":{...}}}},"out":[{"send":{"dst":1,"msg":{...}}},{"save":{}}]}
//! ```
//! `event` is `{"start":{"storage":bool}}` (first boot or restart, with stored state or
//! not), `{"msg":{"src":ID,"msg":MSG}}` or `{"timer":TIMER}`; `ms` is milliseconds since
//! the process started. A `save` command is logged without its value (it is the whole
//! durable state, which the replay re-derives); timers keep their range in milliseconds.
//!
//! Bounded: when `events.jsonl` passes `max_bytes` it becomes `events.jsonl.1` (replacing
//! the previous one) and a new file starts, so at most 2 × `max_bytes` is kept. Lines are
//! buffered and flushed once per batch of events (not fsynced: the log is a diagnostic,
//! and a crash may lose its last lines, never the node's durable state).
use petrel_core::{Msg, Node, Timer};
use serde::Serialize;
use stateright::actor::{Command, Out};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const FILE_NAME: &str = "events.jsonl";

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event<'a> {
    Start { storage: bool },
    Msg { src: u64, msg: &'a Msg },
    Timer(&'a Timer),
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Cmd<'a> {
    Send { dst: u64, msg: &'a Msg },
    SetTimer { timer: &'a Timer, min_ms: u128, max_ms: u128 },
    CancelTimer { timer: &'a Timer },
    Save {},
    ChooseRandom { key: &'a str },
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    ms: u128,
    event: Event<'a>,
    out: Vec<Cmd<'a>>,
}

pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    seq: u64,
    start: Instant,
}

impl EventLog {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<EventLog> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(EventLog { path, out: BufWriter::new(file), written, max_bytes: max_bytes.max(4096), seq: 0, start: Instant::now() })
    }

    /// Record one event and what the actor answered. Errors are returned for the caller
    /// to log; losing the diagnostic log never stops the node.
    pub fn record(&mut self, event: Event<'_>, out: &Out<Node>) -> std::io::Result<()> {
        let cmds = out
            .iter()
            .map(|c| match c {
                Command::Send(dst, msg) => Cmd::Send { dst: usize::from(*dst) as u64, msg },
                Command::SetTimer(timer, r) => Cmd::SetTimer { timer, min_ms: r.start.as_millis(), max_ms: r.end.as_millis() },
                Command::CancelTimer(timer) => Cmd::CancelTimer { timer },
                Command::Save(_) => Cmd::Save {},
                Command::ChooseRandom(key, _) => Cmd::ChooseRandom { key },
            })
            .collect();
        self.seq += 1;
        let line = Line { seq: self.seq, ms: self.start.elapsed().as_millis(), event, out: cmds };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_else(|e| {
            // A value JSON cannot express (e.g. a map with struct keys): keep the line.
            serde_json::to_vec(&serde_json::json!({"seq": self.seq, "error": e.to_string()})).unwrap_or_default()
        });
        bytes.push(b'\n');
        if self.written + bytes.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate()?;
        }
        self.out.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let old = self.path.with_extension("jsonl.1");
        fs::rename(&self.path, &old)?;
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::Gpid;
    use stateright::actor::Id;

    #[test]
    fn lines_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path(), 4096).expect("open");
        let mut out: Out<Node> = Out::new();
        out.send(Id::from(2), Msg::QueryConfig { gpid: Gpid::default() });
        out.set_timer(Timer::RequestTimeout, std::time::Duration::from_millis(5)..std::time::Duration::from_millis(9));
        log.record(Event::Start { storage: false }, &out).expect("record");
        let m = Msg::Register { incarnation: 2 };
        for _ in 0..200 {
            log.record(Event::Msg { src: 3, msg: &m }, &Out::new()).expect("record");
        }
        log.record(Event::Timer(&Timer::RequestTimeout), &out).expect("record");
        log.flush().expect("flush");
        let cur = fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        let old = fs::read_to_string(dir.path().join("events.jsonl.1")).expect("rotated");
        assert!(cur.len() <= 4096 && old.len() <= 4096);
        for line in cur.lines().chain(old.lines()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            assert!(v.get("seq").is_some() && v.get("event").is_some(), "{line}");
        }
        let last: serde_json::Value = serde_json::from_str(cur.lines().last().expect("a line")).expect("json");
        assert_eq!(last["event"]["timer"], "RequestTimeout");
        assert_eq!(last["out"][1]["set_timer"]["min_ms"], 5);
    }
}
