//! Trace validation bites: a real run (real `petrel` processes over QUIC) validates, and
//! the validator reports a driver that sends before it saves (a real node with the
//! test-only switch, and a recorded log edited the same way), a recorded output that is
//! not the core's, a client history edited to hold a stale read, an incomplete log, and a
//! real cluster running one of the core's mutants.
mod common;
use common::*;
use petrel_node::runtime::{SEND_BEFORE_SAVE_ENV, TEST_BUG_ENV};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A 3-replica cluster serves a short workload through a recording library client, then
/// every node is stopped.
fn run(env: &[(&str, &str)]) -> Cluster {
    let mut c = Cluster::start_env(&fast_plan("alpha", 3), env);
    let cc = c.client_config();
    let rt = runtime();
    rt.block_on(async {
        let client = recording(&cc).await;
        for i in 0..12 {
            let key = format!("k{}", i % 3);
            client
                .put(key.as_str(), format!("v{i}").as_str())
                .await
                .expect("put");
            assert_eq!(
                client
                    .get(key.as_str())
                    .await
                    .expect("get")
                    .map(|v| v.to_text()),
                Some(format!("v{i}"))
            );
        }
        // The stale-read edit below needs: put s 1, put s 2, get s → 2, one after another.
        client.put("s", "1").await.expect("put");
        client.put("s", "2").await.expect("put");
        assert_eq!(
            client.get("s").await.expect("get").map(|v| v.to_text()),
            Some("2".into())
        );
        client.close().await;
    });
    c.stop_all();
    c
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    petrel_checks::validate::log::find_logs(dir).expect("logs")
}

/// Edit `path` with `edit` (which must change it), run `check`, restore the file.
fn with_edit(path: &Path, edit: impl FnOnce(&str) -> String, check: impl FnOnce()) {
    let original = std::fs::read_to_string(path).expect("read");
    let edited = edit(&original);
    assert_ne!(
        edited,
        original,
        "the edit changed nothing in {}",
        path.display()
    );
    std::fs::write(path, edited).expect("write");
    check();
    std::fs::write(path, original).expect("restore");
}

#[test]
fn a_real_run_validates_and_edited_logs_and_histories_are_caught() {
    let c = run(&[]);
    let dir = c.layout.dir.clone();
    assert_valid(&[&dir], 27);

    // 1. Persist-before-send: a log edited so that a batch's sends precede its fsync.
    let (log, at) = logs(&dir)
        .into_iter()
        .find_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let lines: Vec<&str> = text.lines().collect();
            let i = lines
                .windows(2)
                .position(|w| w[0].starts_with("{\"durable\"") && w[1].starts_with("{\"sent\""))?;
            Some((p, i))
        })
        .expect("a batch with a save and sends");
    with_edit(
        &log,
        |t| {
            let mut lines: Vec<&str> = t.lines().collect();
            lines.swap(at, at + 1);
            lines.join("\n") + "\n"
        },
        || {
            let r = validate(&[&dir]);
            assert_eq!(r.exit_code(), 1, "{}", r.text());
            assert!(
                r.conformance
                    .iter()
                    .any(|c| c.contains("persist-before-send")),
                "{}",
                r.text()
            );
        },
    );

    // 2. Conformance: one recorded output changed (a timer's range) is named by node,
    //    event and field.
    let log = logs(&dir)
        .into_iter()
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"min_ms\":")))
        .expect("a timer");
    with_edit(
        &log,
        |t| {
            let at = t.find("\"min_ms\":").expect("min_ms") + "\"min_ms\":".len();
            format!("{}9{}", &t[..at], &t[at..])
        },
        || {
            let r = validate(&[&dir]);
            assert_eq!(r.exit_code(), 1, "{}", r.text());
            let c = r
                .conformance
                .iter()
                .find(|c| c.contains("differs from the core's"))
                .expect("a conformance break");
            assert!(c.contains("min_ms") && c.contains("event"), "{c}");
        },
    );

    // 3. A stale read: the history's last `get s` → 2 edited to → 1 (after put s 2 was
    //    acknowledged).
    let history = history_of(&c.client_config());
    with_edit(
        &history,
        |t| match t.rfind("{\"ReadOk\":\"2\"}") {
            Some(at) => format!(
                "{}{{\"ReadOk\":\"1\"}}{}",
                &t[..at],
                &t[at + "{\"ReadOk\":\"2\"}".len()..]
            ),
            None => t.to_string(),
        },
        || {
            let r = validate(&[&dir]);
            assert_eq!(r.exit_code(), 1, "{}", r.text());
            let v = r
                .lin
                .violations
                .first()
                .expect("a linearizability violation");
            assert!(
                v.starts_with("key s ") && v.contains("get → 1") && v.contains("put 2 ok"),
                "{v}"
            );
        },
    );

    // 4. Incomplete logs never pass: a rotated log (its beginning gone), a log without its
    //    first line.
    let log = logs(&dir).remove(0);
    let rotated = log.with_extension("jsonl.1");
    std::fs::write(&rotated, "").expect("write");
    let r = validate(&[&dir]);
    assert_eq!(r.exit_code(), 2, "{}", r.text());
    assert!(
        r.incomplete.iter().any(|i| i.contains("rotated")),
        "{}",
        r.text()
    );
    std::fs::remove_file(&rotated).expect("remove");
    with_edit(
        &log,
        |t| {
            t.split_once('\n')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default()
        },
        || {
            let r = validate(&[&dir]);
            assert_eq!(r.exit_code(), 2, "{}", r.text());
        },
    );
    assert_valid(&[&dir], 27);
}

#[test]
fn a_node_that_sends_before_it_saves_is_caught() {
    // Every node hands its sends to QUIC before the fsync: the cluster still serves, and
    // nothing but the log can tell.
    let c = run(&[(SEND_BEFORE_SAVE_ENV, "1")]);
    let r = validate(&[&c.layout.dir]);
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
fn the_node_and_the_validator_hash_alike() {
    let v = (
        petrel_core::Gpid {
            table: 1,
            partition: 2,
        },
        vec![petrel_core::Bytes::from("k")],
        Some(7u32),
    );
    assert_eq!(
        petrel_node::eventlog::value_hash(&v),
        petrel_checks::validate::value_hash(&v)
    );
}

#[test]
fn a_real_cluster_running_a_mutant_is_caught_by_the_properties() {
    // Every server runs `LearnSkipsCheckpoint` (a learner copies only the uncommitted
    // entries yet takes the primary's commit point). The replay runs the same mutant (the
    // start line records it), so conformance holds: the properties must catch it.
    let mut c = Cluster::start_env(
        &fast_plan("alpha", 3),
        &[(TEST_BUG_ENV, "LearnSkipsCheckpoint")],
    );
    let cc = c.client_config();
    for i in 0..3 {
        let out = petrel_client(&cc, &["put", &format!("a{i}"), "1"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let cfg = config_of(&cc);
    let secondary = cfg["config"]["secondaries"][0]
        .as_u64()
        .expect("a secondary");
    let name = format!("replica-{secondary}");
    c.proc(&name).kill9();
    // The meta server notices (1.5 s idle timeout) and takes it out of the configuration.
    let until = Instant::now() + Duration::from_secs(20);
    while config_of(&cc)["config"]["secondaries"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v.as_u64() == Some(secondary)))
    {
        assert!(
            Instant::now() < until,
            "replica {secondary} stayed a member after kill -9"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..3 {
        let out = petrel_client(&cc, &["put", &format!("b{i}"), "2"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let i = c
        .layout
        .nodes
        .iter()
        .position(|n| n.id == secondary)
        .expect("node");
    c.start_node(i);
    // It comes back as a learner and learns (wrongly).
    let events = c.layout.nodes[i].data_dir.join("events.jsonl");
    let until = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&events).is_ok_and(|t| t.contains("{\"Learn\":")) {
        assert!(
            Instant::now() < until,
            "replica {secondary} never learned after its restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    c.stop_all();
    let r = validate(&[&c.layout.dir]);
    assert_eq!(r.exit_code(), 1, "{}", r.text());
    assert!(
        r.conformance.is_empty(),
        "the replay runs the same mutant: {}",
        r.text()
    );
    let caught: Vec<&str> = r
        .properties
        .iter()
        .filter(|p| p.2.is_some())
        .map(|p| p.0.as_str())
        .collect();
    assert!(
        caught.contains(&"SAFE-5"),
        "caught by {caught:?}:\n{}",
        r.text()
    );
}
