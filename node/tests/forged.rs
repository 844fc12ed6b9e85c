//! Forgeries with the partner cluster's certificate: a program holding a valid node
//! certificate of cluster `b` (which `a` trusts, for duplication) sends `a`'s nodes the
//! messages only `a`'s own meta server, primary or operator may send. Each is refused and
//! logged with its reason, counted as `forbidden`, and nothing changes: the model's
//! `foreign-sender` scenario (SAFE-15), on real processes.
mod common;
use common::*;
use petrel_core::{Gpid, Msg, PartitionConfig};
use petrel_node::certs::{node_name, NodeRole};
use petrel_node::codec::{self, Frame};
use petrel_node::launch::Role;
use petrel_node::transport::id_of;
use petrel_node::up;
use std::collections::BTreeMap;
use std::time::Duration;

fn start(layout: up::Layout) -> Cluster {
    let mut c = Cluster {
        layout,
        procs: Vec::new(),
        _dir: tempfile::tempdir().expect("tempdir"),
        env: Vec::new(),
    };
    for i in 0..c.layout.nodes.len() {
        c.start_node(i);
    }
    c
}

fn forbidden(c: &Cluster, id: u64) -> f64 {
    metric(
        &c.metrics(id),
        "petrel_transport_refused_total{reason=\"forbidden\"}",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_from_the_partner_clusters_certificate_are_refused_and_change_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plans = up::pair_plans(2, 1).expect("plans");
    for p in &mut plans {
        let fast = fast_plan(&p.cluster.clone(), 2);
        p.transport = fast.transport;
        p.client = fast.client;
    }
    let layouts = up::write_clusters(dir.path(), &plans).expect("layouts");
    let (la, lb) = (layouts[0].clone(), layouts[1].clone());
    let (mut a, mut b) = tokio::task::block_in_place(|| (start(la), start(lb)));
    let cc = a.client_config();
    let before = tokio::task::block_in_place(|| {
        eventually(&cc, &["put", "k", "1"], "ok", Duration::from_secs(15));
        config_of(&cc)
    });
    let ballot = before["config"]["ballot"].as_u64().expect("ballot");
    let primary = before["config"]["primary"].as_u64().expect("primary");
    let secondary = before["config"]["secondaries"][0]
        .as_u64()
        .expect("a secondary");
    let meta = a
        .layout
        .nodes
        .iter()
        .find(|n| n.role == Role::Meta)
        .expect("meta")
        .clone();
    let addr_of = |id: u64| {
        a.layout
            .nodes
            .iter()
            .find(|n| n.id == id)
            .expect("node")
            .addr
    };
    let sec_addr = addr_of(secondary);
    let gpid = Gpid {
        table: before["table"].as_u64().expect("table") as u8,
        partition: before["partition"].as_u64().expect("partition") as u8,
    };
    // What b's node 101 forges: a's secondary made sole primary at a far ballot, a's data
    // replaced by a checkpoint, a's duplication rewritten, a's meta asked to reconfigure.
    let coup = PartitionConfig {
        gpid,
        ballot: 1000,
        primary: Some(id_of(secondary)),
        secondaries: Vec::new(),
        max_replica_count: 2,
        source: None,
    };
    let to_secondary = vec![
        Msg::ConfigUpdate {
            config: coup.clone(),
            incarnation: 1,
        },
        Msg::AddSecondary {
            config: coup.clone(),
            node: id_of(101),
            incarnation: 1,
        },
        Msg::DupUpdate {
            gpid,
            dups: BTreeMap::new(),
            incarnation: 1,
        },
        Msg::Write {
            gpid,
            req: 1,
            key: "k".into(),
            value: Some("forged".into()),
        },
    ];
    // A follower's writes: only its primary answers them, with the reason of a refusal.
    let to_primary = vec![
        Msg::DupUpdate {
            gpid,
            dups: BTreeMap::new(),
            incarnation: 1,
        },
        Msg::Checkpoint {
            gpid,
            origin: id_of(100),
            decree: 1,
            data: Default::default(),
        },
        Msg::Ship {
            gpid,
            origin: id_of(100),
            entries: Vec::new(),
        },
    ];
    let to_meta = vec![
        Msg::ProposeConfig {
            config: coup.clone(),
            incarnation: 1,
        },
        Msg::Beacon {
            incarnation: 1,
            seq: 1,
        },
        Msg::CreateTable {
            table: 9,
            partitions: 1,
            replica_count: 1,
        },
    ];
    let forger = tls_of(
        &b.layout.certs,
        "node-101",
        &[&a.layout.certs.join("ca.pem")],
    );
    let mut held = Vec::new();
    for (addr, name, msgs) in [
        (
            sec_addr,
            node_name("a", NodeRole::Replica, secondary),
            &to_secondary,
        ),
        (
            addr_of(primary),
            node_name("a", NodeRole::Replica, primary),
            &to_primary,
        ),
        (meta.addr, node_name("a", NodeRole::Meta, meta.id), &to_meta),
    ] {
        let conn = raw_connect(&forger, addr, &name)
            .await
            .expect("TLS with the partner's trusted certificate works");
        let mut bytes = codec::encode(&Frame::Hello {
            cluster: "b".into(),
            id: 101,
            incarnation: 1,
        })
        .expect("hello");
        for m in msgs {
            bytes.extend(codec::encode(&Frame::Msg(m.clone())).expect("frame"));
        }
        let mut s = conn.open_uni().await.expect("stream");
        s.write_all(&bytes).await.expect("write");
        s.finish().expect("finish");
        // Stay connected while the node reads them (a node's connection is not closed
        // for a refused message: its other messages are the protocol's).
        held.push(conn);
    }

    tokio::task::block_in_place(|| {
        let sec = a.proc(&format!("replica-{secondary}"));
        for kind in ["ConfigUpdate", "AddSecondary", "DupUpdate", "Write"] {
            sec.wait_log(
                &format!("refused {kind} from node 101"),
                1,
                Duration::from_secs(10),
            );
        }
        let part = format!("{}.{}", gpid.table, gpid.partition);
        a.proc(&format!("replica-{primary}")).wait_log(
            &format!("refused a duplication write from node 101 into {part} (decree 1): partition {part} is not a follower table"),
            1,
            Duration::from_secs(10),
        );
        let m = a.proc(&format!("meta-{}", meta.id));
        for kind in ["ProposeConfig", "Beacon"] {
            m.wait_log(
                &format!("refused {kind} from node 101"),
                1,
                Duration::from_secs(10),
            );
        }
        // The operator request is refused by the transport before the core sees it.
        m.wait_log(
            "CreateTable is an operator request",
            1,
            Duration::from_secs(10),
        );
    });
    for conn in held {
        conn.close(0u32.into(), b"done");
    }
    assert!(forbidden(&a, secondary) >= 4.0, "{}", a.metrics(secondary));
    assert!(forbidden(&a, meta.id) >= 3.0, "{}", a.metrics(meta.id));

    // Nothing changed: the same configuration, the same data, and a still serves writes
    // (which the secondary, had it taken the coup, would no longer ACK).
    tokio::task::block_in_place(|| {
        let after = config_of(&cc);
        assert_eq!(after["config"]["ballot"].as_u64(), Some(ballot), "{after}");
        assert_eq!(
            after["config"]["primary"].as_u64(),
            Some(primary),
            "{after}"
        );
        eventually(&cc, &["get", "k"], "1", Duration::from_secs(10));
        eventually(&cc, &["put", "k", "2"], "ok", Duration::from_secs(10));
        eventually(&cc, &["get", "k"], "2", Duration::from_secs(10));
        let tables = petrel_admin(&a.layout.admin_config, &["--json", "table", "list"]);
        assert_eq!(tables.code, Some(0), "{}", tables.stderr);
        assert!(!tables.stdout.contains("\"table\":9"), "{}", tables.stdout);
        // The run, forged deliveries included, replays through the core and validates.
        a.stop_all();
        b.stop_all();
        assert_valid(&[&a.layout.dir], 3);
    });
}
