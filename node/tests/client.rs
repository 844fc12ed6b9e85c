//! The key-value client against real `petrel` processes on 127.0.0.1: `petrel client
//! put/get/del` route every key to its partition (`partition_of` over the partition count
//! the meta server reports), a table created at run time is usable with `--table`, an
//! absent key is exit status 3, and the library's concurrent calls agree with the CLI.
//!
//! Every child process is killed when its guard drops; every wait is bounded.
mod common;
use common::*;
use petrel_core::partition_of;
use petrel_node::client::{Client, ClientError};
use petrel_node::config::Config;
use std::sync::Arc;
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

#[test]
fn keys_are_routed_to_their_partitions_by_the_cli() {
    let mut plan = fast_plan("alpha", 2);
    plan.partitions = 3;
    let mut c = Cluster::start(&plan);
    let cc = c.client_config();
    let keys: Vec<String> = (0..12).map(|i| format!("key-{i}")).collect();
    // The first call may come before the meta server assigned every primary.
    eventually(
        &cc,
        &["put", &keys[0], "v-0"],
        "ok",
        Duration::from_secs(15),
    );
    for (i, k) in keys.iter().enumerate().skip(1) {
        assert_eq!(
            ok(&petrel_client(&cc, &["put", k, &format!("v-{i}")])),
            "ok"
        );
    }
    let mut partitions = std::collections::BTreeSet::new();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(ok(&petrel_client(&cc, &["get", k])), format!("v-{i}"));
        // `config KEY` names the partition the core's routing function picks.
        let j: serde_json::Value =
            serde_json::from_str(ok(&petrel_client(&cc, &["config", k]))).expect("json");
        assert_eq!(
            (j["partitions"].as_u64(), j["partition"].as_u64()),
            (Some(3), Some(u64::from(partition_of(k.as_bytes(), 3)))),
            "{j}"
        );
        assert_eq!(j["config"]["gpid"]["partition"], j["partition"], "{j}");
        partitions.insert(j["partition"].as_u64());
    }
    assert_eq!(
        partitions.len(),
        3,
        "twelve keys spread over all three partitions"
    );

    // Absent: exit 3, "not found" on stderr, nothing on stdout.
    let out = petrel_client(&cc, &["get", "never-written"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.trim()),
        (Some(3), "", "not found")
    );
    assert_eq!(ok(&petrel_client(&cc, &["del", &keys[1]])), "ok");
    assert_eq!(petrel_client(&cc, &["get", &keys[1]]).code, Some(3));
    assert_eq!(
        ok(&petrel_client(&cc, &["del", &keys[1]])),
        "ok",
        "deleting an absent key succeeds"
    );
    // Any bytes, in the escaped form `get` prints.
    assert_eq!(
        ok(&petrel_client(&cc, &["put", r"bin\x00\xff", r"a\\b\x01"])),
        "ok"
    );
    assert_eq!(
        ok(&petrel_client(&cc, &["get", r"bin\x00\xff"])),
        r"a\\b\x01"
    );
    // Operator errors: exit 1 with a reason, before any network traffic.
    let out = petrel_client(&cc, &["put", r"bad\q", "v"]);
    assert!(
        out.code == Some(1) && out.stderr.contains("cannot use"),
        "{}",
        out.stderr
    );
    let out = petrel_client(&cc, &["--table", "9", "get", "k"]);
    assert!(
        out.code == Some(1) && out.stderr.contains("knows no table 9"),
        "{}",
        out.stderr
    );

    // A table created at run time: the client learns its partition count from the meta server.
    let out = petrel_admin(
        &c.layout.admin_config,
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
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let until = Instant::now() + Duration::from_secs(15);
    for (i, k) in keys.iter().take(4).enumerate() {
        loop {
            let out = petrel_client(&cc, &["--table", "2", "put", k, &format!("t2-{i}")]);
            if out.code == Some(0) {
                break;
            }
            assert!(
                Instant::now() < until,
                "table 2 never took writes: {}",
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for (i, k) in keys.iter().take(4).enumerate() {
        assert_eq!(
            ok(&petrel_client(&cc, &["--table", "2", "get", k])),
            format!("t2-{i}")
        );
        let j: serde_json::Value =
            serde_json::from_str(ok(&petrel_client(&cc, &["--table", "2", "config", k])))
                .expect("json");
        assert_eq!(
            j["partition"].as_u64(),
            Some(u64::from(partition_of(k.as_bytes(), 2))),
            "{j}"
        );
    }
    // Table 1 still holds its own values.
    assert_eq!(ok(&petrel_client(&cc, &["get", &keys[2]])), "v-2");

    // `petrel bench`: one row per concurrency level, keys over every partition.
    let config = cc.to_string_lossy().to_string();
    let out = petrel(&[
        "bench",
        "--config",
        &config,
        "--clients",
        "1,3",
        "--ops",
        "10",
    ]);
    let text = ok(&out);
    assert!(
        text.contains("writers  preload  writes failed  seconds  writes/s  1st/last sec/s  p50 ms  p99 ms  max ms"),
        "{text}"
    );
    // The data rows: ten columns, numbers but for the per-second rates ("-" under 2 s).
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| {
            w.len() == 10
                && w.iter()
                    .enumerate()
                    .all(|(i, x)| i == 6 || x.parse::<f64>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        (rows[0][0], rows[0][2], rows[0][3]),
        ("1", "10", "0"),
        "{text}"
    );
    assert_eq!(
        (rows[1][0], rows[1][2], rows[1][3]),
        ("3", "30", "0"),
        "{text}"
    );
    for row in &rows {
        let ms: Vec<f64> = row[7..]
            .iter()
            .map(|v| v.parse().expect("a latency"))
            .collect();
        assert!(
            ms[0] > 0.0 && ms[0] <= ms[1] && ms[1] <= ms[2],
            "p50 <= p99 <= max: {text}"
        );
    }
    assert!(
        text.contains("writes per partition: 0: ") && text.contains(", 2: "),
        "{text}"
    );
    // Three partitions, a table created at run time, the bench: the run validates.
    c.stop_all();
    assert_valid(&[&c.layout.dir], 12);
}

#[test]
fn the_library_serves_concurrent_calls() {
    let mut plan = fast_plan("alpha", 3);
    plan.partitions = 2;
    let mut c = Cluster::start(&plan);
    let cfg = Config::load(&c.client_config()).expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Recording: its 8 concurrent writers and the rewrites are judged for linearizability.
        let client = Arc::new(recording(&c.client_config()).await);
        assert_eq!((client.table(), client.partitions()), (1, 2));
        // Wait until both partitions take writes (primaries are assigned at start).
        let until = Instant::now() + Duration::from_secs(15);
        for k in ["a", "b", "c", "d"] {
            while let Err(e) = client.put(k, "warm").await {
                assert!(Instant::now() < until, "{k}: {e}");
            }
        }
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        let key = format!("t{t}-{i}");
                        client
                            .put(key.as_str(), format!("{t}:{i}").as_str())
                            .await
                            .unwrap_or_else(|e| panic!("put {key}: {e}"));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        for t in 0..8 {
            for i in 0..10 {
                let v = client.get(format!("t{t}-{i}").as_str()).await.expect("get");
                assert_eq!(v.map(|v| v.to_text()), Some(format!("{t}:{i}")));
            }
        }
        client.del("t0-0").await.expect("del");
        assert_eq!(client.get("t0-0").await.expect("get"), None);
        // Calls reuse client ids, continuing their request numbers: every rewrite of a key
        // must take effect (a number that went back would be dropped as a duplicate), and
        // the ids in use stay bounded by the concurrency, not the number of calls.
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    let key = format!("r{t}");
                    for i in 0..10 {
                        client
                            .put(key.as_str(), i.to_string().as_str())
                            .await
                            .unwrap_or_else(|e| panic!("put {key}: {e}"));
                        let v = client
                            .get(key.as_str())
                            .await
                            .unwrap_or_else(|e| panic!("get {key}: {e}"));
                        assert_eq!(
                            v.map(|v| v.to_text()),
                            Some(i.to_string()),
                            "{key}: rewrite {i} was lost"
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert!(
            (1..=8).contains(&client.idle_ids()),
            "{} idle client ids after {} calls",
            client.idle_ids(),
            4 + 80 + 80 + 2 + 80
        );
        match Arc::try_unwrap(client) {
            Ok(c) => c.close().await,
            Err(_) => panic!("the client is still shared"),
        }
    });
    // The CLI reads what the library wrote.
    let cc = c.client_config();
    assert_eq!(ok(&petrel_client(&cc, &["get", "t7-9"])), "7:9");

    // Every replica down: a call ends at its deadline and says what it waited for.
    for name in ["replica-1", "replica-2", "replica-3"] {
        c.proc(name).kill9();
    }
    rt.block_on(async {
        let client = Client::connect(&cfg)
            .await
            .expect("the meta server still answers");
        let t0 = Instant::now();
        let err = client
            .call(petrel_core::ClientOp::get("a"), Duration::from_millis(500))
            .await
            .expect_err("no replica");
        let took = t0.elapsed();
        assert!(
            matches!(err, ClientError::Deadline { .. }) && err.is_unavailable(),
            "{err}"
        );
        assert!(err.to_string().contains("waiting for"), "{err}");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
        client.close().await;
    });
    c.stop_all();
    assert_valid(&[&c.layout.dir], 160);
}
