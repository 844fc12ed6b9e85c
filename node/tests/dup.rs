//! Duplication end to end with real processes: `petrel up --clusters 2` starts clusters
//! `a` and `b`; values written on `a` reach `b`'s follower table through a full
//! duplication (PREPARE → APP → LOG), then a new write ships in LOG. The commands are the
//! ones `up` prints (what the README shows), and the metrics endpoints `up` prints are
//! scraped along the way.
//!
//! `up` is stopped with SIGTERM (it stops its nodes) when the guard drops, SIGKILL if it
//! does not stop; every wait is bounded.
mod common;
use common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `up`, stopped cleanly (SIGTERM: it stops its nodes) when dropped.
struct Up(Proc);

impl Drop for Up {
    fn drop(&mut self) {
        self.0.stop(Duration::from_secs(20));
    }
}

/// What `up` printed: every node's cluster, role, id and metrics address, and the
/// suggested commands (arguments after the binary).
struct Printed {
    nodes: Vec<(String, String, u64, SocketAddr)>,
    commands: Vec<Vec<String>>,
}

fn parse_up(text: &str) -> Printed {
    let mut nodes = Vec::new();
    let mut commands = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "metrics") {
            // "a replica id 1 127.0.0.1:NNN metrics http://127.0.0.1:MMM/metrics log …"
            let url = words[at + 1]
                .trim_start_matches("http://")
                .trim_end_matches("/metrics");
            let id = words[3].parse().expect("node id");
            nodes.push((
                words[0].to_string(),
                words[1].to_string(),
                id,
                url.parse().expect("metrics address"),
            ));
        } else if words.len() > 2
            && words[0].ends_with("petrel")
            && matches!(words[1], "client" | "admin")
        {
            commands.push(words[1..].iter().map(|w| w.to_string()).collect());
        }
    }
    Printed { nodes, commands }
}

/// Run a printed command; a `client` command records in the history next to its config
/// (validated at the end of the test).
fn run(args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    match refs.iter().position(|w| *w == "--config") {
        Some(i) if refs.first() == Some(&"client") || refs.get(1) == Some(&"client") => {
            let history = history_of(Path::new(refs.get(i + 1).copied().unwrap_or(".")));
            petrel_env(
                &refs,
                &[(petrel_node::client::HISTORY_ENV, &history.to_string_lossy())],
            )
        }
        _ => petrel(&refs),
    }
}

/// The printed command that contains all of `words`.
fn command(p: &Printed, words: &[&str]) -> Vec<String> {
    p.commands
        .iter()
        .find(|c| words.iter().all(|w| c.iter().any(|x| x == w)))
        .cloned()
        .unwrap_or_else(|| panic!("up printed no command with {words:?}: {:?}", p.commands))
}

fn scrape(addr: SocketAddr) -> String {
    http_get(addr, "/metrics").unwrap_or_default()
}

#[test]
fn full_duplication_copies_the_checkpoint_then_ships_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("up.out");
    let out = std::fs::File::create(&out_path).expect("out");
    let err = std::fs::File::create(dir.path().join("up.err")).expect("err");
    let cdir: PathBuf = dir.path().join("clusters");
    let child = Command::new(BIN)
        .args(["up", "--clusters", "2", "--replicas", "2", "--dir"])
        .arg(&cdir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn up");
    let mut up = Up(Proc {
        name: "up".into(),
        child: Some(child),
        log: out_path,
    });
    up.0.wait_log("Ctrl-C stops", 1, Duration::from_secs(60));
    let printed = parse_up(&up.0.log_text());
    assert_eq!(printed.nodes.len(), 6, "{}", up.0.log_text());
    let metrics_of = |cluster: &str, role: &str| -> Vec<SocketAddr> {
        printed
            .nodes
            .iter()
            .filter(|n| n.0 == cluster && n.1 == role)
            .map(|n| n.3)
            .collect()
    };
    let meta_a = metrics_of("a", "meta")[0];
    let meta_b = metrics_of("b", "meta")[0];

    // Values on a (the printed put, then a later one: b must end up with the last).
    let put = command(&printed, &["client", "put"]);
    assert!(
        put.iter().any(|w| w.ends_with("a/client.toml")),
        "put goes to a: {put:?}"
    );
    let o = run(&put);
    assert_eq!((o.code, o.stdout.trim()), (Some(0), "ok"), "{}", o.stderr);
    let mut put8 = put.clone();
    *put8.last_mut().expect("value") = "8".into();
    let o = run(&put8);
    assert_eq!((o.code, o.stdout.trim()), (Some(0), "ok"), "{}", o.stderr);

    // dup add --full, as printed, with the follower table named explicitly.
    let mut add = command(&printed, &["dup", "add"]);
    add.extend(["--remote-table".to_string(), "1".to_string()]);
    let started = Instant::now();
    let o = run(&add);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("duplication 1: table 1 -> cluster b (meta 100) table 1")
            && o.stdout.contains("PREPARE"),
        "{}",
        o.stdout
    );

    // LOG, seen on a's meta server's metrics (polled, bounded).
    let log_series = r#"petrel_meta_dup_status{dupid="1",table="1",status="LOG"}"#;
    let until = Instant::now() + Duration::from_secs(30);
    while metric(&scrape(meta_a), log_series) != Some(1.0) {
        assert!(
            Instant::now() < until,
            "no LOG within 30 s:\n{}\n{}",
            scrape(meta_a),
            run(&command(&printed, &["dup", "list"])).stdout
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let to_log = started.elapsed();
    // ... and in `dup list`, as the operator sees it.
    let list = command(&printed, &["dup", "list"]);
    let o = run(&[list.clone(), vec!["--json".into()]].concat());
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("dup list json");
    assert_eq!(j["duplications"][0]["status"], "LOG", "{j}");
    assert!(j["duplications"][0]["stall"].is_null(), "{j}");
    let o = run(&list);
    assert!(
        o.stdout.contains("LOG") && o.stdout.contains("b/1"),
        "{}",
        o.stdout
    );

    // A client of b reads the follower table: a's last value.
    let get_b = command(&printed, &["client", "get"]);
    assert!(
        get_b.iter().any(|w| w.ends_with("b/client.toml")),
        "{get_b:?}"
    );
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let o = run(&get_b);
        if o.code == Some(0) && o.stdout.trim() == "8" {
            break;
        }
        assert!(
            Instant::now() < until,
            "b never read 8: exit {:?} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // LOG shipping: a new write on a arrives on b. Watch b's follower primary commit it.
    let b_primary = metrics_of("b", "replica")
        .into_iter()
        .find(|m| {
            metric(
                &scrape(*m),
                r#"petrel_partition_role{table="1",partition="0",role="primary"}"#,
            ) == Some(1.0)
        })
        .expect("b has a follower primary");
    let committed_series = r#"petrel_partition_committed_decree{table="1",partition="0"}"#;
    let before = metric(&scrape(b_primary), committed_series).expect("b's committed decree");
    let mut put9 = put.clone();
    *put9.last_mut().expect("value") = "9".into();
    let t0 = Instant::now();
    let watcher = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if metric(&scrape(b_primary), committed_series).is_some_and(|c| c > before) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    });
    let o = run(&put9);
    let put_took = t0.elapsed();
    assert_eq!((o.code, o.stdout.trim()), (Some(0), "ok"), "{}", o.stderr);
    let arrived = watcher
        .join()
        .expect("watcher")
        .expect("the new write reached b's follower primary within 20 s");
    let o = run(&get_b);
    assert_eq!((o.code, o.stdout.trim()), (Some(0), "9"), "{}", o.stderr);

    // Metrics: a's primary has nothing pending once b confirmed; b's meta knows its
    // follower table; a's meta persisted the confirmed decree.
    let a_primary = metrics_of("a", "replica")
        .into_iter()
        .find(|m| {
            metric(
                &scrape(*m),
                r#"petrel_dup_status{table="1",partition="0",dupid="1",status="LOG"}"#,
            ) == Some(1.0)
        })
        .expect("a's primary runs the duplicator");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(a_primary);
        let pending = metric(
            &text,
            r#"petrel_dup_pending_mutations{table="1",partition="0",dupid="1"}"#,
        );
        let confirmed = metric(
            &text,
            r#"petrel_dup_confirmed_decree{table="1",partition="0",dupid="1"}"#,
        );
        let committed = metric(
            &text,
            r#"petrel_partition_committed_decree{table="1",partition="0"}"#,
        );
        if pending == Some(0.0) && confirmed == committed && committed == Some(3.0) {
            assert_eq!(
                metric(
                    &text,
                    r#"petrel_dup_shipping_lag_seconds{table="1",partition="0",dupid="1"}"#
                ),
                Some(0.0)
            );
            assert!(
                metric(&text, r#"petrel_client_request_seconds_count{op="write"}"#)
                    .is_some_and(|n| n >= 3.0),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "a's primary still has pending mutations:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = Instant::now() + Duration::from_secs(10);
    while metric(
        &scrape(meta_a),
        r#"petrel_meta_dup_confirmed_decree{dupid="1",table="1",partition="0"}"#,
    ) != Some(3.0)
    {
        assert!(
            Instant::now() < until,
            "a's meta never persisted confirmed 3:\n{}",
            scrape(meta_a)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(&scrape(meta_b), "petrel_meta_follower_tables"),
        Some(1.0)
    );
    // b's cluster status names the follower table's source.
    let status_b = command(&printed, &["cluster", "status"]);
    let o = run(&status_b);
    assert!(
        o.code == Some(0) && o.stdout.contains("cluster a table 1 (dup 1)"),
        "{}\n{}",
        o.stdout,
        o.stderr
    );

    // set-fail-mode: skip is saved and shown (dup list, metrics); an unknown duplication
    // and an unknown mode are refused with their reasons; slow again, writes still ship.
    let admin_a = &list[..list.len() - 1];
    let set = |dupid: &str, mode: &str| {
        run(&[
            admin_a,
            &["set-fail-mode".into(), dupid.into(), mode.into()],
        ]
        .concat())
    };
    let o = set("1", "skip");
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("duplication 1: fail mode skip"),
        "{}",
        o.stdout
    );
    let o = run(&[list.clone(), vec!["--json".into()]].concat());
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("dup list json");
    assert_eq!(
        (
            j["duplications"][0]["fail_mode"].as_str(),
            j["duplications"][0]["skipped"].as_u64()
        ),
        (Some("skip"), Some(0)),
        "{j}"
    );
    assert!(run(&list).stdout.contains("skip"));
    let text = scrape(meta_a);
    assert_eq!(
        metric(&text, r#"petrel_meta_dup_fail_mode{dupid="1",mode="skip"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"petrel_meta_dup_skipped_mutations_total{dupid="1"}"#
        ),
        Some(0.0),
        "{text}"
    );
    // a's cluster status shows it too (FAIL MODE and SKIPPED columns of its duplications).
    let status_a = [
        &admin_a[..admin_a.len() - 1],
        &["cluster".into(), "status".into()],
    ]
    .concat();
    let o = run(&status_a);
    let dup_row = o
        .stdout
        .lines()
        .find(|l| l.starts_with("1 ") && l.contains("b/1"))
        .unwrap_or_default();
    assert!(
        o.code == Some(0) && o.stdout.contains("FAIL MODE") && dup_row.contains("skip"),
        "{}\n{}",
        o.stdout,
        o.stderr
    );
    // An unknown duplication: the meta server's reason, exit 1 (and `{"error": …}` with --json).
    let o = set("9", "skip");
    assert!(
        o.code == Some(1) && o.stderr.contains("no duplication 9"),
        "exit {:?}\n{}\n{}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = run(&[
        admin_a,
        &[
            "set-fail-mode".into(),
            "9".into(),
            "skip".into(),
            "--json".into(),
        ],
    ]
    .concat());
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
    assert!(
        o.code == Some(1) && j["error"] == "no duplication 9",
        "exit {:?}\n{}\n{}",
        o.code,
        o.stdout,
        o.stderr
    );
    // An unknown mode never reaches the meta server: the tool refuses it (clap's exit 2).
    let o = set("1", "fast");
    assert!(
        o.code == Some(2)
            && o.stderr
                .contains("unknown fail mode \"fast\": expected slow or skip"),
        "exit {:?}\n{}",
        o.code,
        o.stderr
    );
    let o = set("1", "slow");
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let mut put10 = put.clone();
    *put10.last_mut().expect("value") = "10".into();
    assert_eq!(run(&put10).code, Some(0));
    let until = Instant::now() + Duration::from_secs(20);
    while run(&get_b).stdout.trim() != "10" {
        assert!(
            Instant::now() < until,
            "b never read 10 after the fail mode changes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    eprintln!(
        "measured: dup add -> LOG {:.0} ms (including the admin process); put 9 on a: client call {:.0} ms, \
         committed on b's follower primary {:.0} ms after the call started",
        to_log.as_secs_f64() * 1e3,
        put_took.as_secs_f64() * 1e3,
        arrived.duration_since(t0).as_secs_f64() * 1e3
    );

    // Ctrl-C (SIGTERM) stops both clusters cleanly.
    let status =
        up.0.stop(Duration::from_secs(20))
            .expect("up stops on SIGTERM");
    assert!(status.success(), "{status}");
    for (cluster, ids) in [("a", [0, 1, 2]), ("b", [100, 101, 102])] {
        for id in ids {
            let data = cdir.join(cluster).join("data").join(format!("n{id}"));
            assert!(
                petrel_node::launch::lock_data_dir(&data).is_ok(),
                "{cluster}/n{id} still running"
            );
        }
    }
    // Trace validation of both clusters together: the duplication's messages between them
    // are matched, both metas and all four replicas replay, the properties hold (SAFE-13
    // and SAFE-14 on the duplicating primaries), a's history is linearizable (b's reads
    // are of a follower table: a copy, not judged).
    let r = validate(&[&cdir]);
    assert_eq!(r.exit_code(), 0, "{}", r.text());
    assert_eq!(r.nodes.len(), 6, "{}", r.text());
    assert!(r.lin.ops >= 3 && r.lin.skipped >= 1, "{}", r.text());
}
