//! Node identity on real processes: a replica whose data directory is wiped comes back as a
//! *new* life, is never counted as holding the data of its old one, learns, and only then
//! serves; when every other replica then fails, no acknowledged write is lost. The model's
//! `disk-replaced` scenario (mutant `empty-disk-same-life`), on real processes.
mod common;
use common::*;
use std::time::{Duration, Instant};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn members(cfg: &serde_json::Value) -> Vec<u64> {
    let c = &cfg["config"];
    c["primary"]
        .as_u64()
        .into_iter()
        .chain(
            c["secondaries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_u64()),
        )
        .collect()
}

#[test]
fn a_wiped_replica_rejoins_as_a_new_life_learns_and_loses_nothing_when_the_others_fail() {
    let mut c = Cluster::start(&fast_plan("alpha", 3));
    let cc = c.client_config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt.block_on(recording(&cc));
    let keys = 30;
    rt.block_on(async {
        for i in 0..keys {
            client
                .put(format!("k{i}").as_str(), format!("v{i}").as_str())
                .await
                .expect("put");
        }
    });
    let cfg = config_of(&cc);
    let primary = cfg["config"]["primary"].as_u64().expect("a primary");
    let wiped = cfg["config"]["secondaries"][0]
        .as_u64()
        .expect("a secondary");
    let other = cfg["config"]["secondaries"][1]
        .as_u64()
        .expect("two secondaries");
    let life = metric(&c.metrics(wiped), "petrel_incarnation").expect("its life");

    // The disk is replaced: kill -9, empty data directory, start again.
    let name = format!("replica-{wiped}");
    c.proc(&name).kill9();
    let i = c
        .layout
        .nodes
        .iter()
        .position(|n| n.id == wiped)
        .expect("node");
    let data = c.layout.nodes[i].data_dir.clone();
    // The event log lives on the data disk and goes with it; keep a copy of the old
    // disk's log beside the cluster so that the run can still be validated whole.
    let kept = c.layout.dir.join(format!("lost-disk-n{wiped}"));
    std::fs::create_dir_all(&kept).expect("mkdir");
    std::fs::copy(data.join("events.jsonl"), kept.join("events.jsonl")).expect("keep the log");
    std::fs::remove_dir_all(&data).expect("wipe");
    std::fs::create_dir_all(&data).expect("empty data directory");
    c.start_node(i);
    c.proc(&name).wait_log(
        "empty storage without the installation mark",
        1,
        Duration::from_secs(10),
    );

    // A new life, which the meta server makes a member again only after it learned.
    wait_until(
        "the wiped replica rejoins as a secondary of a new life",
        Duration::from_secs(30),
        || {
            metric(&c.metrics(wiped), "petrel_incarnation").is_some_and(|l| l > life)
                && members(&config_of(&cc)).len() == 3
        },
    );
    let after = metric(&c.metrics(wiped), "petrel_incarnation").expect("life");
    eprintln!("wiped replica {wiped}: life {life} → {after}");

    // Now the two replicas that held the data from the start fail for good.
    c.proc(&format!("replica-{primary}")).kill9();
    c.proc(&format!("replica-{other}")).kill9();
    wait_until(
        "the rejoined replica becomes the primary",
        Duration::from_secs(30),
        || config_of(&cc)["config"]["primary"].as_u64() == Some(wiped),
    );
    rt.block_on(async {
        for i in 0..keys {
            let got = client
                .get(format!("k{i}").as_str())
                .await
                .unwrap_or_else(|e| panic!("get k{i}: {e}"));
            assert_eq!(
                got.map(|v| v.to_text()),
                Some(format!("v{i}")),
                "acknowledged write k{i} lost"
            );
        }
        client.close().await;
    });
    c.stop_all();
    assert_valid(&[c.layout.dir.as_path()], keys * 2);
}
