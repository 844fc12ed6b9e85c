//! `validate` on logs written here the way the node writes them — by driving the core's
//! meta server in-process and recording what it did — and on the same logs with one
//! thing wrong each time: every mistake is reported with its reason and exit status.
use petrel_checks::validate::{self, replay::commands_json, value_hash, Options};
use petrel_core::meta::{MetaCfg, TableSpec};
use petrel_core::{Bugs, Msg, Node, NodeState, NodeStorage, Timer};
use serde_json::{json, Value};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::path::Path;

fn meta() -> Node {
    Node::Meta(MetaCfg {
        dir: petrel_core::auth::Directory {
            meta: Id::from(0),
            replicas: vec![Id::from(1), Id::from(2)],
            remote: Default::default(),
        },
        tables: vec![TableSpec {
            id: 1,
            partitions: 1,
            max_replica_count: 2,
            source: None,
        }],
        bootstrap_members: 0,
        dups: vec![],
        accept_duplication: false,
        grace: None,
        bugs: Bugs::none(),
    })
}

/// Records one node's life like `node/src/eventlog.rs` + `runtime.rs`: events, then a
/// `durable` line for the last save of the batch, then a `sent` line.
struct Recorder {
    lines: Vec<Value>,
    seq: u64,
    actor: Node,
    state: Option<NodeState>,
    last_save: Option<NodeStorage>,
}

impl Recorder {
    fn start(actor: Node, storage: Option<NodeStorage>, incarnation: u32) -> Recorder {
        let mut out = Out::new();
        let state = actor.on_start(Id::from(0), &storage, &mut out);
        let mut r = Recorder {
            lines: Vec::new(),
            seq: 1,
            actor: actor.clone(),
            state: Some(state),
            last_save: None,
        };
        let start = json!({"format": "petrel-events/2", "id": 0, "actor": actor, "storage": storage.is_some(),
            "storage_hash": storage.as_ref().map(value_hash), "incarnation": incarnation, "unix_ms": 1_000, "pid": 7});
        r.lines.push(
            json!({"seq": 1, "ms": 0, "event": {"start": start}, "out": commands_json(&out)}),
        );
        r.effects(&out);
        r
    }

    fn msg(&mut self, src: u64, msg: Msg) {
        let mut out = Out::new();
        let mut state = Cow::Owned(self.state.take().expect("started"));
        self.actor.on_msg(
            Id::from(0),
            &mut state,
            Id::from(src as usize),
            msg.clone(),
            &mut out,
        );
        self.state = Some(state.into_owned());
        self.seq += 1;
        self.lines.push(json!({"seq": self.seq, "ms": self.seq, "event": {"msg": {"src": src, "msg": msg}}, "out": commands_json(&out)}));
        self.effects(&out);
    }

    fn effects(&mut self, out: &Out<Node>) {
        let save = out.iter().rev().find_map(|c| match c {
            Command::Save(s) => Some(s.clone()),
            _ => None,
        });
        if let Some(s) = save {
            self.lines.push(
                json!({"durable": {"upto": self.seq, "hash": value_hash(&s), "ms": self.seq}}),
            );
            self.last_save = Some(s);
        }
        let sends = out
            .iter()
            .filter(|c| matches!(c, Command::Send(..)))
            .count();
        if sends > 0 {
            self.lines
                .push(json!({"sent": {"upto": self.seq, "count": sends, "ms": self.seq}}));
        }
    }
}

fn write(dir: &Path, lines: &[Value]) {
    let d = dir.join("data").join("n0");
    std::fs::create_dir_all(&d).expect("mkdir");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("events.jsonl"), text).expect("write");
}

fn verdict(lines: &[Value]) -> validate::Report {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), lines);
    validate::validate(&[dir.path().to_path_buf()], &Options::default())
}

/// Two lives of the meta server: a table created (a save, a reply), then a restart from
/// the last durable save.
fn two_lives() -> Vec<Value> {
    let mut r = Recorder::start(meta(), None, 1);
    r.msg(
        1 << 62,
        Msg::CreateTable {
            table: 2,
            partitions: 1,
            replica_count: 1,
        },
    );
    r.msg(1 << 62, Msg::QueryCluster);
    let stored = r.last_save.clone();
    assert!(stored.is_some(), "the meta server saves the new table");
    let mut lines = r.lines;
    let mut r2 = Recorder::start(meta(), stored, 1);
    r2.msg(1 << 62, Msg::QueryCluster);
    lines.extend(r2.lines);
    lines
}

#[test]
fn a_faithful_log_validates() {
    let r = verdict(&two_lives());
    assert_eq!(r.exit_code(), 0, "{}", r.text());
    assert_eq!(
        (r.nodes[0].lives, r.nodes[0].events),
        (2, 3),
        "{}",
        r.text()
    );
}

fn edited(edit: impl FnOnce(&mut Vec<Value>)) -> validate::Report {
    let mut lines = two_lives();
    edit(&mut lines);
    verdict(&lines)
}

fn position(lines: &[Value], key: &str) -> usize {
    lines
        .iter()
        .position(|l| l.get(key).is_some())
        .expect("such a line")
}

#[test]
fn a_send_before_its_save_is_durable_is_caught() {
    let r = edited(|l| {
        let d = position(l, "durable");
        let s = d + l[d..]
            .iter()
            .position(|x| x.get("sent").is_some())
            .expect("sent");
        let sent = l.remove(s);
        l.insert(d, sent);
    });
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance
            .iter()
            .any(|c| c.contains("persist-before-send")),
        "{}",
        r.text()
    );
}

#[test]
fn a_durable_value_that_is_not_the_cores_save_is_caught() {
    let r = edited(|l| {
        let d = position(l, "durable");
        l[d]["durable"]["hash"] = json!("0123456789abcdef");
    });
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance
            .iter()
            .any(|c| c.contains("is not the core's last Save")),
        "{}",
        r.text()
    );
}

#[test]
fn a_restart_from_other_storage_is_caught() {
    let r = edited(|l| {
        let s = l
            .iter()
            .rposition(|x| x["event"].get("start").is_some())
            .expect("second start");
        l[s]["event"]["start"]["storage_hash"] = json!("0123456789abcdef");
    });
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance
            .iter()
            .any(|c| c.contains("not its previous life's last durable save")),
        "{}",
        r.text()
    );
}

#[test]
fn a_dropped_command_and_an_unarmed_timer_are_caught() {
    let r = edited(|l| {
        let e = l
            .iter()
            .position(|x| x["out"].as_array().is_some_and(|o| !o.is_empty()) && x["seq"] == 2)
            .expect("event 2");
        l[e]["out"].as_array_mut().expect("out").pop();
    });
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance
            .iter()
            .any(|c| c.contains("event 2") && c.contains("out")),
        "{}",
        r.text()
    );

    let r = edited(|l| {
        // A timer the core never set fires as event 3 (the events after it renumbered).
        let e = l.iter().position(|x| x["seq"] == 3).expect("event 3");
        l[e]["event"] = json!({"timer": Timer::DupRetry});
        l[e]["out"] = json!([]);
    });
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance
            .iter()
            .any(|c| c.contains("fired but was not armed")),
        "{}",
        r.text()
    );
}

#[test]
fn incomplete_logs_never_pass() {
    // Lines missing in the middle, a log without its start, a line the node could not write.
    for edit in [
        (|l: &mut Vec<Value>| {
            let e = l.iter().position(|x| x["seq"] == 2).expect("event 2");
            l.remove(e);
        }) as fn(&mut Vec<Value>),
        |l| {
            l.remove(0);
        },
        |l| l.insert(1, json!({"seq": 2, "error": "key must be a string"})),
    ] {
        let r = edited(edit);
        assert_eq!(r.exit_code(), 2, "{}", r.text());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let r = validate::validate(&[dir.path().to_path_buf()], &Options::default());
    assert_eq!(
        r.exit_code(),
        2,
        "an empty directory is not a pass: {}",
        r.text()
    );
}

/// Write `lines` with a torn line (the first bytes of an event, as a `kill -9` in the
/// middle of a buffered write leaves them) inserted before line `at`.
fn verdict_torn_before(lines: &[Value], at: usize) -> validate::Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data").join("n0");
    std::fs::create_dir_all(&d).expect("mkdir");
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i == at {
            text.push_str("{\"seq\":99,\"ms\":7,\"even\n");
        }
        text.push_str(&format!("{l}\n"));
    }
    if at >= lines.len() {
        text.push_str("{\"seq\":99,\"ms\":7,\"even");
    }
    std::fs::write(d.join("events.jsonl"), text).expect("write");
    validate::validate(&[dir.path().to_path_buf()], &Options::default())
}

#[test]
fn a_torn_last_line_of_a_life_is_the_crash_and_a_torn_line_elsewhere_is_damage() {
    let lines = two_lives();
    let second_start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.pointer("/event/start").is_some())
        .nth(1)
        .map(|(i, _)| i)
        .expect("a second life");
    // Before the next life's start, and at the end of the file: the life ended there.
    for at in [second_start, lines.len()] {
        let r = verdict_torn_before(&lines, at);
        assert_eq!(r.exit_code(), 0, "torn before line {at}: {}", r.text());
    }
    // Inside a life: lines after it were written, so it is not a crash's torn tail.
    let r = verdict_torn_before(&lines, 1);
    assert_eq!(r.exit_code(), 2, "{}", r.text());
    assert!(r.text().contains("not JSON"), "{}", r.text());
}
