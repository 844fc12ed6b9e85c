use super::*;
use crate::certs;
use std::net::Ipv4Addr;

fn settings() -> Settings {
    Settings {
        idle_timeout: Duration::from_millis(1000),
        keep_alive: Duration::from_millis(200),
        handshake_timeout: Duration::from_millis(500),
        ..Settings::default()
    }
}

async fn recv(rx: &mut mpsc::Receiver<(Id, Msg)>) -> (u64, Msg) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some((src, msg))) => (raw_of(src), msg),
        other => panic!("nothing received: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_peer_down_carry_the_announced_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::issue("alpha", &certs::Wanted::cluster(0, &[1]), dir.path()).expect("certs");
    let tls = |id: u64| {
        let (c, k) = certs::node_cert_paths(dir.path(), id);
        TlsMaterial::load(&dir.path().join("ca.pem"), &[], &c, &k).expect("tls")
    };
    let ports = crate::up::free_udp_ports(3).expect("ports");
    let addr = |i: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i]));
    let role = |i: usize| {
        if i == 0 {
            certs::NodeRole::Meta
        } else {
            certs::NodeRole::Replica
        }
    };
    let book: BTreeMap<u64, PeerAddr> = (0..3)
        .map(|i| {
            (
                i as u64,
                PeerAddr {
                    cluster: "alpha".into(),
                    addr: addr(i),
                    role: role(i),
                },
            )
        })
        .collect();
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let (tx_b, mut rx_b) = mpsc::channel(16);
    let a = Transport::bind_node(
        addr(0),
        0,
        "alpha",
        1,
        book.clone(),
        &tls(0),
        settings(),
        tx_a,
    )
    .expect("a");
    let b = Transport::bind_node(
        addr(1),
        1,
        "alpha",
        7,
        book.clone(),
        &tls(1),
        settings(),
        tx_b,
    )
    .expect("b");

    // A dials B lazily; B answers over the accepted connection.
    a.send(id_of(1), Msg::Register { incarnation: 1 });
    assert_eq!(recv(&mut rx_b).await, (0, Msg::Register { incarnation: 1 }));
    b.send(id_of(0), Msg::Register { incarnation: 7 });
    assert_eq!(recv(&mut rx_a).await, (1, Msg::Register { incarnation: 7 }));

    // B goes away: A hears PeerDown for the life B announced.
    b.shutdown().await;
    drop(b);
    assert_eq!(recv(&mut rx_a).await, (1, Msg::PeerDown { incarnation: 7 }));
    // A later send to B fails to dial: PeerDown again with the last life heard.
    a.send(id_of(1), Msg::Register { incarnation: 1 });
    assert_eq!(recv(&mut rx_a).await, (1, Msg::PeerDown { incarnation: 7 }));
    // A node never heard from: PeerDown with 0 (no life), and the error is recorded.
    a.send(id_of(2), Msg::Register { incarnation: 1 });
    assert_eq!(recv(&mut rx_a).await, (2, Msg::PeerDown { incarnation: 0 }));
    assert!(
        a.errors()
            .iter()
            .any(|(p, e)| *p == 2 && e.contains("node 2")),
        "{:?}",
        a.errors()
    );
    // Outside the address book: dropped without a notice.
    a.send(id_of(99), Msg::Register { incarnation: 1 });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx_a.recv())
            .await
            .is_err()
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sessions_share_one_connection_and_get_their_own_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::issue("alpha", &certs::Wanted::cluster(0, &[]), dir.path()).expect("certs");
    let ca = dir.path().join("ca.pem");
    let (nc, nk) = certs::node_cert_paths(dir.path(), 0);
    let (cc, ck) = certs::client_cert_paths(dir.path(), 0);
    let port = crate::up::free_udp_ports(1).expect("port")[0];
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let book: BTreeMap<u64, PeerAddr> = BTreeMap::from([(
        0,
        PeerAddr {
            cluster: "alpha".into(),
            addr,
            role: certs::NodeRole::Meta,
        },
    )]);
    let (tx_node, mut rx_node) = mpsc::channel(16);
    let node_tls = TlsMaterial::load(&ca, &[], &nc, &nk).expect("node tls");
    let node = Transport::bind_node(
        addr,
        0,
        "alpha",
        1,
        book.clone(),
        &node_tls,
        settings(),
        tx_node,
    )
    .expect("node");
    let client_tls = TlsMaterial::load(&ca, &[], &cc, &ck).expect("client tls");
    let ep = ClientEndpoint::bind("alpha", book, &client_tls, settings()).expect("endpoint");

    let (s1, s2) = (CLIENT_ID_BASE + 1, CLIENT_ID_BASE + 2);
    let (tx1, mut rx1) = mpsc::channel(16);
    let (tx2, mut rx2) = mpsc::channel(16);
    let t1 = ep.transport(s1, tx1).expect("session 1");
    let t2 = ep.transport(s2, tx2).expect("session 2");
    assert_eq!(ep.sessions(), 2);
    let gpid = petrel_core::Gpid {
        table: 1,
        partition: 0,
    };
    t1.send(id_of(0), Msg::QueryConfig { gpid });
    t2.send(id_of(0), Msg::QueryCluster);
    // The node sees each session as its own client...
    let mut got = vec![recv(&mut rx_node).await, recv(&mut rx_node).await];
    got.sort_by_key(|(src, _)| *src);
    assert_eq!(
        got,
        vec![(s1, Msg::QueryConfig { gpid }), (s2, Msg::QueryCluster)]
    );
    // ...over one connection, and its answers reach only the session they name.
    assert_eq!(node.peers().links.len(), 1, "one client connection");
    let reply = |n| Msg::QueryConfigReply {
        gpid,
        config: None,
        incarnation: Some(n),
    };
    node.send(id_of(s2), reply(2));
    node.send(id_of(s1), reply(1));
    assert_eq!(recv(&mut rx1).await, (0, reply(1)));
    assert_eq!(recv(&mut rx2).await, (0, reply(2)));
    // A session that ended is forgotten on both sides: a late answer goes nowhere.
    t1.shutdown().await;
    assert_eq!(ep.sessions(), 1);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while node.peers().routes.contains_key(&s1) {
        assert!(
            tokio::time::Instant::now() < until,
            "the node kept the ended session's route"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.send(id_of(s1), reply(3));
    node.send(id_of(s2), reply(4));
    assert_eq!(recv(&mut rx2).await, (0, reply(4)));
    assert!(rx1.try_recv().is_err());
    // A dropped session ends too; the node's PeerDown reaches the live sessions.
    drop(t2);
    assert_eq!(ep.sessions(), 0);
    let (tx3, mut rx3) = mpsc::channel(16);
    let t3 = ep.transport(CLIENT_ID_BASE + 3, tx3).expect("session 3");
    t3.send(id_of(0), Msg::QueryCluster);
    assert_eq!(
        recv(&mut rx_node).await,
        (CLIENT_ID_BASE + 3, Msg::QueryCluster)
    );
    node.shutdown().await;
    assert_eq!(recv(&mut rx3).await, (0, Msg::PeerDown { incarnation: 1 }));
    ep.close().await;
}
#[tokio::test]
async fn a_process_must_hold_its_own_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::issue(
        "alpha",
        &certs::Wanted {
            nodes: vec![(1, certs::NodeRole::Replica)],
            ..Default::default()
        },
        dir.path(),
    )
    .expect("certs");
    let (c, k) = certs::node_cert_paths(dir.path(), 1);
    let tls = TlsMaterial::load(&dir.path().join("ca.pem"), &[], &c, &k).expect("tls");
    let (tx, _rx) = mpsc::channel(1);
    let err = Transport::bind_node(
        "127.0.0.1:0".parse().expect("addr"),
        2,
        "alpha",
        1,
        BTreeMap::new(),
        &tls,
        settings(),
        tx,
    )
    .err()
    .expect("node 2 with node 1's certificate");
    assert!(
        err.to_string()
            .contains("not valid for replica.n2.alpha.petrel"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_over_the_frame_limit_is_counted_and_reported_down_with_the_peers_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::issue("alpha", &certs::Wanted::cluster(0, &[1]), dir.path()).expect("certs");
    let tls = |id: u64| {
        let (c, k) = certs::node_cert_paths(dir.path(), id);
        TlsMaterial::load(&dir.path().join("ca.pem"), &[], &c, &k).expect("tls")
    };
    let ports = crate::up::free_udp_ports(2).expect("ports");
    let addr = |i: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i]));
    let role = |i: usize| {
        if i == 0 {
            certs::NodeRole::Meta
        } else {
            certs::NodeRole::Replica
        }
    };
    let book: BTreeMap<u64, PeerAddr> = (0..2)
        .map(|i| {
            (
                i as u64,
                PeerAddr {
                    cluster: "alpha".into(),
                    addr: addr(i),
                    role: role(i),
                },
            )
        })
        .collect();
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let (tx_b, mut rx_b) = mpsc::channel(16);
    let a = Transport::bind_node(
        addr(0),
        0,
        "alpha",
        1,
        book.clone(),
        &tls(0),
        settings(),
        tx_a,
    )
    .expect("a");
    let b =
        Transport::bind_node(addr(1), 1, "alpha", 4, book, &tls(1), settings(), tx_b).expect("b");
    a.send(id_of(1), Msg::Register { incarnation: 1 });
    assert_eq!(recv(&mut rx_b).await, (0, Msg::Register { incarnation: 1 }));
    b.send(id_of(0), Msg::Register { incarnation: 4 });
    assert_eq!(recv(&mut rx_a).await, (1, Msg::Register { incarnation: 4 }));
    // 17 MiB in one message: it cannot be framed. The sender's actor hears PeerDown of the
    // life the message was for, and the drop is counted.
    let gpid = petrel_core::Gpid {
        table: 1,
        partition: 0,
    };
    let big = Msg::Write {
        gpid,
        req: 1,
        key: "k".into(),
        value: Some(vec![0u8; 17 << 20].into()),
    };
    a.send(id_of(1), big);
    assert_eq!(recv(&mut rx_a).await, (1, Msg::PeerDown { incarnation: 4 }));
    assert_eq!(a.stats().dropped()[0], ("oversized", 1));
    // The link itself is fine: the next message arrives.
    a.send(id_of(1), Msg::Register { incarnation: 1 });
    assert_eq!(recv(&mut rx_b).await, (0, Msg::Register { incarnation: 1 }));
    a.shutdown().await;
    b.shutdown().await;
}
