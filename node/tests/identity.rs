//! Node identity on real processes: a replica whose data directory is wiped comes back as a
//! *new* life, is never counted as holding the data of its old one, learns, and only then
//! serves; when every other replica then fails, no acknowledged write is lost. The model's
//! `disk-replaced` scenario (mutant `empty-disk-same-life`), on real processes.
mod common;
use common::*;
use std::time::{Duration, Instant};

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
    let rt = runtime();
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

/// A peer still sending on a connection to a node's previous process learns at once that
/// it is gone: the restarted process answers with a QUIC stateless reset (its connection-id
/// and reset keys come from its private key, the same across restarts), instead of leaving
/// the peer to wait out the idle timeout. Without it, clients could not reach a restarted
/// node that had become primary for 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resets_its_previous_processs_connections_at_once() {
    use petrel_node::certs::{node_name, NodeRole};
    use petrel_node::codec::{self, Frame};
    use petrel_node::transport::CLIENT_ID_BASE;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `petrel up`'s transport defaults: a 5 s idle timeout.
    let mut plan = fast_plan("alpha", 1);
    plan.transport = Default::default();
    let mut c = tokio::task::block_in_place(|| Cluster::start(&plan));
    let replica = c
        .layout
        .nodes
        .iter()
        .position(|n| n.id == 1)
        .expect("replica 1");
    let addr = c.layout.nodes[replica].addr;
    let tls = tls_of(&c.layout.certs, "client-0", &[]);
    let conn = raw_connect(&tls, addr, &node_name("alpha", NodeRole::Replica, 1))
        .await
        .expect("connect");
    let hello = codec::encode(&Frame::Hello {
        cluster: "alpha".into(),
        id: CLIENT_ID_BASE + 9,
        incarnation: 1,
    })
    .expect("hello");
    let mut s = conn.open_uni().await.expect("stream");
    s.write_all(&hello).await.expect("hello sent");
    tokio::time::sleep(Duration::from_millis(200)).await;

    tokio::task::block_in_place(|| {
        c.proc("replica-1").kill9();
        c.start_node(replica);
    });
    // The old connection's next packet reaches the new process.
    let started = Instant::now();
    let frame = codec::encode(&Frame::End {
        session: CLIENT_ID_BASE + 9,
    })
    .expect("frame");
    let _ = s.write_all(&frame).await;
    let e = tokio::time::timeout(Duration::from_secs(4), conn.closed())
        .await
        .expect(
            "the connection to the previous process was not reset within 4 s (idle timeout 5 s)",
        );
    assert!(
        matches!(e, quinn::ConnectionError::Reset),
        "expected a stateless reset, got {e:?}"
    );
    eprintln!("reset after {:?}", started.elapsed());
    tokio::task::block_in_place(|| c.stop_all());
}
