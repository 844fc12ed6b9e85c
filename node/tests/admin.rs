//! `petrel admin` against a real meta server: tables created and listed, duplications
//! added, paused, restarted and removed, and the meta server's refusals (an invalid status
//! change, an unknown duplication, an existing table) printed clearly with exit status 1;
//! no answer is exit status 2. Cluster `b` is in the address book but not running, so a
//! full duplication to it stalls with a reason.
//!
//! Every child process is killed when its guard drops; every wait is bounded.
mod common;
use common::*;
use petrel_node::up;
use std::path::Path;
use std::time::{Duration, Instant};

fn ok(out: &Output) -> &str {
    assert_eq!(
        out.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    out.stdout.trim()
}

fn refused(out: &Output, reason: &str) {
    assert_eq!(
        out.code,
        Some(1),
        "expected a refusal; stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains(reason),
        "stderr lacks {reason:?}: {}",
        out.stderr
    );
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = petrel_admin(config, &[args, &["--json"]].concat());
    serde_json::from_str(ok(&out)).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn dup_status(config: &Path, dupid: u64) -> serde_json::Value {
    let j = json(config, &["dup", "list"]);
    j["duplications"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["dupid"] == dupid).cloned())
        .unwrap_or_else(|| panic!("no dup {dupid}: {j}"))
}

#[test]
fn tables_and_duplications_are_administered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plans = up::pair_plans(1, 1).expect("plans");
    for p in &mut plans {
        p.transport = fast_plan(&p.cluster, 1).transport;
    }
    let layouts = up::write_clusters(dir.path(), &plans).expect("layouts");
    let a = &layouts[0];
    // Only cluster a runs; b is in the address book (a duplication partner) but down.
    let mut procs = Vec::new();
    for n in &a.nodes {
        let log = a.dir.join(format!("{}.log", n.name()));
        let config = n.config.to_string_lossy().to_string();
        let mut p = Proc::spawn(&n.name(), &[&n.role.to_string(), "--config", &config], &log);
        p.wait_log(" ready", 1, Duration::from_secs(20));
        procs.push(p);
    }
    let cc = &a.admin_config;

    // A client certificate is not an operator's: refused before any traffic, saying what
    // is needed.
    let out = petrel_admin(&a.client_config, &["table", "list"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("needs an operator configuration") && out.stderr.contains("admin.toml"),
        "{}",
        out.stderr
    );

    // Tables.
    let out = petrel_admin(
        cc,
        &[
            "table",
            "create",
            "--id",
            "2",
            "--partitions",
            "2",
            "--replicas",
            "1",
        ],
    );
    assert!(
        ok(&out).contains("table 2 created: 2 partition(s)"),
        "{}",
        out.stdout
    );
    refused(
        &petrel_admin(
            cc,
            &[
                "table",
                "create",
                "--id",
                "2",
                "--partitions",
                "1",
                "--replicas",
                "1",
            ],
        ),
        "table 2 exists",
    );
    refused(
        &petrel_admin(
            cc,
            &[
                "table",
                "create",
                "--id",
                "3",
                "--partitions",
                "0",
                "--replicas",
                "1",
            ],
        ),
        "at least one partition",
    );
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let j = json(cc, &["table", "list"]);
        let t2 = j["tables"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["table"] == 2).cloned())
            .expect("table 2 listed");
        assert_eq!(t2["partitions"], 2, "{j}");
        if t2["partitions_with_primary"] == 2 {
            break;
        }
        assert!(
            Instant::now() < until,
            "table 2's partitions got no primary: {j}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = petrel_admin(cc, &["table", "list"]);
    let text = ok(&out);
    assert!(
        text.starts_with("TABLE") && text.lines().count() == 3,
        "{text}"
    );

    // A log-only duplication to b: LOG at once; pause, start, remove.
    let out = petrel_admin(cc, &["dup", "add", "--table", "1", "--remote-cluster", "b"]);
    assert!(
        ok(&out).contains("duplication 1: table 1 -> cluster b (meta 100) table 1")
            && out.stdout.contains("starts in LOG"),
        "{}",
        out.stdout
    );
    assert_eq!(dup_status(cc, 1)["status"], "LOG");
    assert_eq!(
        ok(&petrel_admin(cc, &["dup", "pause", "1"])),
        "duplication 1 is now PAUSE"
    );
    assert_eq!(dup_status(cc, 1)["status"], "PAUSE");
    assert_eq!(
        ok(&petrel_admin(cc, &["dup", "start", "1"])),
        "duplication 1 is now LOG"
    );
    assert_eq!(
        ok(&petrel_admin(cc, &["dup", "remove", "1"])),
        "duplication 1 is now REMOVED"
    );
    // Invalid transition: the meta server's reason, exit 1.
    refused(
        &petrel_admin(cc, &["dup", "start", "1"]),
        "duplication 1 cannot change from REMOVED to LOG",
    );
    // Unknown duplication.
    refused(
        &petrel_admin(cc, &["dup", "pause", "42"]),
        "no duplication 42",
    );
    let out = petrel_admin(cc, &["dup", "pause", "42", "--json"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("json")["error"],
        "no duplication 42"
    );
    // Requests the meta server refuses, or that never leave.
    refused(
        &petrel_admin(cc, &["dup", "add", "--table", "9", "--remote-cluster", "b"]),
        "no table 9",
    );
    let out = petrel_admin(
        cc,
        &["dup", "add", "--table", "1", "--remote-cluster", "zz"],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("knows no cluster \"zz\""),
        "{}",
        out.stderr
    );

    // A full duplication to b, which is down: PREPARE, then a stall reason (three create
    // requests unanswered, 3 s apart).
    let out = petrel_admin(
        cc,
        &[
            "dup",
            "add",
            "--table",
            "1",
            "--remote-cluster",
            "b",
            "--full",
        ],
    );
    assert!(
        ok(&out).contains("duplication 2") && out.stdout.contains("PREPARE"),
        "{}",
        out.stdout
    );
    let started = Instant::now();
    let until = Instant::now() + Duration::from_secs(30);
    let stall = loop {
        let d = dup_status(cc, 2);
        assert_eq!(d["status"], "PREPARE", "{d}");
        if let Some(s) = d["stall"].as_str() {
            break s.to_string();
        }
        assert!(Instant::now() < until, "no stall reason within 30 s: {d}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        stall.contains("did not answer 3 create requests"),
        "{stall}"
    );
    eprintln!(
        "measured: full dup to a down cluster stalled after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let out = petrel_admin(cc, &["dup", "list"]);
    assert!(
        ok(&out).contains("did not answer 3 create requests") && out.stdout.contains("REMOVED"),
        "{}",
        out.stdout
    );

    // Cluster status: partitions with their primary's life, replica servers, duplications.
    let out = petrel_admin(cc, &["cluster", "status"]);
    let text = ok(&out);
    for needle in [
        "cluster a (meta server 0)",
        "1 (life 1)",
        "alive (life 1)",
        "PREPARE",
        "did not answer",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    let j = json(cc, &["cluster", "status"]);
    assert_eq!(j["partitions"].as_array().map(Vec::len), Some(3), "{j}");
    assert_eq!(j["alive"][0]["id"], 1, "{j}");

    // No answer: b's meta server is not running. Exit 2 with a message naming it.
    let out = petrel_admin(
        &layouts[1].admin_config,
        &["cluster", "status", "--deadline-ms", "1500"],
    );
    assert_eq!(
        out.code,
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("meta server (node 100)"),
        "{}",
        out.stderr
    );

    // Every administrative change went through a's meta server's core: the run replays.
    for p in &mut procs {
        p.stop(Duration::from_secs(10));
    }
    assert_valid(&[&a.dir], 0);
}
