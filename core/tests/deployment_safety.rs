//! The core's side of deployment safety: authorization by role, leases and the grace
//! failure detector, and the life of a node whose disk was replaced.
mod common;

use common::*;
use petrel_core::meta::TableSpec;
use petrel_core::replica::{LeaseCfg, Status};
use petrel_core::*;
use stateright::actor::Out;
use std::time::Duration;

const META: usize = 0;
const P: usize = 1;
const S: usize = 2;
const CLIENT: usize = 10;
/// A replica of cluster B (`dir_a` knows it as a node of another cluster).
const FOREIGN: usize = 8;

fn lease() -> LeaseCfg {
    LeaseCfg {
        beacon: Duration::from_millis(100),
        lease: Duration::from_millis(500),
        seq_modulus: u32::MAX,
    }
}

/// Primary `P` of `G` (secondary `S`), with leases, holding none yet.
fn leased_primary() -> Sim {
    let mut cfg = replica_cfg(vec![pc(1, Some(P), &[S])], Bugs::none());
    cfg.lease = Some(lease());
    Sim::start(Node::Replica(cfg), id(P), None).0
}

fn grant(sim: &mut Sim) {
    let o = sim.timeout(Timer::Beacon);
    let seq = match sends_to(&o, id(META)).as_slice() {
        [Msg::Beacon {
            incarnation: 1,
            seq,
        }] => *seq,
        other => panic!("expected one beacon, got {other:?}"),
    };
    sim.msg(
        id(META),
        Msg::BeaconAck {
            incarnation: 1,
            seq,
            alive: true,
        },
    );
    assert!(sim.replica().lease.held);
}

fn read_result(o: &Out<Node>) -> Vec<Result<Option<Value>, ErrorCode>> {
    sends(o)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Msg::ReadReply { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

#[test]
fn a_primary_serves_only_while_it_holds_its_lease() {
    let mut sim = leased_primary();
    assert_eq!(
        read_result(&sim.msg(id(CLIENT), read(G, 1))),
        vec![Err(ErrorCode::NotPrimary)],
        "served before any lease"
    );
    let o = sim.msg(id(CLIENT), write(G, 1, 5));
    assert!(sends_to(&o, id(CLIENT)).contains(&Msg::WriteReply {
        gpid: G,
        req: 1,
        result: Err(ErrorCode::NotPrimary)
    }));
    grant(&mut sim);
    assert_eq!(
        read_result(&sim.msg(id(CLIENT), read(G, 2))),
        vec![Ok(None)]
    );
    // A write waits for its secondary; the lease lapses: the client is redirected at once.
    sim.msg(id(CLIENT), write(G, 3, 7));
    let o = sim.timeout(Timer::LeaseExpiry);
    assert_eq!(
        sends_to(&o, id(CLIENT)),
        vec![Msg::WriteReply {
            gpid: G,
            req: 3,
            result: Err(ErrorCode::NotPrimary)
        }]
    );
    assert_eq!(
        read_result(&sim.msg(id(CLIENT), read(G, 4))),
        vec![Err(ErrorCode::NotPrimary)]
    );
}

#[test]
fn only_the_outstanding_beacons_acknowledgement_renews_the_lease() {
    let mut sim = leased_primary();
    let o = sim.timeout(Timer::Beacon);
    let Some(Msg::Beacon { seq: first, .. }) = sends_to(&o, id(META)).pop() else {
        panic!("no beacon")
    };
    // The next beacon leaves before the first is answered: the first's answer is too late.
    sim.timeout(Timer::Beacon);
    sim.msg(
        id(META),
        Msg::BeaconAck {
            incarnation: 1,
            seq: first,
            alive: true,
        },
    );
    assert!(
        !sim.replica().lease.held,
        "a late acknowledgement renewed the lease"
    );
    // Nor does one for another life, or from anyone but the meta server.
    let seq = sim.replica().lease.seq;
    sim.msg(
        id(META),
        Msg::BeaconAck {
            incarnation: 2,
            seq,
            alive: true,
        },
    );
    sim.msg(
        id(S),
        Msg::BeaconAck {
            incarnation: 1,
            seq,
            alive: true,
        },
    );
    assert!(!sim.replica().lease.held);
    sim.msg(
        id(META),
        Msg::BeaconAck {
            incarnation: 1,
            seq,
            alive: true,
        },
    );
    assert!(sim.replica().lease.held);
}

#[test]
fn a_life_declared_dead_never_serves_again() {
    let mut sim = leased_primary();
    grant(&mut sim);
    let seq = sim.replica().lease.seq;
    let o = sim.msg(
        id(META),
        Msg::BeaconAck {
            incarnation: 1,
            seq,
            alive: false,
        },
    );
    let r = sim.replica();
    assert_eq!(
        (r.incarnation, r.lease.held, r.parts[&G].status),
        (2, false, Status::Inactive)
    );
    assert_eq!(
        replica_saves(&o).last().map(|s| s.incarnation),
        Some(2),
        "the new life is durable"
    );
    assert!(sends_to(&o, id(META)).contains(&Msg::Register { incarnation: 2 }));
    assert!(
        !r.parts[&G].log.is_empty() || r.parts[&G].snapshot.decree == 0,
        "data kept"
    );
}

/// A meta server of replicas P, S and 3, a table of 2 replicas (P primary, S secondary),
/// with leases and a grace of 750 ms.
fn leased_meta_cfg() -> petrel_core::meta::MetaCfg {
    let mut cfg = meta_cfg(
        &[P, S, 3],
        vec![TableSpec {
            id: G.table,
            partitions: 1,
            max_replica_count: 2,
            source: None,
        }],
        2,
        Bugs::none(),
    );
    cfg.grace = Some(Duration::from_millis(750));
    cfg
}

fn leased_meta() -> Sim {
    let cfg = leased_meta_cfg();
    let (sim, o) = Sim::start(Node::Meta(cfg), id(META), None);
    let armed: Vec<Timer> = o
        .iter()
        .filter_map(|c| match c {
            stateright::actor::Command::SetTimer(t, _) => Some(t.clone()),
            _ => None,
        })
        .collect();
    for r in [P, S, 3] {
        assert!(
            armed.contains(&Timer::Grace(id(r))),
            "no grace timer for {r}: {armed:?}"
        );
    }
    sim
}

#[test]
fn the_meta_server_declares_a_replica_dead_only_when_its_grace_fires() {
    let mut sim = leased_meta();
    let o = sim.msg(
        id(P),
        Msg::Beacon {
            incarnation: 1,
            seq: 4,
        },
    );
    assert_eq!(
        sends_to(&o, id(P)),
        vec![Msg::BeaconAck {
            incarnation: 1,
            seq: 4,
            alive: true
        }]
    );
    // A broken connection proves nothing under leases.
    sim.msg(id(P), Msg::PeerDown { incarnation: 1 });
    assert!(sim.meta().alive.contains_key(&id(P)));
    // The grace fires: dead, and the secondary takes over.
    sim.timeout(Timer::Grace(id(P)));
    assert!(!sim.meta().alive.contains_key(&id(P)));
    assert_eq!(sim.meta().configs[&G].primary, Some(id(S)));
    // That life is never alive again.
    let o = sim.msg(
        id(P),
        Msg::Beacon {
            incarnation: 1,
            seq: 5,
        },
    );
    assert_eq!(
        sends_to(&o, id(P)),
        vec![Msg::BeaconAck {
            incarnation: 1,
            seq: 5,
            alive: false
        }]
    );
    let o = sim.msg(id(P), Msg::Register { incarnation: 1 });
    assert_eq!(
        sends_to(&o, id(P)),
        vec![Msg::BeaconAck {
            incarnation: 1,
            seq: 0,
            alive: false
        }]
    );
    assert!(!sim.meta().alive.contains_key(&id(P)));
}

#[test]
fn an_empty_disk_gets_a_new_life_and_holds_no_role() {
    let mut sim = leased_meta();
    assert!(sim.meta().configs[&G].is_member(id(P)));
    let o = sim.msg(id(P), Msg::Register { incarnation: 0 });
    assert_eq!(
        sends_to(&o, id(P)),
        vec![Msg::Registered { incarnation: 2 }]
    );
    assert_eq!(
        meta_saves(&o).first().map(|s| s.lives[&id(P)]),
        Some(2),
        "the new life is durable first"
    );
    assert!(
        !sim.meta().configs[&G].is_member(id(P)),
        "a node without data stayed a member"
    );
    assert!(!sim.meta().alive.contains_key(&id(P)));
    // It registers the life it was given: alive, and a learner is asked for.
    sim.msg(id(P), Msg::Register { incarnation: 2 });
    assert_eq!(sim.meta().alive.get(&id(P)), Some(&2));
}

/// Found on real processes: the new life's `Register` was lost with the connection that
/// life replaced, and its first beacon made it alive without a role; the partition stayed
/// short of a replica for good. A beacon that makes a life alive fills the partition too.
#[test]
fn a_new_life_first_heard_by_its_beacon_is_asked_to_learn() {
    // A table of 3 replicas with 2 members (P primary, S secondary): node 3 is wanted.
    let mut cfg = meta_cfg(
        &[P, S, 3],
        vec![TableSpec {
            id: G.table,
            partitions: 1,
            max_replica_count: 3,
            source: None,
        }],
        2,
        Bugs::none(),
    );
    cfg.grace = Some(Duration::from_millis(750));
    let (mut sim, _) = Sim::start(Node::Meta(cfg), id(META), None);
    let primary = sim.meta().configs[&G].primary.expect("a primary");
    assert!(!sim.meta().configs[&G].is_member(id(3)));
    let o = sim.msg(id(3), Msg::Register { incarnation: 0 });
    let life = match sends_to(&o, id(3)).as_slice() {
        [Msg::Registered { incarnation }] => *incarnation,
        other => panic!("{other:?}"),
    };
    // Its Register of that life is lost; its first beacon arrives.
    let o = sim.msg(
        id(3),
        Msg::Beacon {
            incarnation: life,
            seq: 1,
        },
    );
    assert_eq!(sim.meta().alive.get(&id(3)), Some(&life));
    assert!(
        sends_to(&o, primary)
            .iter()
            .any(|m| matches!(m, Msg::AddSecondary { node, .. } if *node == id(3))),
        "no learner asked for: {o:?}"
    );
}

#[test]
fn nobody_but_our_meta_server_reconfigures_a_replica() {
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![pc(1, Some(P), &[S])], Bugs::none())),
        id(S),
        None,
    );
    let evil = pc(1000, Some(S), &[]);
    for from in [FOREIGN, CLIENT, P, OPERATOR as usize] {
        sim.msg(
            id(from),
            Msg::ConfigUpdate {
                config: evil.clone(),
                incarnation: 1,
            },
        );
        assert_eq!(
            sim.replica().parts[&G].config.ballot,
            1,
            "a ConfigUpdate from {from} was adopted"
        );
    }
    sim.msg(
        id(META),
        Msg::ConfigUpdate {
            config: evil,
            incarnation: 1,
        },
    );
    assert_eq!(sim.replica().parts[&G].config.ballot, 1000);
}

#[test]
fn only_the_source_cluster_writes_into_a_follower_table() {
    let mut cfg = replica_cfg(vec![follower_pc(G, 1, Some(P), &[], 30)], Bugs::none());
    cfg.accept_duplication = true;
    let (mut sim, _) = Sim::start(Node::Replica(cfg), id(P), None);
    let data: petrel_core::Map<Key, Value> = [(k(), val(9))].into();
    // Cluster B's node, claiming to be cluster 30's: refused with a reason.
    let o = sim.msg(
        id(FOREIGN),
        Msg::Checkpoint {
            gpid: G,
            origin: id(30),
            decree: 3,
            data: data.clone(),
        },
    );
    assert!(
        matches!(
            sends_to(&o, id(FOREIGN)).as_slice(),
            [Msg::ApplyReply {
                result: Err(Some(_)),
                ..
            }]
        ),
        "{o:?}"
    );
    assert!(sim.replica().parts[&G].log.is_empty());
    // The source cluster's node: applied.
    sim.msg(
        id(31),
        Msg::Checkpoint {
            gpid: G,
            origin: id(30),
            decree: 3,
            data,
        },
    );
    assert_eq!(sim.replica().parts[&G].log.len(), 1);
    // A table that is not a follower refuses everyone.
    let mut cfg = replica_cfg(vec![pc(1, Some(P), &[])], Bugs::none());
    cfg.accept_duplication = true;
    let (mut own, _) = Sim::start(Node::Replica(cfg), id(P), None);
    let o = own.msg(
        id(31),
        Msg::Ship {
            gpid: G,
            origin: id(30),
            entries: vec![(1, put(1))],
        },
    );
    assert!(
        matches!(
            sends_to(&o, id(31)).as_slice(),
            [Msg::ApplyReply {
                result: Err(Some(_)),
                ..
            }]
        ),
        "{o:?}"
    );
    assert!(own.replica().parts[&G].log.is_empty());
}

#[test]
fn operator_requests_need_an_operator() {
    let mut sim = leased_meta();
    for from in [CLIENT, FOREIGN, P] {
        let o = sim.msg(
            id(from),
            Msg::CreateTable {
                table: 9,
                partitions: 1,
                replica_count: 1,
            },
        );
        assert!(o.is_empty(), "{from}: {o:?}");
    }
    let o = sim.msg(
        operator(),
        Msg::CreateTable {
            table: 9,
            partitions: 1,
            replica_count: 1,
        },
    );
    assert_eq!(
        sends_to(&o, operator()),
        vec![Msg::CreateTableReply {
            table: 9,
            result: Ok(())
        }]
    );
}

/// A `Learn` sent to a life that is gone never reaches its successor: when the learner's
/// connection breaks before it caught up, the primary teaches it again; once it caught up
/// (a commit target), a broken connection sends nothing.
#[test]
fn a_primary_teaches_again_a_learner_whose_connection_broke() {
    const L: usize = 3;
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![pc(1, Some(P), &[S])], Bugs::none())),
        id(P),
        None,
    );
    let learns = |o: &Out<Node>| {
        sends_to(o, id(L))
            .into_iter()
            .filter(|m| matches!(m, Msg::Learn { .. }))
            .count()
    };
    let o = sim.msg(
        id(META),
        Msg::AddSecondary {
            config: pc(1, Some(P), &[S]),
            node: id(L),
            incarnation: 1,
        },
    );
    assert_eq!(learns(&o), 1);
    // The meta server asks again (it restarted and lost track of the learner): taught
    // again. The two lessons may cross; the learner ignores the older one (below).
    let o = sim.msg(
        id(META),
        Msg::AddSecondary {
            config: pc(1, Some(P), &[S]),
            node: id(L),
            incarnation: 1,
        },
    );
    assert_eq!(learns(&o), 1);
    let o = sim.msg(id(L), Msg::PeerDown { incarnation: 1 });
    assert_eq!(learns(&o), 1, "the learner is taught again: {o:?}");
    // A connection of another node breaking teaches nobody.
    let o = sim.msg(id(S), Msg::PeerDown { incarnation: 1 });
    assert_eq!(learns(&o), 0);
}

/// Two lessons of one primary at one ballot may cross (it taught again when the restarted
/// meta server asked again): the learner keeps the newer one. Taking the older one last
/// would lose what it reported learned after the primary counted it caught up (found by
/// SAFE-2 in `meta-restart-reconfig`; mutant `learner-takes-stale-learn`).
#[test]
fn a_learner_ignores_an_older_lesson_that_arrives_last() {
    const L: usize = 3;
    let learned = |bugs: Bugs| {
        let (mut sim, _) = Sim::start(
            Node::Replica(replica_cfg(Vec::new(), bugs)),
            id(L),
            Some(NodeStorage::Replica(petrel_core::replica::ReplicaStorage {
                incarnation: 1,
                parts: Default::default(),
            })),
        );
        let lesson = |log: std::collections::BTreeMap<Decree, Entry>, committed| Msg::Learn {
            config: pc(1, Some(P), &[S]),
            snapshot: Snapshot::default(),
            log,
            committed,
            retain: Decree::MAX,
        };
        let newer = [(
            1,
            Entry {
                ballot: 1,
                mutation: mutation(CLIENT, 1, 1),
            },
        )]
        .into_iter()
        .collect();
        let o = sim.msg(id(P), lesson(newer, 1));
        assert!(sends_to(&o, id(P))
            .iter()
            .any(|m| matches!(m, Msg::LearnDone { learned: 1, .. })));
        sim.msg(id(P), lesson(Default::default(), 0));
        sim.replica().parts[&G].last_decree()
    };
    assert_eq!(learned(Bugs::none()), 1);
    assert_eq!(learned(Bugs::none().with(Bug::LearnerTakesStaleLearn)), 0);
}

/// A partition longer than QUIC's idle timeout breaks the connection to a live member:
/// the prepares in flight, or their ACKs, die with it. The primary prepares again what
/// that member has not ACKed, and only that (found by the fault campaigns, seeds 2 and 4;
/// `link-break-prepare`, mutant `prepare-not-resent`).
#[test]
fn a_primary_prepares_again_for_a_member_whose_connection_broke() {
    let prepares = |bugs: Bugs| {
        let (mut sim, _) = Sim::start(
            Node::Replica(replica_cfg(vec![pc(1, Some(P), &[S])], bugs)),
            id(P),
            None,
        );
        let count = |o: &Out<Node>| {
            sends_to(o, id(S))
                .into_iter()
                .filter(|m| matches!(m, Msg::Prepare { .. }))
                .count()
        };
        let o = sim.msg(id(CLIENT), write(G, 1, 1));
        assert_eq!(count(&o), 1);
        let o = sim.msg(id(CLIENT), write(G, 2, 2));
        assert_eq!(count(&o), 1);
        // Decree 1 ACKed, decree 2's prepare or ACK lost with the connection.
        sim.msg(
            id(S),
            Msg::PrepareAck {
                gpid: G,
                ballot: 1,
                decree: 1,
                ok: true,
            },
        );
        let again = count(&sim.msg(id(S), Msg::PeerDown { incarnation: 1 }));
        // Another node's connection breaking prepares nothing to S.
        let other = count(&sim.msg(id(9), Msg::PeerDown { incarnation: 1 }));
        (again, other)
    };
    assert_eq!(prepares(Bugs::none()), (1, 0));
    assert_eq!(prepares(Bugs::none().with(Bug::PrepareNotResent)), (0, 0));
}

/// Found on real processes (node/tests/partition.rs): the meta server restarted while cut
/// off from the primary. At the end of its grace it gave the silent primary's role away,
/// but kept that life as not dead; when the partition healed, the old life's beacon was
/// answered "alive" and it regained a lease while it still believed it was the primary of
/// the superseded ballot. A life silent for the whole grace is declared dead.
#[test]
fn a_life_silent_through_a_restarted_meta_servers_grace_is_declared_dead() {
    let cfg = leased_meta_cfg();
    let (_, o) = Sim::start(Node::Meta(cfg.clone()), id(META), None);
    let stored = meta_saves(&o).pop().expect("the bootstrap is durable");
    // The restart: S and 3 beacon within the grace, P (the primary, cut off) does not.
    let (mut sim, _) = Sim::start(Node::Meta(cfg), id(META), Some(NodeStorage::Meta(stored)));
    for r in [S, 3] {
        sim.msg(
            id(r),
            Msg::Beacon {
                incarnation: 1,
                seq: 1,
            },
        );
    }
    let o = sim.timeout(Timer::MetaGrace);
    assert_eq!(sim.meta().configs[&G].primary, Some(id(S)));
    assert_eq!(
        meta_saves(&o)
            .first()
            .and_then(|s| s.dead.get(&id(P)).copied()),
        Some(1),
        "the silent life is durably dead before its role is given away"
    );
    // The partition heals: P's late beacon is answered "dead", so it restarts as a new life.
    let o = sim.msg(
        id(P),
        Msg::Beacon {
            incarnation: 1,
            seq: 9,
        },
    );
    assert_eq!(
        sends_to(&o, id(P)),
        vec![Msg::BeaconAck {
            incarnation: 1,
            seq: 9,
            alive: false
        }]
    );
    assert!(!sim.meta().alive.contains_key(&id(P)));
}
