//! A per-node record of every input the actor saw, every command it produced, and when
//! the driver carried out the durable and the network effects — as JSON lines, so that a
//! run can be replayed through the same core afterwards and judged by the model's
//! properties (`petrel-check validate`; node/README.md, "Event log").
//!
//! Three kinds of line:
//! ```json
//! {"seq":1,"ms":0,"event":{"start":{...}},"out":[...]}
//! {"seq":7,"ms":1234,"event":{"msg":{"src":3,"msg":{"Write":{...}}}},"out":[{"send":{"dst":1,"msg":{...}}},{"save":{}}]}
//! {"durable":{"upto":7,"hash":"9c1e…","ms":1236}}
//! {"sent":{"upto":7,"count":2,"ms":1236}}
//! ```
//! * an **event** (`seq` counts the events of one process life, from 1): `start` (the
//!   actor's id, its whole static configuration, whether storage was given and the hash
//!   of the stored value, the life it announces, wall-clock time and process id), a
//!   delivered `msg` with its sender (a `PeerDown` is the driver's), or a fired `timer`;
//!   `out` lists the actor's commands in order, sends with the whole message (so a send is
//!   matched to its delivery on the receiver by content and per-link occurrence, with no
//!   wire change);
//! * **`durable`**: the value of the last `Save` among events `..=upto` is fsynced; `hash`
//!   is [`value_hash`] of that value (the log never carries the state: a restart's stored
//!   value is the previous life's last durable save, which the validator re-derives);
//! * **`sent`**: the sends of the events `..=upto` were handed to the transport.
//!
//! So persist-before-send is checkable from the log alone: a `sent` line must come after
//! the `durable` line covering every save before it.
//!
//! The start line is written before anything else of a life, and the batch's event lines
//! reach the file (the OS) *before* its fsync: a `kill -9` right after the fsync leaves
//! the events that produced the durable value in the log, so the next life's stored value
//! can still be matched. Lines are not fsynced themselves (a power loss may cut the log;
//! the validator then reports it incomplete, never a pass).
//!
//! Bounded: when `events.jsonl` passes `max_bytes` it becomes `events.jsonl.1` (replacing
//! the previous one) and a new file starts, so at most 2 × `max_bytes` is kept. A rotated
//! log has lost its beginning: validation says "incomplete" (exit 2).
use petrel_core::{Msg, Node, Timer};
use serde::Serialize;
use stateright::actor::{Command, Out};
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const FILE_NAME: &str = "events.jsonl";
/// The first line of every life names the format.
pub const FORMAT: &str = "petrel-events/2";

/// A 64-bit hash fed by the value's `std::hash::Hash`: deterministic across processes
/// of the same build (no random keys), which is all a validator linked against the same
/// core needs. Written as 16 hex digits.
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

/// What the actor was started with.
#[derive(Serialize)]
pub struct Start<'a> {
    pub format: &'static str,
    pub id: u64,
    pub actor: &'a Node,
    /// Storage was given to `on_start` (a restart), and [`value_hash`] of it.
    pub storage: bool,
    pub storage_hash: Option<String>,
    /// The life the transport announces (`NodeState::incarnation` after `on_start`).
    pub incarnation: u32,
    /// Wall-clock milliseconds since the Unix epoch at start (`ms` is relative to it).
    pub unix_ms: u128,
    pub pid: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event<'a> {
    Start(Start<'a>),
    Msg { src: u64, msg: &'a Msg },
    Timer(&'a Timer),
}

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

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    ms: u128,
    event: Event<'a>,
    out: Vec<Cmd<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Effect<'a> {
    Durable { upto: u64, hash: &'a str, ms: u128 },
    Sent { upto: u64, count: usize, ms: u128 },
}

pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    seq: u64,
    start: Instant,
    /// Rotations so far (each one drops the older half).
    rotated: u32,
}

fn ends_with_newline(file: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

impl EventLog {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<EventLog> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut written = file.metadata()?.len();
        // A `kill -9` may leave the previous life's last line torn (the buffer reached the
        // file in pieces). End it, so this life's start line stands on a line of its own
        // and the validator sees the torn tail for what it is.
        if written > 0 && !ends_with_newline(&mut file)? {
            file.write_all(b"\n")?;
            written += 1;
        }
        Ok(EventLog {
            path,
            out: BufWriter::new(file),
            written,
            max_bytes: max_bytes.max(4096),
            seq: 0,
            start: Instant::now(),
            rotated: 0,
        })
    }

    /// The sequence number of the last event recorded (0 before the start).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Milliseconds since this log was opened (the start line's `unix_ms` anchors them).
    pub fn ms(&self) -> u128 {
        self.start.elapsed().as_millis()
    }

    /// Record one event and what the actor answered. Errors are returned for the caller
    /// to log; losing the diagnostic log never stops the node.
    pub fn record(&mut self, event: Event<'_>, out: &Out<Node>) -> std::io::Result<()> {
        if matches!(event, Event::Start(_)) {
            self.seq = 0;
        }
        let cmds = out
            .iter()
            .map(|c| match c {
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
            })
            .collect();
        self.seq += 1;
        let line = Line {
            seq: self.seq,
            ms: self.ms(),
            event,
            out: cmds,
        };
        let bytes = serde_json::to_vec(&line).unwrap_or_else(|e| {
            // A value JSON cannot express (e.g. a map with struct keys): keep a line that
            // says so (the validator reports the log unreadable there, never a pass).
            serde_json::to_vec(&serde_json::json!({"seq": self.seq, "error": e.to_string()}))
                .unwrap_or_default()
        });
        self.write_line(bytes)
    }

    /// The value of the last save among the events recorded so far is durable.
    pub fn durable(&mut self, hash: &str) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&Effect::Durable {
            upto: self.seq,
            hash,
            ms: self.ms(),
        })
        .unwrap_or_default();
        self.write_line(bytes)
    }

    /// The sends of the events recorded so far were handed to the transport.
    pub fn sent(&mut self, count: usize) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&Effect::Sent {
            upto: self.seq,
            count,
            ms: self.ms(),
        })
        .unwrap_or_default();
        self.write_line(bytes)
    }

    fn write_line(&mut self, mut bytes: Vec<u8>) -> std::io::Result<()> {
        bytes.push(b'\n');
        if self.written + bytes.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate()?;
        }
        self.out.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Hand the buffered lines to the OS (not fsynced; see the module's notes).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let old = self.path.with_extension("jsonl.1");
        fs::rename(&self.path, &old)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        self.rotated += 1;
        Ok(())
    }

    /// Times this log rotated (each time, its older half was replaced).
    pub fn rotations(&self) -> u32 {
        self.rotated
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::replica::ReplicaCfg;
    use petrel_core::{Bugs, Gpid};
    use stateright::actor::Id;

    fn actor() -> Node {
        Node::Replica(ReplicaCfg {
            dir: petrel_core::auth::Directory {
                meta: Id::from(0),
                ..Default::default()
            },
            bootstrap: vec![],
            bootstrap_dups: vec![],
            accept_duplication: false,
            gc: true,
            ship_batch: 64,
            lease: None,
            bugs: Bugs::none(),
        })
    }

    fn start(actor: &Node) -> Event<'_> {
        Event::Start(Start {
            format: FORMAT,
            id: 1,
            actor,
            storage: false,
            storage_hash: None,
            incarnation: 1,
            unix_ms: 0,
            pid: 1,
        })
    }

    #[test]
    fn lines_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path(), 4096).expect("open");
        let mut out: Out<Node> = Out::new();
        out.send(
            Id::from(2),
            Msg::QueryConfig {
                gpid: Gpid::default(),
            },
        );
        out.set_timer(
            Timer::RequestTimeout,
            std::time::Duration::from_millis(5)..std::time::Duration::from_millis(9),
        );
        let a = actor();
        log.record(start(&a), &out).expect("record");
        let m = Msg::Register { incarnation: 2 };
        for _ in 0..200 {
            log.record(Event::Msg { src: 3, msg: &m }, &Out::new())
                .expect("record");
        }
        log.record(Event::Timer(&Timer::RequestTimeout), &out)
            .expect("record");
        log.durable("00000000000000ff").expect("durable");
        log.sent(2).expect("sent");
        log.flush().expect("flush");
        assert!(log.rotations() > 0);
        let cur = fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        let old = fs::read_to_string(dir.path().join("events.jsonl.1")).expect("rotated");
        assert!(cur.len() <= 4096 && old.len() <= 4096);
        let lines: Vec<serde_json::Value> = cur
            .lines()
            .chain(old.lines())
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert!(lines.iter().all(|v| v.get("event").is_some()
            || v.get("durable").is_some()
            || v.get("sent").is_some()));
        let tail: Vec<&str> = cur.lines().rev().take(3).collect();
        let last: serde_json::Value = serde_json::from_str(tail[2]).expect("json");
        assert_eq!(last["event"]["timer"], "RequestTimeout");
        assert_eq!(last["seq"], 202);
        assert_eq!(last["out"][1]["set_timer"]["min_ms"], 5);
        let durable: serde_json::Value = serde_json::from_str(tail[1]).expect("json");
        assert_eq!(
            (
                durable["durable"]["upto"].as_u64(),
                durable["durable"]["hash"].as_str()
            ),
            (Some(202), Some("00000000000000ff"))
        );
        let sent: serde_json::Value = serde_json::from_str(tail[0]).expect("json");
        assert_eq!(
            (
                sent["sent"]["upto"].as_u64(),
                sent["sent"]["count"].as_u64()
            ),
            (Some(202), Some(2))
        );
    }

    #[test]
    fn the_start_line_carries_the_whole_actor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path(), 1 << 20).expect("open");
        let a = actor();
        log.record(start(&a), &Out::new()).expect("record");
        log.flush().expect("flush");
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        let v: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("line")).expect("json");
        let back: Node =
            serde_json::from_value(v["event"]["start"]["actor"].clone()).expect("actor decodes");
        assert_eq!(back, a);
        assert_eq!(v["event"]["start"]["format"], FORMAT);
    }

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_life_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, "{\"seq\":1}\n{\"seq\":2,\"ms\":4,\"ev").expect("write");
        let mut log = EventLog::open(dir.path(), 1 << 20).expect("open");
        let a = actor();
        log.record(start(&a), &Out::new()).expect("record");
        log.flush().expect("flush");
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "{\"seq\":2,\"ms\":4,\"ev");
        let v: serde_json::Value = serde_json::from_str(lines[2]).expect("the start line");
        assert_eq!(v["event"]["start"]["format"], FORMAT);
        // A whole last line is left as it is.
        drop(log);
        let before = fs::read_to_string(&path).expect("read");
        drop(EventLog::open(dir.path(), 1 << 20).expect("open"));
        assert_eq!(fs::read_to_string(&path).expect("read"), before);
    }

    #[test]
    fn the_hash_is_stable_and_tells_values_apart() {
        assert_eq!(value_hash(&(1u64, "a")), value_hash(&(1u64, "a")));
        assert_ne!(value_hash(&(1u64, "a")), value_hash(&(1u64, "b")));
        assert_eq!(value_hash(&0u8).len(), 16);
    }
}
