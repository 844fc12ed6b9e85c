//! Robustness: arbitrary messages (every variant, arbitrary fields, known and unknown
//! senders) and timers, in arbitrary order, fed to every role. Nothing panics; a replica
//! turns `broken` only on a re-prepare of a committed decree with another mutation, and
//! stays silent once broken; ballots and commit points never go back.
mod common;

use common::*;
use petrel_core::dup::{CreateError, DupEntry, DupIdent, DupRecord, DupStatus, FailMode};
use petrel_core::meta::TableSpec;
use petrel_core::replica::ReplicaState;
use petrel_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

// ---- arbitrary values: mostly small (so they hit real state), sometimes extreme ----------

fn arb_u32() -> impl Strategy<Value = u32> {
    prop_oneof![12 => 0u32..8, 1 => Just(u32::MAX), 1 => Just(u32::MAX - 1), 1 => any::<u32>()]
}

fn arb_u8() -> impl Strategy<Value = u8> {
    prop_oneof![12 => 0u8..6, 1 => Just(u8::MAX), 1 => any::<u8>()]
}

fn arb_id() -> impl Strategy<Value = Id> {
    prop_oneof![12 => (0usize..8).prop_map(Id::from), 1 => Just(Id::from(99)), 1 => Just(Id::from(usize::MAX))]
}

fn arb_gpid() -> impl Strategy<Value = Gpid> {
    prop_oneof![6 => Just(G), 3 => (0u8..3, 0u8..3).prop_map(|(table, partition)| Gpid { table, partition })]
}

fn arb_config() -> impl Strategy<Value = PartitionConfig> {
    (
        arb_gpid(),
        arb_u32(),
        prop::option::weighted(0.85, arb_id()),
        prop::collection::vec(arb_id(), 0..4),
        arb_u8(),
    )
        .prop_map(
            |(gpid, ballot, primary, secondaries, max_replica_count)| PartitionConfig {
                gpid,
                ballot,
                primary,
                secondaries,
                max_replica_count,
                source: None,
            },
        )
}

/// A key or a value: mostly one of a few (so keys collide), sometimes any short bytes.
fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => prop::sample::select(vec![K, "a", "", "1"]).prop_map(Bytes::from),
        1 => prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from),
    ]
}

fn arb_map() -> impl Strategy<Value = Map<Key, Value>> {
    prop::collection::btree_map(arb_bytes(), arb_bytes(), 0..3).prop_map(Map::from)
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (arb_bytes(), arb_bytes()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => arb_bytes().prop_map(Op::Del),
        1 => arb_map().prop_map(Op::Load),
    ]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    (arb_id(), arb_u32(), arb_op()).prop_map(|(client, req, op)| Mutation { client, req, op })
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (arb_u32(), arb_mutation()).prop_map(|(ballot, mutation)| Entry { ballot, mutation })
}

fn arb_err() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::NotPrimary,
        ErrorCode::UnknownPartition,
        ErrorCode::Recovering,
        ErrorCode::InvalidVersion,
        ErrorCode::PeerDown,
        ErrorCode::Timeout,
    ])
}

fn arb_dup_status() -> impl Strategy<Value = DupStatus> {
    prop::sample::select(vec![
        DupStatus::Init,
        DupStatus::Prepare,
        DupStatus::App,
        DupStatus::Log,
        DupStatus::Pause,
        DupStatus::Removed,
    ])
}

fn arb_fail_mode() -> impl Strategy<Value = FailMode> {
    prop::sample::select(vec![FailMode::Slow, FailMode::Skip])
}

fn arb_dup_entry() -> impl Strategy<Value = DupEntry> {
    (
        arb_dup_status(),
        arb_id(),
        arb_u8(),
        arb_u32(),
        arb_fail_mode(),
        arb_u32(),
    )
        .prop_map(
            |(status, remote_meta, remote_table, version, fail_mode, confirmed)| DupEntry {
                status,
                remote_meta,
                remote_table,
                version,
                fail_mode,
                confirmed,
            },
        )
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        arb_u32(),
        arb_map(),
        prop::collection::btree_map(arb_id(), arb_u32(), 0..3),
    )
        .prop_map(|(decree, data, last_req)| Snapshot {
            decree,
            data,
            last_req: last_req.into(),
        })
}

fn arb_dup_record() -> impl Strategy<Value = DupRecord> {
    (
        (arb_u8(), arb_u8(), arb_dup_status(), arb_u32(), arb_id()),
        (
            prop::collection::btree_map(arb_u8(), arb_u32(), 0..3),
            arb_fail_mode(),
            arb_u32(),
            prop::collection::btree_map(arb_u8(), ".{0,8}", 0..2),
        ),
    )
        .prop_map(
            |(
                (dupid, table, status, version, remote_meta),
                (confirmed, fail_mode, skipped, refusing),
            )| DupRecord {
                dupid,
                table,
                status,
                version,
                remote_meta,
                confirmed,
                fail_mode,
                skipped,
                refusing,
                ..a_dup_record()
            },
        )
}

fn arb_dup_ident() -> impl Strategy<Value = DupIdent> {
    (arb_id(), arb_u8(), arb_u8()).prop_map(|(source_meta, table, dupid)| DupIdent {
        source_meta,
        table,
        dupid,
    })
}

fn arb_reason() -> impl Strategy<Value = String> {
    prop::sample::select(vec![String::new(), "no".to_string()])
}

/// Any message of the protocol, with arbitrary fields.
fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        1 => arb_gpid().prop_map(|gpid| Msg::QueryConfig { gpid }),
        1 => (arb_gpid(), prop::option::of(arb_config()), prop::option::of(arb_u32()))
            .prop_map(|(gpid, config, incarnation)| Msg::QueryConfigReply { gpid, config, incarnation }),
        1 => (arb_gpid(), arb_u32(), arb_bytes(), prop::option::weighted(0.7, arb_bytes()))
            .prop_map(|(gpid, req, key, value)| Msg::Write { gpid, req, key, value }),
        1 => (arb_gpid(), arb_u32(), prop::result::maybe_ok(Just(()), arb_err())).prop_map(|(gpid, req, result)| Msg::WriteReply { gpid, req, result }),
        1 => (arb_gpid(), arb_u32(), arb_bytes()).prop_map(|(gpid, req, key)| Msg::Read { gpid, req, key }),
        1 => (arb_gpid(), arb_u32(), prop::result::maybe_ok(prop::option::of(arb_bytes()), arb_err()))
            .prop_map(|(gpid, req, result)| Msg::ReadReply { gpid, req, result }),
        1 => arb_u32().prop_map(|incarnation| Msg::Register { incarnation }),
        1 => (arb_config(), arb_u32()).prop_map(|(config, incarnation)| Msg::ConfigUpdate { config, incarnation }),
        1 => (arb_config(), arb_id(), arb_u32()).prop_map(|(config, node, incarnation)| Msg::AddSecondary { config, node, incarnation }),
        1 => (arb_config(), arb_u32()).prop_map(|(config, incarnation)| Msg::ProposeConfig { config, incarnation }),
        1 => (prop::result::maybe_ok(arb_config(), arb_config()), arb_u32()).prop_map(|(result, incarnation)| Msg::ProposeConfigReply { result, incarnation }),
        3 => (arb_config(), arb_u32(), arb_entry(), arb_u32(), arb_u32(), arb_u32())
            .prop_map(|(config, decree, entry, committed, base, retain)| Msg::Prepare { config, decree, entry, committed, base, retain }),
        1 => (arb_gpid(), arb_u32(), arb_u32(), any::<bool>()).prop_map(|(gpid, ballot, decree, ok)| Msg::PrepareAck { gpid, ballot, decree, ok }),
        1 => (arb_config(), arb_u32(), arb_u32(), arb_u32())
            .prop_map(|(config, committed, base, retain)| Msg::GroupCheck { config, committed, base, retain }),
        1 => (arb_config(), arb_snapshot(), prop::collection::btree_map(arb_u32(), arb_entry(), 0..5), arb_u32(), arb_u32())
            .prop_map(|(config, snapshot, log, committed, retain)| Msg::Learn { config, snapshot, log, committed, retain }),
        1 => (arb_gpid(), arb_u32(), arb_u32()).prop_map(|(gpid, ballot, learned)| Msg::LearnDone { gpid, ballot, learned }),
        2 => arb_u32().prop_map(|incarnation| Msg::PeerDown { incarnation }),
        // ---- duplication ----
        1 => (arb_gpid(), prop::collection::btree_map(arb_u8(), arb_dup_entry(), 0..3), arb_u32())
            .prop_map(|(gpid, dups, incarnation)| Msg::DupUpdate { gpid, dups, incarnation }),
        2 => (arb_gpid(), arb_u8(), prop_oneof![
                arb_u32().prop_map(DupProgress::Checkpoint),
                arb_u32().prop_map(DupProgress::Applied),
                arb_u32().prop_map(DupProgress::Confirmed),
                arb_reason().prop_map(DupProgress::Refused),
                (arb_u32(), arb_reason()).prop_map(|(from, reason)| DupProgress::Rejected { from, reason }),
                (arb_u32(), arb_u32()).prop_map(|(upto, count)| DupProgress::Skipped { upto, count }),
            ])
            .prop_map(|(gpid, dupid, progress)| Msg::DupReport { gpid, dupid, progress }),
        1 => (arb_dup_ident(), arb_u8(), arb_u8(), arb_u8())
            .prop_map(|(source, table, partitions, replica_count)| Msg::CreateFollower { source, table, partitions: partitions % 4, replica_count }),
        1 => (arb_dup_ident(), prop_oneof![Just(Ok(())), Just(Err(CreateError::Exists)), arb_reason().prop_map(|r| Err(CreateError::Refused(r)))])
            .prop_map(|(source, result)| Msg::CreateFollowerReply { source, result }),
        1 => arb_u8().prop_map(|table| Msg::QueryFollower { table }),
        1 => (arb_u8(), prop::collection::vec(arb_config(), 0..3)).prop_map(|(table, configs)| Msg::QueryFollowerReply { table, configs }),
        1 => (arb_gpid(), arb_id(), arb_u32(), arb_map()).prop_map(|(gpid, origin, decree, data)| Msg::Checkpoint { gpid, origin, decree, data }),
        2 => (arb_gpid(), arb_id(), prop::collection::vec((arb_u32(), arb_op()), 0..4))
            .prop_map(|(gpid, origin, entries)| Msg::Ship { gpid, origin, entries }),
        2 => (arb_gpid(), arb_u32(), prop_oneof![Just(Ok(())), Just(Err(None)), arb_reason().prop_map(|r| Err(Some(r)))])
            .prop_map(|(gpid, decree, result)| Msg::ApplyReply { gpid, decree, result }),
        // ---- operator ----
        1 => (arb_u8(), arb_u8(), arb_u8())
            .prop_map(|(table, partitions, replica_count)| Msg::CreateTable { table, partitions: partitions % 4, replica_count }),
        1 => (arb_u8(), prop::result::maybe_ok(Just(()), arb_reason())).prop_map(|(table, result)| Msg::CreateTableReply { table, result }),
        1 => (arb_u8(), arb_id(), arb_u8(), arb_u8(), any::<bool>()).prop_map(|(table, remote_meta, remote_table, remote_replica_count, full)| {
            Msg::AddDup { table, remote_meta, remote_table, remote_replica_count, full }
        }),
        1 => (arb_u8(), prop::result::maybe_ok(arb_u8(), arb_reason())).prop_map(|(table, result)| Msg::AddDupReply { table, result }),
        2 => (arb_u8(), arb_dup_status()).prop_map(|(dupid, status)| Msg::ModifyDup { dupid, status }),
        1 => (arb_u8(), prop::result::maybe_ok(arb_dup_status(), arb_reason())).prop_map(|(dupid, result)| Msg::ModifyDupReply { dupid, result }),
        1 => (arb_u8(), arb_fail_mode()).prop_map(|(dupid, mode)| Msg::SetFailMode { dupid, mode }),
        1 => (arb_u8(), prop::result::maybe_ok(arb_fail_mode(), arb_reason())).prop_map(|(dupid, result)| Msg::SetFailModeReply { dupid, result }),
        1 => Just(Msg::QueryCluster),
        1 => (
            prop::collection::vec(arb_config(), 0..3),
            prop::collection::vec((arb_id(), arb_u32()), 0..3),
            prop::collection::vec(arb_dup_record(), 0..2),
            prop::collection::vec((arb_u8(), arb_dup_ident()), 0..2),
        )
            .prop_map(|(configs, alive, dups, followers)| Msg::ClusterStatus { configs, alive, dups, followers }),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    Msg(Id, Msg),
    Timer(Timer),
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        12 => (arb_id(), arb_msg()).prop_map(|(src, m)| Step::Msg(src, m)),
        1 => prop::sample::select(vec![Timer::RequestTimeout, Timer::DupRetry, Timer::QueryBackoff, Timer::Reregister, Timer::MetaGrace]).prop_map(Step::Timer),
    ];
    prop::collection::vec(step, 1..40)
}

fn apply(sim: &mut Sim, step: &Step) -> stateright::actor::Out<Node> {
    match step {
        Step::Msg(src, m) => sim.msg(*src, m.clone()),
        Step::Timer(t) => sim.timeout(t.clone()),
    }
}

// ---- the roles --------------------------------------------------------------------------

const REPLICAS: [usize; 3] = [1, 2, 3];

fn tables() -> Vec<TableSpec> {
    vec![TableSpec {
        id: 1,
        partitions: 2,
        max_replica_count: 3,
        source: None,
    }]
}

fn a_dup_record() -> DupRecord {
    DupRecord {
        dupid: 1,
        table: 1,
        status: DupStatus::Prepare,
        version: 0,
        remote_meta: id(7),
        remote_table: 2,
        remote_replica_count: 1,
        fail_mode: FailMode::Slow,
        skipped: 0,
        refusing: BTreeMap::new(),
        checkpoints: BTreeMap::new(),
        applied: BTreeSet::new(),
        confirmed: BTreeMap::new(),
        create_attempts: 0,
        stall: None,
    }
}

fn metas() -> Vec<Sim> {
    let mut out = Vec::new();
    for (members, accept, dups) in [
        (3u8, false, None),
        (0, true, None),
        (2, true, Some(a_dup_record())),
        (3, false, Some(a_log_dup_record())),
    ] {
        let mut cfg = meta_cfg(&REPLICAS, tables(), members, Bugs::none());
        cfg.accept_duplication = accept;
        cfg.dups = dups.into_iter().collect();
        out.push(Sim::start(Node::Meta(cfg), id(0), None).0);
    }
    out
}

/// A duplication of table 1 in LOG that the follower confirmed up to decree 1.
fn a_log_dup_record() -> DupRecord {
    DupRecord {
        status: DupStatus::Log,
        version: 2,
        confirmed: [(0, 1), (1, 1)].into(),
        ..a_dup_record()
    }
}

fn replicas() -> Vec<Sim> {
    let boot = vec![
        pc(1, Some(1), &[2, 3]),
        pcg(
            Gpid {
                table: 1,
                partition: 1,
            },
            1,
            Some(2),
            &[1, 3],
        ),
    ];
    let mut out = Vec::new();
    // (accept duplication, collect the log, a LOG duplication configured at boot)
    for (accept, gc, dup) in [
        (false, false, false),
        (true, false, false),
        (true, true, false),
        (false, true, true),
    ] {
        let mut cfg = replica_cfg(boot.clone(), Bugs::none());
        cfg.accept_duplication = accept;
        cfg.gc = gc;
        if dup {
            cfg.bootstrap_dups = vec![a_log_dup_record()];
        }
        out.push(Sim::start(Node::Replica(cfg.clone()), id(1), None).0); // primary of G
        out.push(Sim::start(Node::Replica(cfg.clone()), id(2), None).0); // secondary of G
        out.push(
            Sim::start(
                Node::Replica(replica_cfg(vec![], Bugs::none())),
                id(4),
                None,
            )
            .0,
        ); // unassigned
           // Recovered with a log: 1..=3, committed 2.
        let (mut sim, _) = Sim::start(Node::Replica(cfg.clone()), id(2), None);
        for d in 1..=3 {
            let entry = Entry {
                ballot: 1,
                mutation: mutation(10, d, d),
            };
            sim.msg(
                id(1),
                Msg::Prepare {
                    config: pc(1, Some(1), &[2, 3]),
                    decree: d,
                    entry,
                    committed: 2,
                    base: 0,
                    retain: 0,
                },
            );
        }
        let st = replica_saves(&sim.msg(
            id(1),
            Msg::Prepare {
                config: pc(1, Some(1), &[2, 3]),
                decree: 4,
                entry: Entry {
                    ballot: 1,
                    mutation: mutation(10, 4, 4),
                },
                committed: 2,
                base: 0,
                retain: 0,
            },
        ))
        .pop()
        .expect("a prepare is saved");
        out.push(Sim::start(Node::Replica(cfg), id(2), Some(NodeStorage::Replica(st))).0);
    }
    out
}

fn clients() -> Vec<Sim> {
    [None, Some(std::time::Duration::from_secs(1))]
        .into_iter()
        .map(|request_timeout| {
            let cfg = petrel_core::client::ClientCfg {
                meta: id(0),
                gpid: G,
                ops: vec![ClientOp::put(K, "1"), ClientOp::get(K), ClientOp::del(K)],
                max_attempts: 2,
                request_timeout,
                first_req: 1,
                route: None,
                bugs: Bugs::none(),
            };
            Sim::start(Node::Client(cfg), id(30), None).0
        })
        .collect()
}

// ---- the checks -------------------------------------------------------------------------

/// The only input that may break a replica: a prepare, from the primary its config names,
/// of a decree the replica has committed and logged, with a different mutation.
fn legit_break(before: &ReplicaState, src: Id, m: &Msg) -> bool {
    let Msg::Prepare {
        config,
        decree,
        entry,
        ..
    } = m
    else {
        return false;
    };
    let Some(p) = before.parts.get(&config.gpid) else {
        return false;
    };
    config.primary == Some(src)
        && *decree <= p.committed
        && p.log
            .get(decree)
            .is_some_and(|e| e.mutation != entry.mutation)
}

fn check_replica_step(
    before: &ReplicaState,
    after: &ReplicaState,
    step: &Step,
    o: &stateright::actor::Out<Node>,
) -> Result<(), TestCaseError> {
    if before.broken.is_some() {
        prop_assert!(o.is_empty(), "a broken replica acted: {:?}", o);
        prop_assert_eq!(after, before);
        return Ok(());
    }
    if after.broken.is_some() {
        let ok = match step {
            Step::Msg(src, m) => legit_break(before, *src, m),
            Step::Timer(_) => false,
        };
        prop_assert!(
            ok,
            "replica broken by input alone: {:?} on {:?}",
            after.broken,
            step
        );
    }
    prop_assert_eq!(after.incarnation, before.incarnation);
    for (g, bp) in &before.parts {
        let ap = after.parts.get(g);
        prop_assert!(ap.is_some(), "partition {:?} vanished", g);
        let ap = ap.unwrap();
        prop_assert!(
            ap.config.ballot >= bp.config.ballot,
            "ballot of {:?} went back: {} -> {}",
            g,
            bp.config.ballot,
            ap.config.ballot
        );
    }
    Ok(())
}

fn run_replicas(steps: &[Step]) -> Result<(), TestCaseError> {
    for mut sim in replicas() {
        for step in steps {
            let before = sim.replica().clone();
            let o = apply(&mut sim, step);
            check_replica_step(&before, sim.replica(), step, &o)?;
        }
    }
    Ok(())
}

fn run_metas(steps: &[Step]) -> Result<(), TestCaseError> {
    for mut sim in metas() {
        for step in steps {
            let before = sim.meta().clone();
            apply(&mut sim, step);
            for (g, c) in &before.configs {
                let now = sim.meta().configs.get(g).map(|c| c.ballot);
                prop_assert!(
                    now.is_some_and(|b| b >= c.ballot),
                    "meta config {:?} went back or vanished: {:?} -> {:?} on {:?}",
                    g,
                    c,
                    sim.meta().configs.get(g),
                    step
                );
            }
        }
    }
    Ok(())
}

fn run_clients(steps: &[Step]) -> Result<(), TestCaseError> {
    for mut sim in clients() {
        let Node::Client(cfg) = sim.node.clone() else {
            unreachable!()
        };
        for step in steps {
            let before = sim.client().clone();
            apply(&mut sim, step);
            let s = sim.client();
            prop_assert!(s.results.len() <= cfg.ops.len());
            prop_assert!(s.attempts <= cfg.max_attempts);
            prop_assert!(s.results.len() >= before.results.len(), "results went back");
            prop_assert!(
                s.results.len() == before.results.len()
                    || s.results[..before.results.len()] == before.results[..]
            );
            if before.done() {
                prop_assert_eq!(s, &before, "a finished client changed");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Every role takes any message and timer, in any order, from anyone, without
    /// panicking; a replica is broken only by a conflicting re-prepare of a committed
    /// decree and then stays silent; replica and meta ballots never go back; a client's
    /// results only grow and a finished client stays finished.
    #[test]
    fn every_role_survives_arbitrary_input(steps in arb_steps()) {
        run_replicas(&steps)?;
        run_metas(&steps)?;
        run_clients(&steps)?;
    }

    /// Arbitrary input never panics any role, in debug builds too (ballot and decree
    /// arithmetic saturates; see `extreme_values_never_panic`).
    #[test]
    fn no_role_panics_on_raw_input(steps in arb_steps()) {
        for mut sim in replicas().into_iter().chain(metas()).chain(clients()) {
            for step in &steps {
                apply(&mut sim, step);
            }
        }
    }
}

proptest! {
    #![proptest_config(pt_config(2048))]

    /// The replica rule alone, with more cases: the inputs that once broke it (a prepare
    /// of decree 0, a `Learn` whose commit point exceeds its log or lies across a hole in
    /// it) have their own tests below.
    #[test]
    fn replica_is_broken_only_by_a_conflicting_committed_reprepare(steps in arb_steps()) {
        run_replicas(&steps)?;
    }

    /// More cases for "meta ballots never go back", whose trigger was a create-follower
    /// request naming a table the cluster already has (see the deterministic test).
    #[test]
    fn meta_ballots_never_go_back_on_raw_input(steps in arb_steps()) {
        run_metas(&steps)?;
    }
}

fn secondary_of_g() -> Sim {
    let mut sim = replicas().swap_remove(1);
    assert_eq!(
        sim.replica().parts[&G].status,
        petrel_core::replica::Status::Secondary
    );
    let entry = Entry {
        ballot: 1,
        mutation: mutation(10, 1, 1),
    };
    sim.msg(
        id(1),
        Msg::Prepare {
            config: pc(1, Some(1), &[2, 3]),
            decree: 1,
            entry,
            committed: 1,
            base: 0,
            retain: 0,
        },
    );
    assert_eq!(sim.replica().parts[&G].committed, 1);
    sim
}

/// Decree 0 is "nothing": no replica can have committed it differently. A prepare of
/// decree 0 is malformed and ignored (it used to be taken as "already committed", find no
/// entry at 0, and assert).
#[test]
fn a_prepare_of_decree_zero_does_not_break_a_replica() {
    let mut sim = secondary_of_g();
    let entry = Entry {
        ballot: 1,
        mutation: mutation(10, 1, 1),
    };
    let o = sim.msg(
        id(1),
        Msg::Prepare {
            config: pc(1, Some(1), &[2, 3]),
            decree: 0,
            entry,
            committed: 1,
            base: 0,
            retain: 0,
        },
    );
    assert_eq!(sim.replica().broken, None, "{o:?}");
    assert!(ok_acks(&o).is_empty(), "ACKed decree 0: {o:?}");
}

/// `Learn` clamps the sender's commit point to the log it carries: otherwise the learner
/// has committed > last (SAFE-5 locally), and the next prepare of one of those
/// "committed" decrees sets `broken`.
#[test]
fn a_learn_never_sets_the_commit_point_beyond_the_log() {
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![], Bugs::none())),
        id(4),
        None,
    );
    let config = pc(2, Some(1), &[2, 3]);
    let log: BTreeMap<Decree, Entry> = [(
        1,
        Entry {
            ballot: 2,
            mutation: mutation(10, 1, 1),
        },
    )]
    .into();
    sim.msg(
        id(1),
        Msg::Learn {
            config: config.clone(),
            snapshot: Snapshot::default(),
            log,
            committed: 3,
            retain: 0,
        },
    );
    let p = &sim.replica().parts[&G];
    assert!(
        p.committed <= p.last_decree(),
        "learner committed {} > last {}",
        p.committed,
        p.last_decree()
    );
    let entry = Entry {
        ballot: 2,
        mutation: mutation(10, 2, 2),
    };
    sim.msg(
        id(1),
        Msg::Prepare {
            config,
            decree: 2,
            entry,
            committed: 1,
            base: 0,
            retain: 0,
        },
    );
    assert_eq!(sim.replica().broken, None);
}

/// The same across a hole: a `Learn` from the configured primary carrying {2} with commit
/// point 1 leaves the learner with committed 1 and no decree 1 (the commit point is
/// clamped to the log's last decree, 2, not to its contiguous prefix, 0); the next
/// prepare of decree 1, with any mutation, finds "committed" decree 1 missing and sets
/// `broken`. A correct primary's log has no hole, so only a malformed `Learn` reaches
/// this; the fix would clamp to the largest k with 1..=k all in the learned log.
#[test]
fn a_learn_across_a_hole_never_breaks_a_replica() {
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![], Bugs::none())),
        id(4),
        None,
    );
    let config = pc(2, Some(1), &[2, 3]);
    let log: BTreeMap<Decree, Entry> = [(
        2,
        Entry {
            ballot: 2,
            mutation: mutation(10, 2, 2),
        },
    )]
    .into();
    sim.msg(
        id(1),
        Msg::Learn {
            config: config.clone(),
            snapshot: Snapshot::default(),
            log,
            committed: 1,
            retain: 0,
        },
    );
    let p = &sim.replica().parts[&G];
    assert!(
        (1..=p.committed).all(|d| p.log.contains_key(&d)),
        "committed {} but the log is {:?}",
        p.committed,
        p.log.keys().collect::<Vec<_>>()
    );
    let entry = Entry {
        ballot: 2,
        mutation: mutation(10, 1, 1),
    };
    sim.msg(
        id(1),
        Msg::Prepare {
            config,
            decree: 1,
            entry,
            committed: 0,
            base: 0,
            retain: 0,
        },
    );
    assert_eq!(sim.replica().broken, None);
}

/// A follower meta asked to create a follower table under the id of a table it already
/// serves refuses it as "exists" and changes nothing (it used to answer Ok and replace
/// that table's partition configurations with blank ballot-0 ones: ballots went back).
#[test]
fn create_follower_for_an_existing_local_table_is_refused() {
    let mut cfg = meta_cfg(&REPLICAS, tables(), 3, Bugs::none());
    cfg.accept_duplication = true;
    let (mut sim, _) = Sim::start(Node::Meta(cfg), id(0), None);
    let before = sim.meta().configs.clone();
    let source = DupIdent {
        source_meta: id(30),
        table: 7,
        dupid: 1,
    };
    let o = sim.msg(
        id(30),
        Msg::CreateFollower {
            source,
            table: 1,
            partitions: 2,
            replica_count: 1,
        },
    );
    assert_eq!(
        sends(&o),
        vec![(
            id(30),
            Msg::CreateFollowerReply {
                source,
                result: Err(CreateError::Exists)
            }
        )]
    );
    assert_eq!(
        sim.meta().configs,
        before,
        "existing partitions overwritten"
    );
    assert!(
        !sim.meta().followers.contains_key(&1),
        "a local table recorded as a follower"
    );
}

/// The configuration at each ballot (one per ballot, as the meta server commits them).
fn config_at(ballot: Ballot) -> PartitionConfig {
    match ballot {
        1 => pc(1, Some(1), &[2, 3]),
        2 => pc(2, Some(2), &[3]),
        3 => pc(3, Some(3), &[1, 4]),
        4 => pc(4, Some(1), &[4]),
        _ => pc(5, Some(4), &[2]),
    }
}

/// Targeted: plausible traffic around partition G (prepares, group checks, learns, config
/// updates, all carrying the one configuration of their ballot and sent by its primary),
/// so the deep paths are reached often.
fn arb_near_steps() -> impl Strategy<Value = Vec<Step>> {
    let cfg = (1u32..6).prop_map(|b| {
        let c = config_at(b);
        (usize::from(c.primary.unwrap()), c)
    });
    // A write of the register, or (value 0) its deletion.
    let entry = (0u32..4, 10usize..12, 0u8..3).prop_map(|(b, c, v)| {
        let op = if v == 0 { Op::Del(k()) } else { put(v) };
        Entry {
            ballot: b,
            mutation: mutation_op(c, ReqId::from(v), op),
        }
    });
    // The primary's retain bound: everything (no duplication) or a small confirmed decree.
    let retain = prop_oneof![2 => Just(Decree::MAX), 1 => 0u32..6];
    let step = prop_oneof![
        5 => (cfg.clone(), 1u32..6, entry.clone(), 0u32..6, 0u32..6, retain.clone())
            .prop_map(|((p, config), decree, entry, committed, base, retain)| {
                Step::Msg(id(p), Msg::Prepare { config, decree, entry, committed, base, retain })
            }),
        2 => (cfg.clone(), 0u32..6, 0u32..6, retain.clone())
            .prop_map(|((p, config), committed, base, retain)| Step::Msg(id(p), Msg::GroupCheck { config, committed, base, retain })),
        // A primary's whole state: a snapshot of a committed prefix, the contiguous log
        // after it, and its commit point.
        1 => (cfg.clone(), prop::collection::vec(entry, 0..5), 0u32..=100, 0u32..=100, retain)
            .prop_map(|((p, config), entries, frac, snap_frac, retain)| {
                let all: BTreeMap<Decree, Entry> = entries.into_iter().enumerate().map(|(i, e)| (i as Decree + 1, e)).collect();
                let committed = all.len() as Decree * frac / 100;
                let collected = committed * snap_frac / 100;
                let mut snapshot = Snapshot::default();
                for (d, e) in all.range(..=collected) {
                    snapshot.fold(*d, e);
                }
                let log = all.into_iter().filter(|(d, _)| *d > collected).collect();
                Step::Msg(id(p), Msg::Learn { config, snapshot, log, committed, retain })
            }),
        1 => (cfg.clone(), 1u32..3).prop_map(|((_, config), incarnation)| Step::Msg(id(0), Msg::ConfigUpdate { config, incarnation })),
        1 => (cfg, 1u32..3, prop::sample::select(vec![2usize, 3, 4]))
            .prop_map(|((_, config), incarnation, node)| Step::Msg(id(0), Msg::AddSecondary { config, node: id(node), incarnation })),
        2 => (prop::sample::select(vec![2usize, 3, 4]), 0u32..6, 1u32..6)
            .prop_map(|(n, ballot, decree)| Step::Msg(id(n), Msg::PrepareAck { gpid: G, ballot, decree, ok: true })),
        1 => (prop::sample::select(vec![2usize, 3, 4]), 0u32..6, 0u32..6)
            .prop_map(|(n, ballot, learned)| Step::Msg(id(n), Msg::LearnDone { gpid: G, ballot, learned })),
        2 => (10usize..12, 1u32..3, prop::option::weighted(0.8, 1u8..3))
            .prop_map(|(c, req, value)| Step::Msg(id(c), Msg::Write { gpid: G, req, key: k(), value: value.map(val) })),
        1 => (1usize..5, 1u32..3).prop_map(|(n, incarnation)| Step::Msg(id(n), Msg::PeerDown { incarnation })),
    ];
    prop::collection::vec(step, 1..50)
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Plausible traffic: besides the rules above, every decree up to the commit point is
    /// logged, and the commit point goes back only when a learner takes its primary's.
    #[test]
    fn plausible_traffic_keeps_replica_invariants(steps in arb_near_steps()) {
        for mut sim in replicas() {
            for step in &steps {
                let before = sim.replica().clone();
                let o = apply(&mut sim, step);
                let after = sim.replica();
                check_replica_step(&before, after, step, &o)?;
                let learn = matches!(step, Step::Msg(_, Msg::Learn { .. }));
                if after.broken.is_none() {
                    for (g, ap) in &after.parts {
                        // Everything committed is collected or logged.
                        prop_assert!(ap.snapshot.decree <= ap.committed, "{:?}: collected {} beyond committed {}", g, ap.snapshot.decree, ap.committed);
                        prop_assert!((ap.snapshot.decree + 1..=ap.committed).all(|d| ap.log.contains_key(&d)), "{:?}: committed {} not all logged: {:?} after snapshot {}", g, ap.committed, ap.log.keys().collect::<Vec<_>>(), ap.snapshot.decree);
                        if let Some(bp) = before.parts.get(g) {
                            prop_assert!(learn || ap.committed >= bp.committed, "{:?}: commit point went back on {:?}", g, step);
                        }
                    }
                }
            }
        }
    }
}

/// Peer-supplied extremes reach the `+ 1`s of ballot and decree arithmetic: a learned log
/// holding decree u32::MAX (`last_decree() + 1` in on_prepare), a learned commit point of
/// u32::MAX (`committed + 1` in adopt), a primary at ballot u32::MAX proposing
/// `ballot + 1` (PartitionConfig::next). The arithmetic saturates: no panic in debug
/// builds, no silent wrap in release builds.
#[test]
fn extreme_values_never_panic() {
    // A learned log holding decree u32::MAX, then a prepare.
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![], Bugs::none())),
        id(4),
        None,
    );
    let config = pc(2, Some(1), &[2, 3]);
    let log: BTreeMap<Decree, Entry> = [(
        u32::MAX,
        Entry {
            ballot: 2,
            mutation: mutation(10, 1, 1),
        },
    )]
    .into();
    sim.msg(
        id(1),
        Msg::Learn {
            config: config.clone(),
            snapshot: Snapshot::default(),
            log,
            committed: 0,
            retain: 0,
        },
    );
    let entry = Entry {
        ballot: 2,
        mutation: mutation(10, 2, 2),
    };
    sim.msg(
        id(1),
        Msg::Prepare {
            config,
            decree: 1,
            entry,
            committed: 0,
            base: 0,
            retain: 0,
        },
    );

    // A learned commit point of u32::MAX, then promotion and a write.
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![], Bugs::none())),
        id(4),
        None,
    );
    sim.msg(
        id(1),
        Msg::Learn {
            config: pc(2, Some(1), &[2, 3]),
            snapshot: Snapshot::default(),
            log: BTreeMap::new(),
            committed: u32::MAX,
            retain: 0,
        },
    );
    assert_eq!(
        sim.replica().parts[&G].committed,
        0,
        "the commit point is clamped to the learned log"
    );
    sim.msg(
        id(0),
        Msg::ConfigUpdate {
            config: pc(3, Some(4), &[]),
            incarnation: 1,
        },
    );
    sim.msg(id(5), write(G, 1, 1));

    // A primary at ballot u32::MAX whose learner catches up.
    let (mut sim, _) = Sim::start(
        Node::Replica(replica_cfg(vec![], Bugs::none())),
        id(1),
        None,
    );
    let c = pc(u32::MAX, Some(1), &[]);
    sim.msg(
        id(0),
        Msg::ConfigUpdate {
            config: c.clone(),
            incarnation: 1,
        },
    );
    sim.msg(
        id(0),
        Msg::AddSecondary {
            config: c,
            node: id(2),
            incarnation: 1,
        },
    );
    let o = sim.msg(
        id(2),
        Msg::LearnDone {
            gpid: G,
            ballot: u32::MAX,
            learned: 0,
        },
    );
    // The proposal's ballot saturates: it never wraps to 0.
    for (_, m) in sends(&o) {
        if let Msg::ProposeConfig { config, .. } = m {
            assert_eq!(config.ballot, u32::MAX);
        }
    }
}
