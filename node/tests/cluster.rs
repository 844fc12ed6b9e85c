//! End-to-end tests with real `petrel` processes on 127.0.0.1: a cluster serves a client,
//! survives `kill -9` of its primary and takes the restarted replica back; nodes refuse a
//! certificate of another cluster; garbage on the wire does not stop a node.
//!
//! Every child process is killed when its guard drops (also when a test fails), and every
//! wait is bounded.
mod common;
use common::*;
use petrel_node::certs::{self, node_name, NodeRole};
use petrel_node::client::Client;
use petrel_node::codec::{self, Frame};
use petrel_node::config::Config;
use petrel_node::launch::Role;
use petrel_node::transport::{self, close};
use petrel_node::up;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One acknowledged write of the failover writer.
#[derive(Clone, Debug)]
struct Acked {
    key: String,
    value: String,
    started: Instant,
    acked: Instant,
}

/// The failover writer: puts `w-0`, `w-1`, … one after the other through the client
/// library until `stop`, retrying a key whose put failed (its outcome is unknown, the same
/// value again is harmless), and records every acknowledged write and every error.
async fn write_until(
    client: Arc<Client>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (key, value) = (format!("w-{i}"), format!("v-{i}"));
        let started = Instant::now();
        match client.put(key.as_str(), value.as_str()).await {
            Ok(()) => {
                acked.lock().expect("lock").push(Acked {
                    key,
                    value,
                    started,
                    acked: Instant::now(),
                });
                i += 1;
            }
            Err(e) => errors.lock().expect("lock").push(format!("{key}: {e}")),
        }
    }
}

/// Every acknowledged write reads back with its value (no acknowledged write is lost).
async fn check_acked(client: &Client, acked: &[Acked], when: &str) {
    for a in acked {
        let got = client
            .get(a.key.as_str())
            .await
            .unwrap_or_else(|e| panic!("{when}: get {}: {e}", a.key));
        assert_eq!(
            got.map(|v| v.to_text()),
            Some(a.value.clone()),
            "{when}: acknowledged write {} = {} lost",
            a.key,
            a.value
        );
    }
}

#[test]
fn put_get_survive_kill9_of_the_primary_and_restart() {
    let mut c = Cluster::start(&fast_plan("alpha", 3));
    let cc = c.client_config();
    let out = petrel_client(&cc, &["put", "k", "7"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "ok"),
        "{}",
        out.stderr
    );
    let out = petrel_client(&cc, &["get", "k"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "7"),
        "{}",
        out.stderr
    );

    // A client writes without pause while the primary is killed with -9.
    let cfg = config_of(&cc);
    let primary = cfg["config"]["primary"].as_u64().expect("a primary");
    let name = format!("replica-{primary}");
    let rt = runtime();
    let client = Arc::new(rt.block_on(recording(&cc)));
    let (stop, acked, errors) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let writer = rt.spawn(write_until(
        client.clone(),
        stop.clone(),
        acked.clone(),
        errors.clone(),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let before = acked.lock().expect("lock").len();
    assert!(
        before > 0,
        "no write before the kill: {:?}",
        errors.lock().expect("lock")
    );
    let killed = Instant::now();
    c.proc(&name).kill9();
    let dead = Instant::now();
    // The meta server notices through the dead link (idle timeout) and promotes a
    // secondary; the client fails over. The first write acknowledged after the kill went
    // through the new primary (a reply the old one sent just before dying would arrive
    // within a normal write's latency, far below the failure detector's 1.5 s: skipped).
    let until = killed + Duration::from_secs(30);
    let first_after = loop {
        let found = acked
            .lock()
            .expect("lock")
            .iter()
            .find(|a| a.acked > dead + Duration::from_millis(100))
            .cloned();
        if let Some(a) = found {
            break a;
        }
        assert!(
            Instant::now() < until,
            "no write acknowledged within 30 s of the kill; errors: {:?}",
            errors.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let failover = first_after.acked.duration_since(killed);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(writer).expect("writer");
    let acked: Vec<Acked> = acked.lock().expect("lock").clone();
    let errors: Vec<String> = errors.lock().expect("lock").clone();
    let after = acked.iter().filter(|a| a.acked > dead).count();
    let longest = acked
        .iter()
        .map(|a| a.acked.duration_since(a.started))
        .max()
        .unwrap_or_default();
    let new_primary = config_of(&cc)["config"]["primary"].as_u64();
    assert!(
        new_primary.is_some() && new_primary != Some(primary),
        "the meta server still names {primary}"
    );
    assert!(failover < Duration::from_secs(30));
    println!(
        "failover: kill -9 of primary {primary} -> first write acknowledged through the new primary {} after {:.0} ms \
         (failure detector: 1.5 s idle timeout; {before} writes acknowledged before the kill, {after} after; \
         longest single put {:.0} ms; {} failed put attempts retried: {:?})",
        new_primary.unwrap_or_default(),
        failover.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    rt.block_on(check_acked(&client, &acked, "after the failover"));
    eventually(&cc, &["put", "k", "8"], "ok", Duration::from_secs(10));
    eventually(&cc, &["get", "k"], "8", Duration::from_secs(10));

    // Restart it from its data directory: a new life, and it rejoins as a member.
    let i = c
        .layout
        .nodes
        .iter()
        .position(|n| n.id == primary)
        .expect("node");
    c.start_node(i);
    let log = c.proc(&name).log_text();
    assert!(
        log.contains("restored=true") && log.contains("incarnation=2"),
        "{log}"
    );
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let cfg = config_of(&cc);
        let members: Vec<u64> = cfg["config"]["secondaries"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        if members.contains(&primary) || cfg["config"]["primary"].as_u64() == Some(primary) {
            break;
        }
        assert!(
            Instant::now() < until,
            "replica {primary} did not rejoin: {cfg}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eventually(&cc, &["put", "k", "9"], "ok", Duration::from_secs(20));
    eventually(&cc, &["get", "k"], "9", Duration::from_secs(10));
    rt.block_on(check_acked(
        &client,
        &acked,
        "after the old primary rejoined",
    ));
    // Its metrics show it learned (one Learn or more) and the primary sent the state.
    let text = c.metrics(primary);
    assert!(
        metric(
            &text,
            r#"petrel_learn_rounds_total{table="1",partition="0"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let now_primary = config_of(&cc)["config"]["primary"]
        .as_u64()
        .expect("a primary");
    let text = c.metrics(now_primary);
    assert!(
        metric(
            &text,
            r#"petrel_learn_sent_bytes_total{table="1",partition="0"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert_eq!(
        metric(&c.metrics(0), "petrel_meta_alive_replicas"),
        Some(3.0)
    );
    // The restarted replica took part: it holds the new value in its durable state.
    let events = std::fs::read_to_string(c.layout.nodes[i].data_dir.join("events.jsonl"))
        .expect("event log");
    assert!(events.contains("\"storage\":true"), "restart recorded");
    assert!(
        events.contains(r#"{"Put":["k","9"]}"#),
        "the restarted replica saw the write of k = 9"
    );
    match Arc::try_unwrap(client) {
        Ok(c) => rt.block_on(c.close()),
        Err(_) => panic!("the writer still holds the client"),
    }
    // Trace validation: both lives of the killed primary and every other node replay
    // through the core, the properties hold on the merged run, and the writer's and the
    // CLI's history is linearizable.
    c.stop_all();
    assert_valid(&[&c.layout.dir], acked.len());
}

fn with_config(path: &Path, out: &Path, edit: impl FnOnce(&mut Config)) -> PathBuf {
    let mut c = Config::load(path).expect("config");
    edit(&mut c);
    std::fs::write(out, c.to_toml().expect("toml")).expect("write config");
    out.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_cluster_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    // Cluster beta's certificates and a running beta meta server.
    let mut beta = tokio::task::block_in_place(|| Cluster::start(&fast_plan("beta", 1)));
    // Cluster alpha, whose meta server also trusts beta's CA (a duplication partner).
    let mut alpha_plan = fast_plan("alpha", 1);
    alpha_plan.client.deadline_ms = Some(4000);
    let mut alpha = tokio::task::block_in_place(|| {
        let d = tempfile::tempdir().expect("tempdir");
        let layout = up::write_cluster(d.path(), &alpha_plan).expect("layout");
        let meta = layout
            .nodes
            .iter()
            .find(|n| n.role == Role::Meta)
            .expect("meta")
            .config
            .clone();
        let beta_ca = beta.layout.certs.join("ca.pem");
        with_config(&meta, &meta, |c| c.tls.remote_cas = vec![beta_ca]);
        let mut c = Cluster {
            layout,
            procs: Vec::new(),
            _dir: d,
            env: Vec::new(),
        };
        for i in 0..c.layout.nodes.len() {
            c.start_node(i);
        }
        c
    });

    // 1. An alpha client whose address book sends it to beta's meta server: the server's
    //    certificate (n0.beta.petrel, from a CA the client trusts) is not node 0 of alpha.
    let beta_meta_addr = beta.layout.nodes[0].addr;
    let beta_ca = beta.layout.certs.join("ca.pem");
    let misrouted = with_config(
        &alpha.client_config(),
        &dir.path().join("misrouted.toml"),
        |c| {
            c.peers
                .iter_mut()
                .filter(|p| p.id == 0)
                .for_each(|p| p.addr = beta_meta_addr);
            c.tls.remote_cas = vec![beta_ca.clone()];
        },
    );
    let out = tokio::task::block_in_place(|| petrel_client(&misrouted, &["get", "k"]));
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stderr.contains("TLS handshake failed") && out.stderr.contains("n0.alpha.petrel"),
        "the client names the refused certificate: {}",
        out.stderr
    );

    tokio::task::block_in_place(|| {
        beta.proc("meta-0")
            .wait_log("TLS handshake failed", 1, Duration::from_secs(5))
    });

    // 2. A node of beta dials alpha's meta server (trusted CA, right TLS name): its Hello
    //    says node 1 of beta, but node 1 is alpha's in the address book.
    let alpha_meta = alpha.layout.nodes[0].addr;
    let beta_node = tls_of(
        &beta.layout.certs,
        "node-1",
        &[&alpha.layout.certs.join("ca.pem")],
    );
    let conn = raw_connect(
        &beta_node,
        alpha_meta,
        &node_name("alpha", NodeRole::Meta, 0),
    )
    .await
    .expect("TLS with a trusted CA works");
    let hello = codec::encode(&Frame::Hello {
        cluster: "beta".into(),
        id: 1,
        incarnation: 1,
    })
    .expect("hello");
    let e = send_and_wait_close(&conn, &hello).await;
    assert!(closed_with(&e, close::REFUSED), "{e:?}");
    assert!(
        transport::describe(&e).contains("belongs to cluster alpha"),
        "{}",
        transport::describe(&e)
    );
    tokio::task::block_in_place(|| {
        alpha.proc("meta-0").wait_log(
            "its Hello claims node 1 of cluster beta, but node 1 belongs to cluster alpha",
            1,
            Duration::from_secs(5),
        )
    });

    // 3. The same certificate claiming to be alpha's node 1: the Hello does not match it.
    let conn = raw_connect(
        &beta_node,
        alpha_meta,
        &node_name("alpha", NodeRole::Meta, 0),
    )
    .await
    .expect("TLS");
    let hello = codec::encode(&Frame::Hello {
        cluster: "alpha".into(),
        id: 1,
        incarnation: 1,
    })
    .expect("hello");
    let e = send_and_wait_close(&conn, &hello).await;
    assert!(closed_with(&e, close::REFUSED), "{e:?}");
    tokio::task::block_in_place(|| {
        alpha.proc("meta-0").wait_log(
            "its Hello claims to be replica 1 of cluster alpha, but its certificate is not valid for replica.n1.alpha.petrel",
            1,
            Duration::from_secs(5),
        )
    });

    // 4. A cluster whose CA nobody trusts: refused in the TLS handshake, and logged.
    let gamma = dir.path().join("gamma");
    certs::issue(
        "gamma",
        &certs::Wanted {
            nodes: vec![(1, NodeRole::Replica)],
            ..Default::default()
        },
        &gamma,
    )
    .expect("gamma certs");
    let gamma_node = tls_of(&gamma, "node-1", &[&alpha.layout.certs.join("ca.pem")]);
    let replica = alpha.layout.nodes[1].addr;
    let r = raw_connect(
        &gamma_node,
        replica,
        &node_name("alpha", NodeRole::Replica, 1),
    )
    .await;
    if let Ok(conn) = r {
        // TLS 1.3: the client may learn of the refusal only on its first use.
        let e = send_and_wait_close(&conn, b"").await;
        assert!(!closed_with(&e, close::SHUTDOWN), "{e:?}");
    }
    tokio::task::block_in_place(|| {
        alpha
            .proc("replica-1")
            .wait_log("invalid peer certificate", 1, Duration::from_secs(5))
    });

    // 5. Beta's CA (which alpha's meta server trusts, for duplication) signs a certificate
    //    for one of *alpha's* names, its operator's. Beta's CA may certify names under
    //    beta.petrel only (a name constraint): webpki refuses the chain in the handshake.
    let rogue = dir.path().join("rogue");
    std::fs::create_dir_all(&rogue).expect("mkdir");
    {
        let ca_key = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(beta.layout.certs.join("ca.key")).expect("beta ca key"),
        )
        .expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Petrel cluster CA beta");
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Petrel");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf =
            rcgen::CertificateParams::new(vec![certs::operator_name("alpha")]).expect("params");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&key, &issuer).expect("sign");
        std::fs::write(rogue.join("op.pem"), cert.pem()).expect("write");
        std::fs::write(rogue.join("op.key"), key.serialize_pem()).expect("write");
        std::fs::copy(alpha.layout.certs.join("ca.pem"), rogue.join("ca.pem")).expect("copy");
    }
    let rogue_tls = tls_of(&rogue, "op", &[]);
    if let Ok(conn) = raw_connect(
        &rogue_tls,
        alpha_meta,
        &node_name("alpha", NodeRole::Meta, 0),
    )
    .await
    {
        let hello = codec::encode(&Frame::Hello {
            cluster: "alpha".into(),
            id: transport::CLIENT_ID_BASE + 5,
            incarnation: 1,
        })
        .expect("hello");
        let e = send_and_wait_close(&conn, &hello).await;
        assert!(!closed_with(&e, close::SHUTDOWN), "{e:?}");
    }
    tokio::task::block_in_place(|| {
        alpha
            .proc("meta-0")
            .wait_log("invalid peer certificate", 1, Duration::from_secs(5));
    });
    assert!(
        !alpha.proc("meta-0").log_text().contains("operator.alpha"),
        "the rogue operator never got past TLS"
    );

    // Alpha still serves its own client.
    let cc = alpha.client_config();
    tokio::task::block_in_place(|| {
        eventually(&cc, &["put", "k", "5"], "ok", Duration::from_secs(15));
        eventually(&cc, &["get", "k"], "5", Duration::from_secs(10));
        // Each cluster's run validates on its own (their node ids overlap).
        alpha.stop_all();
        beta.stop_all();
        assert_valid(&[&alpha.layout.dir], 2);
        assert_valid(&[&beta.layout.dir], 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_do_not_stop_a_node() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c = tokio::task::block_in_place(|| Cluster::start(&fast_plan("alpha", 1)));
    let client = tls_of(&c.layout.certs, "client-0", &[]);
    let replica = c.layout.nodes[1].addr;
    let name = node_name("alpha", NodeRole::Replica, 1);
    let hello = codec::encode(&Frame::Hello {
        cluster: "alpha".into(),
        id: transport::CLIENT_ID_BASE + 77,
        incarnation: 1,
    })
    .expect("hello");

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage instead of a Hello",
            b"\x00\x00\x00\x05hello, petrel".to_vec(),
        ),
        (
            "an oversized length before the Hello",
            u32::MAX.to_be_bytes().to_vec(),
        ),
    ];
    let mut bad_version = hello.clone();
    bad_version.extend(
        codec::encode(&Frame::Msg(petrel_core::Msg::Register { incarnation: 1 })).expect("msg"),
    );
    let at = hello.len() + 4;
    bad_version[at] = 0xee;
    cases.push(("a frame of an unknown version", bad_version));
    let mut oversized = hello.clone();
    oversized.extend(((codec::MAX_FRAME + 1) as u32).to_be_bytes());
    cases.push(("an oversized frame after the Hello", oversized));
    let mut malformed = hello.clone();
    malformed.extend([0, 0, 0, 6, codec::VERSION, 0xff, 0xff, 0xff, 0xff, 0xff]);
    cases.push(("a malformed frame after the Hello", malformed));
    let mut second_hello = hello.clone();
    second_hello.extend(hello.clone());
    cases.push(("a second Hello", second_hello));
    // Session frames: a client may not answer a session, nor speak for a node-range id.
    let msg = petrel_core::Msg::QueryCluster;
    let mut to = hello.clone();
    to.extend(
        codec::encode(&Frame::To {
            session: transport::CLIENT_ID_BASE + 1,
            msg: msg.clone(),
        })
        .expect("to"),
    );
    cases.push(("a session answer from a client", to));
    let mut from_node_id = hello.clone();
    from_node_id.extend(codec::encode(&Frame::From { session: 2, msg }).expect("from"));
    cases.push(("a session with a node's id", from_node_id));

    for (what, bytes) in &cases {
        let conn = raw_connect(&client, replica, &name).await.expect("connect");
        let e = send_and_wait_close(&conn, bytes).await;
        assert!(closed_with(&e, close::PROTOCOL), "{what}: {e:?}");
    }
    // A client certificate claiming to be a node is refused.
    let conn = raw_connect(&client, replica, &name).await.expect("connect");
    let claim = codec::encode(&Frame::Hello {
        cluster: "alpha".into(),
        id: 0,
        incarnation: 1,
    })
    .expect("hello");
    let e = send_and_wait_close(&conn, &claim).await;
    assert!(closed_with(&e, close::REFUSED), "{e:?}");
    // A client may not send replica-to-replica messages, nor the operator's requests: the
    // connection is closed with the reason, so the sender learns why at once.
    for (msg, why) in [
        (
            petrel_core::Msg::Register { incarnation: 9 },
            "a client may not send Register",
        ),
        (
            petrel_core::Msg::CreateTable {
                table: 7,
                partitions: 1,
                replica_count: 1,
            },
            "needs an operator certificate",
        ),
    ] {
        let conn = raw_connect(&client, replica, &name).await.expect("connect");
        let mut bytes = hello.clone();
        bytes.extend(
            codec::encode(&Frame::From {
                session: transport::CLIENT_ID_BASE + 78,
                msg,
            })
            .expect("msg"),
        );
        let e = send_and_wait_close(&conn, &bytes).await;
        assert!(
            closed_with(&e, close::FORBIDDEN) && transport::describe(&e).contains(why),
            "{e:?}"
        );
    }

    let log = c.proc("replica-1").log_text();
    for needle in [
        "bad Hello",
        "frame version 238",
        "exceeds the limit",
        "malformed frame",
        "second Hello",
        "refused peer",
        "may not send",
        "unexpected frame",
        "operator certificate",
    ] {
        assert!(log.contains(needle), "replica log lacks {needle:?}:\n{log}");
    }
    // The node still serves, and what reached its core replays.
    let cc = c.client_config();
    tokio::task::block_in_place(|| {
        eventually(&cc, &["put", "k", "3"], "ok", Duration::from_secs(15));
        eventually(&cc, &["get", "k"], "3", Duration::from_secs(10));
        c.stop_all();
        assert_valid(&[&c.layout.dir], 2);
    });
}

#[test]
fn a_data_directory_of_another_storage_format_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = up::write_cluster(dir.path(), &fast_plan("alpha", 1)).expect("layout");
    let node = &layout.nodes[1];
    // What the single-register petrel wrote: its header, then a record.
    let storage = node.data_dir.join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    std::fs::write(
        storage.join("storage.log"),
        b"PETRELS1PTRL\x00\x00\x00\x01\x00\x00\x00\x00\x07",
    )
    .expect("write");
    let config = node.config.to_string_lossy().to_string();
    let out = petrel(&["replica", "--config", &config]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot open the storage")
            && out
                .stderr
                .contains("storage format 1 (this petrel reads format 4)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn up_launches_a_cluster_and_stops_it_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("up.out");
    let out = std::fs::File::create(&out_path).expect("out");
    let err = std::fs::File::create(dir.path().join("up.err")).expect("err");
    let cdir = dir.path().join("cluster");
    let child = Command::new(BIN)
        .args(["up", "--replicas", "1", "--cluster", "demo", "--dir"])
        .arg(&cdir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn up");
    let mut up = Proc {
        name: "up".into(),
        child: Some(child),
        log: out_path,
    };
    up.wait_log("is up", 1, Duration::from_secs(30));
    let text = up.log_text();
    assert!(
        text.contains("client --config") && text.contains("put k 7"),
        "prints a ready-to-paste command:\n{text}"
    );
    let cc = cdir.join("client.toml");
    eventually(&cc, &["put", "k", "7"], "ok", Duration::from_secs(15));
    eventually(&cc, &["get", "k"], "7", Duration::from_secs(10));
    // SIGTERM (what Ctrl-C does to the whole group): the nodes stop and release their data.
    let pid = up.child.as_ref().map(|c| c.id()).expect("pid");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let until = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(Ok(Some(s))) = up.child.as_mut().map(|c| c.try_wait()) {
            break s;
        }
        assert!(
            Instant::now() < until,
            "up did not stop:\n{}",
            up.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(up.log_text().contains("stopped"));
    for n in ["n0", "n1"] {
        let data = cdir.join("data").join(n);
        assert!(
            petrel_node::launch::lock_data_dir(&data).is_ok(),
            "{n} still running"
        );
        let log = std::fs::read_to_string(cdir.join("logs").join(if n == "n0" {
            "meta-0.log"
        } else {
            "replica-1.log"
        }))
        .expect("log");
        assert!(log.contains("stopped"), "{n} stopped cleanly:\n{log}");
    }
    // Recording is on by default in `petrel up`: the run validates.
    assert_valid(&[&cdir], 2);
}
