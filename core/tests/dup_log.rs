//! LOG duplication and log garbage collection: the source primary's shipping (batches,
//! one in flight, committed only, resend from the confirmed decree, PAUSE), the follower
//! primary's in-order apply, collection up to `min(committed, retain)`, snapshots in
//! retries, learns and re-prepares, `DupEntry::merge`, and the meta server's `ModifyDup`
//! and confirmed reports (durable before announced). Every replica step is checked by
//! `DurableReplica`, every meta step by `DurableMetaDups`.
mod common;

use common::*;
use petrel_core::dup::*;
use petrel_core::meta::TableSpec;
use petrel_core::replica::{Part, ReplicaCfg, ReplicaStorage, Status};
use petrel_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stateright::actor::{Command, Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// Cluster A (the source): its meta server, the primary of `G` and a secondary.
const A_META: usize = 0;
const A1: usize = 1;
const A2: usize = 2;
const A3: usize = 3;
/// Cluster B (the follower): its meta server and two replicas of `F`.
const B_META: usize = 7;
const B1: usize = 8;
const B2: usize = 9;
const CLIENT: usize = 10;
const OPERATOR: usize = common::OPERATOR as usize;
/// The follower partition of `G`.
const F: Gpid = Gpid {
    table: 2,
    partition: 0,
};
const DUP: DupId = 1;

const ALL: [DupStatus; 6] = [
    DupStatus::Init,
    DupStatus::Prepare,
    DupStatus::App,
    DupStatus::Log,
    DupStatus::Pause,
    DupStatus::Removed,
];

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

/// The number the source's only client writes to the register (key `K`) as request
/// (= decree) `d`; the value is its text, `val(value_of(d))`.
fn value_of(d: Decree) -> u32 {
    (d % 250) + 1
}

/// The register at the source's decree `d`, as a map.
fn data_of(d: Decree) -> Map<Key, Value> {
    [(k(), val(value_of(d)))].into()
}

/// A mutation the follower holds from the source carries the source's state at its
/// decree: a shipped `Put` of `value_of(req)`, or a checkpoint `Load` of `data_of(req)`.
fn holds_source_value(m: &Mutation) -> bool {
    let mut data = Map::new();
    m.op.apply(&mut data);
    data == data_of(m.req)
}

fn dup_record(status: DupStatus, version: u32, confirmed: Decree) -> DupRecord {
    DupRecord {
        dupid: DUP,
        table: G.table,
        status,
        version,
        remote_meta: id(B_META),
        remote_table: F.table,
        remote_replica_count: 1,
        fail_mode: FailMode::Slow,
        skipped: 0,
        refusing: BTreeMap::new(),
        checkpoints: BTreeMap::new(),
        applied: BTreeSet::new(),
        confirmed: [(G.partition, confirmed)].into(),
        create_attempts: 0,
        stall: None,
    }
}

fn dup_entry(status: DupStatus, version: u32, confirmed: Decree) -> DupEntry {
    dup_record(status, version, confirmed).entry(G.partition)
}

fn ships(o: &Out<Node>) -> Vec<(Id, Vec<(Decree, Op)>)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::Ship {
                gpid,
                origin,
                entries,
            } => {
                assert_eq!(
                    (gpid, origin),
                    (F, id(A_META)),
                    "a ship for the wrong follower partition or origin"
                );
                Some((dst, entries))
            }
            _ => None,
        })
        .collect()
}

/// The batch of consecutive decrees `from..=to` as the source ships it.
fn batch(from: Decree, to: Decree) -> Vec<(Decree, Op)> {
    (from..=to).map(|d| (d, put(value_of(d)))).collect()
}

fn reports(o: &Out<Node>) -> Vec<DupProgress> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::DupReport {
                gpid,
                dupid,
                progress,
            } => {
                assert_eq!((dst, gpid, dupid), (id(A_META), G, DUP));
                Some(progress)
            }
            _ => None,
        })
        .collect()
}

fn queries(o: &Out<Node>) -> Vec<(Id, Gpid)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::QueryConfig { gpid } => Some((dst, gpid)),
            _ => None,
        })
        .collect()
}

fn prepares_retain(o: &Out<Node>) -> Vec<Decree> {
    sends(o)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Msg::Prepare { retain, .. } | Msg::GroupCheck { retain, .. } => Some(retain),
            _ => None,
        })
        .collect()
}

fn apply_replies(o: &Out<Node>) -> Vec<(Id, Decree, Result<(), Option<String>>)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::ApplyReply {
                gpid,
                decree,
                result,
            } => {
                assert_eq!(gpid, F);
                Some((dst, decree, result))
            }
            _ => None,
        })
        .collect()
}

// =======================================================================================
// The source primary
// =======================================================================================

/// The source primary `A1` of `G` (ballot 1, optionally with secondary `A2`), with the
/// duplication configured at boot, driven step by step under `DurableReplica`, checking
/// the duplicator's invariants after every step.
struct Source {
    sim: Sim,
    durable: DurableReplica,
    next_req: ReqId,
}

impl Source {
    fn start(secondary: bool, gc: bool, bugs: Bugs) -> Source {
        let secs: &[usize] = if secondary { &[A2] } else { &[] };
        let mut cfg = replica_cfg(vec![pc(1, Some(A1), secs)], bugs);
        cfg.gc = gc;
        cfg.bootstrap_dups = vec![dup_record(DupStatus::Log, 2, 0)];
        let (sim, o) = Sim::start(Node::Replica(cfg), id(A1), None);
        let mut durable = DurableReplica::default();
        durable.check(&o).unwrap();
        let s = Source {
            sim,
            durable,
            next_req: 1,
        };
        assert_eq!(s.part().status, Status::Primary);
        assert_eq!(
            s.part().retain,
            0,
            "a duplication configured at boot retains the log from the first decree"
        );
        s
    }

    fn try_step(&mut self, src: usize, m: Msg) -> Result<Out<Node>, String> {
        let o = self.sim.msg(id(src), m);
        self.durable.check(&o)?;
        let p = self.part();
        if let Some(b) = &self.sim.replica().broken {
            return Err(format!("source broken: {b}"));
        }
        if p.snapshot.decree > p.committed {
            return Err(format!(
                "collected {} beyond committed {}",
                p.snapshot.decree, p.committed
            ));
        }
        for d in p.dups.values() {
            if d.entry.status == DupStatus::Log
                && !(d.confirmed <= d.shipped && d.shipped <= p.committed)
            {
                return Err(format!(
                    "confirmed {} <= shipped {} <= committed {} broken",
                    d.confirmed, d.shipped, p.committed
                ));
            }
        }
        Ok(o)
    }

    fn step(&mut self, src: usize, m: Msg) -> Out<Node> {
        self.try_step(src, m).unwrap()
    }

    fn part(&self) -> &Part {
        &self.sim.replica().parts[&G]
    }

    fn dup(&self) -> &Duplicator {
        &self.part().dups[&DUP]
    }

    /// The client's next write (request n, value `value_of(n)`: the n-th write is decree n).
    fn write(&mut self) -> Out<Node> {
        let req = self.next_req;
        self.next_req += 1;
        self.step(CLIENT, write(G, req, value_of(req)))
    }

    fn ack(&mut self, decree: Decree) -> Out<Node> {
        let ballot = self.part().config.ballot;
        self.step(
            A2,
            Msg::PrepareAck {
                gpid: G,
                ballot,
                decree,
                ok: true,
            },
        )
    }

    /// Meta-A's announcement of the duplication.
    fn announce(&mut self, e: DupEntry) -> Out<Node> {
        let incarnation = self.sim.replica().incarnation;
        self.step(
            A_META,
            Msg::DupUpdate {
                gpid: G,
                dups: [(DUP, e)].into(),
                incarnation,
            },
        )
    }

    /// Meta-B's answer: the follower partition's primary.
    fn follower_is(&mut self, primary: Option<usize>) -> Out<Node> {
        let config = PartitionConfig {
            gpid: F,
            ballot: 1,
            primary: primary.map(id),
            secondaries: vec![],
            max_replica_count: 1,
            source: Some(id(A_META)),
        };
        self.step(
            B_META,
            Msg::QueryConfigReply {
                gpid: F,
                config: Some(config),
                incarnation: Some(1),
            },
        )
    }

    fn applied(&mut self, from: usize, decree: Decree) -> Out<Node> {
        self.step(
            from,
            Msg::ApplyReply {
                gpid: F,
                decree,
                result: Ok(()),
            },
        )
    }

    /// Start the duplicator in LOG (confirmed `confirmed`) and connect it to `B1`.
    fn connect(&mut self, confirmed: Decree) -> Out<Node> {
        let o = self.announce(dup_entry(DupStatus::Log, 2, confirmed));
        assert_eq!(
            queries(&o),
            vec![(id(B_META), F)],
            "a LOG duplicator asks meta-B for the follower primary"
        );
        assert!(
            ships(&o).is_empty(),
            "shipped before the follower primary is known: {o:?}"
        );
        assert!(self.dup().asking && self.dup().target.is_none());
        let o = self.follower_is(Some(B1));
        assert_eq!(self.dup().target, Some(id(B1)));
        assert!(!self.dup().asking);
        o
    }
}

/// Everything committed before the duplicator starts ships in order, `SHIP_BATCH` decrees
/// per batch, the next batch only once the follower confirmed the whole previous one; one
/// `Confirmed` report per batch.
#[test]
fn committed_mutations_ship_in_order_in_batches_one_in_flight() {
    const N: Decree = 7;
    let mut a = Source::start(false, false, Bugs::none());
    for _ in 0..N {
        a.write();
    }
    assert_eq!(
        a.part().committed,
        N,
        "a primary without secondaries commits at once"
    );
    let mut o = a.connect(0);
    let mut from = 1;
    loop {
        let to = N.min(from + SHIP_BATCH - 1);
        assert_eq!(ships(&o), vec![(id(B1), batch(from, to))]);
        assert_eq!((a.dup().confirmed, a.dup().shipped), (from - 1, to));
        // The follower answers each decree; only the batch's last one moves on.
        for d in from..to {
            let o = a.applied(B1, d);
            assert!(
                ships(&o).is_empty() && reports(&o).is_empty(),
                "batch not complete at {d}: {o:?}"
            );
            assert_eq!(a.dup().confirmed, d);
        }
        o = a.applied(B1, to);
        assert_eq!(reports(&o), vec![DupProgress::Confirmed(to)]);
        assert_eq!(a.dup().confirmed, to);
        if to == N {
            assert!(ships(&o).is_empty());
            break;
        }
        from = to + 1;
    }
    // Repeats, answers beyond what was shipped and answers from anyone else change nothing.
    let before = a.sim.replica().clone();
    for (from, d) in [(B1, N), (B1, 3), (B1, N + 1), (B2, N + 1), (A2, N + 1)] {
        let o = a.applied(from, d);
        assert!(sends(&o).is_empty(), "{o:?}");
    }
    assert_eq!(a.sim.replica(), &before);
}

/// Prepared but uncommitted decrees never ship; they ship once committed, still one batch
/// in flight and in order.
#[test]
fn uncommitted_decrees_never_ship() {
    let mut a = Source::start(true, false, Bugs::none());
    a.write();
    a.ack(1);
    let o = a.connect(0);
    assert_eq!(ships(&o), vec![(id(B1), batch(1, 1))]);
    for _ in 0..2 {
        let o = a.write(); // decrees 2, 3: prepared, not committed
        assert!(ships(&o).is_empty(), "an uncommitted decree shipped: {o:?}");
    }
    let o = a.applied(B1, 1);
    assert_eq!(reports(&o), vec![DupProgress::Confirmed(1)]);
    assert!(
        ships(&o).is_empty(),
        "nothing committed is left to ship: {o:?}"
    );
    let o = a.ack(2);
    assert_eq!(ships(&o), vec![(id(B1), batch(2, 2))]);
    let o = a.ack(3);
    assert!(
        ships(&o).is_empty(),
        "a second batch while one is in flight: {o:?}"
    );
    let o = a.applied(B1, 2);
    assert_eq!(ships(&o), vec![(id(B1), batch(3, 3))]);
    a.write();
    a.write(); // 4 and 5
    let o = a.ack(5);
    assert!(
        ships(&o).is_empty(),
        "5 is ACKed but 4 is not: nothing committed beyond 3"
    );
    let o = a.applied(B1, 3);
    assert!(ships(&o).is_empty());
    assert_eq!(reports(&o), vec![DupProgress::Confirmed(3)]);
    let o = a.ack(4);
    assert_eq!(a.part().committed, 5);
    assert_eq!(ships(&o), vec![(id(B1), batch(4, 5))]);
}

/// With `Bug::DupShipUncommitted` the durable checker sees a ship of an uncommitted decree.
#[test]
fn shipping_catches_dup_ship_uncommitted() {
    for bugs in [Bugs::none(), Bugs::none().with(Bug::DupShipUncommitted)] {
        let mut a = Source::start(true, false, bugs);
        a.write(); // prepared, not committed
        let o = a.announce(dup_entry(DupStatus::Log, 2, 0));
        assert_eq!(queries(&o), vec![(id(B_META), F)]);
        let config = PartitionConfig {
            gpid: F,
            ballot: 1,
            primary: Some(id(B1)),
            secondaries: vec![],
            max_replica_count: 1,
            source: Some(id(A_META)),
        };
        let o = a.sim.msg(
            id(B_META),
            Msg::QueryConfigReply {
                gpid: F,
                config: Some(config),
                incarnation: Some(1),
            },
        );
        let checked = a.durable.check(&o);
        if bugs == Bugs::none() {
            checked.unwrap();
            assert!(ships(&o).is_empty());
        } else {
            let err = checked.expect_err("the mutant DupShipUncommitted went unnoticed");
            assert!(err.contains("ship of"), "{err}");
        }
    }
}

/// `ApplyReply Err(None)` (not the primary) or a broken connection to the follower primary:
/// the duplicator asks meta-B again and resends from its confirmed decree to whichever
/// primary it names. A refusal is reported to meta-A.
#[test]
fn a_lost_follower_primary_is_looked_up_again_and_the_batch_resent_from_confirmed() {
    let mut a = Source::start(false, false, Bugs::none());
    for _ in 0..5 {
        a.write();
    }
    let o = a.connect(0);
    assert_eq!(ships(&o), vec![(id(B1), batch(1, 2))]);
    a.applied(B1, 1);

    // B1 is no longer primary.
    let o = a.step(
        B1,
        Msg::ApplyReply {
            gpid: F,
            decree: 2,
            result: Err(None),
        },
    );
    assert_eq!(queries(&o), vec![(id(B_META), F)]);
    assert!(ships(&o).is_empty() && reports(&o).is_empty());
    assert_eq!(
        (
            a.dup().target,
            a.dup().asking,
            a.dup().confirmed,
            a.dup().shipped
        ),
        (None, true, 1, 1)
    );
    // A second notice for the same link asks nothing more.
    let o = a.step(
        B1,
        Msg::ApplyReply {
            gpid: F,
            decree: 2,
            result: Err(None),
        },
    );
    assert!(sends(&o).is_empty(), "{o:?}");
    // Meta-B has no primary yet: ask again after a pause.
    let o = a.follower_is(None);
    assert!(sends(&o).is_empty(), "{o:?}");
    assert!(
        o.iter()
            .any(|c| matches!(c, Command::SetTimer(Timer::DupQuery, _))),
        "{o:?}"
    );
    let o = a.sim.timeout(Timer::DupQuery);
    assert_eq!(sends(&o), vec![(id(B_META), Msg::QueryConfig { gpid: F })]);
    // B2 is the primary now: the batch is resent from the confirmed decree.
    let o = a.follower_is(Some(B2));
    assert_eq!(ships(&o), vec![(id(B2), batch(2, 3))]);
    // An answer from the old primary is ignored.
    let o = a.applied(B1, 2);
    assert!(sends(&o).is_empty(), "{o:?}");
    assert_eq!(a.dup().confirmed, 1);
    // An unsolicited answer from meta-B does not move the link.
    let o = a.follower_is(Some(B1));
    assert!(sends(&o).is_empty(), "{o:?}");
    assert_eq!(a.dup().target, Some(id(B2)));

    // The connection to B2 breaks.
    let o = a.step(B2, Msg::PeerDown { incarnation: 1 });
    assert_eq!(queries(&o), vec![(id(B_META), F)]);
    assert_eq!((a.dup().target, a.dup().shipped), (None, 1));
    let o = a.follower_is(Some(B1));
    assert_eq!(ships(&o), vec![(id(B1), batch(2, 3))]);
    // Somebody else's failure changes nothing.
    let o = a.step(B2, Msg::PeerDown { incarnation: 1 });
    assert!(sends(&o).is_empty(), "{o:?}");
    let o = a.applied(B1, 3);
    assert_eq!(reports(&o), vec![DupProgress::Confirmed(3)]);
    assert_eq!(ships(&o), vec![(id(B1), batch(4, 5))]);

    // A refusal (fail mode slow, the default) is the operator's business: reported to
    // meta-A (its stall reason), nothing resent at once; the batch is sent again from the
    // confirmed decree after a pause and a fresh lookup, and a refusal of the retry is not
    // reported again. An accepted retry is confirmed as usual.
    let refuse = || Msg::ApplyReply {
        gpid: F,
        decree: 4,
        result: Err(Some("no".into())),
    };
    let o = a.step(B1, refuse());
    assert_eq!(
        reports(&o),
        vec![DupProgress::Rejected {
            from: 4,
            reason: "no".into()
        }]
    );
    assert!(ships(&o).is_empty());
    assert!(
        o.iter()
            .any(|c| matches!(c, Command::SetTimer(Timer::DupQuery, _))),
        "{o:?}"
    );
    assert_eq!(
        (a.dup().target, a.dup().confirmed, a.dup().shipped),
        (None, 3, 3)
    );
    for _ in 0..2 {
        let o = a.sim.timeout(Timer::DupQuery);
        assert_eq!(sends(&o), vec![(id(B_META), Msg::QueryConfig { gpid: F })]);
        let o = a.follower_is(Some(B1));
        assert_eq!(ships(&o), vec![(id(B1), batch(4, 5))]);
        let o = a.step(B1, refuse());
        assert!(
            reports(&o).is_empty() && ships(&o).is_empty(),
            "a refused retry reported again: {o:?}"
        );
        assert_eq!(
            a.dup().confirmed,
            3,
            "a refused batch counts as confirmed in fail mode slow"
        );
    }
    a.sim.timeout(Timer::DupQuery);
    a.follower_is(Some(B1));
    let o = a.applied(B1, 5);
    assert_eq!(reports(&o), vec![DupProgress::Confirmed(5)]);
    assert_eq!(a.dup().confirmed, 5);
}

/// Fail mode skip: a refused batch is given up: it counts as confirmed, is reported as
/// `Skipped` with its size (with `Bug::DupSkipUncounted`, as a plain `Confirmed`), and
/// the next batch ships at once. A refusal that is not of the batch in flight changes
/// nothing.
#[test]
fn a_refused_batch_is_skipped_in_fail_mode_skip() {
    for (bugs, counted) in [
        (Bugs::none(), true),
        (Bugs::none().with(Bug::DupSkipUncounted), false),
    ] {
        let mut a = Source::start(false, false, bugs);
        for _ in 0..5 {
            a.write();
        }
        let skip = DupEntry {
            fail_mode: FailMode::Skip,
            ..dup_entry(DupStatus::Log, 3, 0)
        };
        let o = a.announce(skip);
        assert_eq!(queries(&o), vec![(id(B_META), F)]);
        assert_eq!(a.dup().entry.fail_mode, FailMode::Skip);
        let o = a.follower_is(Some(B1));
        assert_eq!(ships(&o), vec![(id(B1), batch(1, 2))]);
        let o = a.step(
            B1,
            Msg::ApplyReply {
                gpid: F,
                decree: 1,
                result: Err(Some("no".into())),
            },
        );
        let expected = if counted {
            DupProgress::Skipped { upto: 2, count: 2 }
        } else {
            DupProgress::Confirmed(2)
        };
        assert_eq!(reports(&o), vec![expected], "{bugs:?}");
        assert_eq!(
            ships(&o),
            vec![(id(B1), batch(3, 4))],
            "the next batch does not follow a skipped one"
        );
        assert_eq!((a.dup().confirmed, a.dup().shipped), (2, 4));
        // A late refusal of the skipped batch, and one of a decree inside the batch in
        // flight, are not the batch in flight's: nothing moves.
        for decree in [1, 4] {
            let o = a.step(
                B1,
                Msg::ApplyReply {
                    gpid: F,
                    decree,
                    result: Err(Some("no".into())),
                },
            );
            assert!(sends(&o).is_empty(), "{o:?}");
        }
        let o = a.applied(B1, 4);
        assert_eq!(reports(&o), vec![DupProgress::Confirmed(4)]);
        assert_eq!(ships(&o), vec![(id(B1), batch(5, 5))]);
    }
}

/// PAUSE: shipping stops (answers to the batch in flight are ignored), the log is kept
/// above the announced confirmed decree; a late announcement of an older version does not
/// undo the pause; LOG again resumes from the confirmed decree after a fresh lookup.
#[test]
fn pause_stops_shipping_and_keeps_the_log() {
    let mut a = Source::start(false, true, Bugs::none());
    a.connect(0);
    let o = a.write();
    assert_eq!(ships(&o), vec![(id(B1), batch(1, 1))]);
    for _ in 0..3 {
        a.write();
    }
    let o = a.announce(dup_entry(DupStatus::Pause, 3, 0));
    assert!(
        sends(&o).is_empty(),
        "a paused duplicator ships or asks: {o:?}"
    );
    assert_eq!(a.dup().target, None);
    let o = a.applied(B1, 1);
    assert!(
        sends(&o).is_empty(),
        "an answer to the batch in flight moved a paused duplicator: {o:?}"
    );
    let o = a.write();
    assert!(ships(&o).is_empty());
    assert_eq!(
        a.part().snapshot.decree,
        0,
        "the log was collected while paused"
    );
    assert_eq!(
        a.part().log.keys().copied().collect::<Vec<_>>(),
        (1..=5).collect::<Vec<_>>()
    );
    // Meta-A had persisted confirmed 1 before the pause: collected up to there only.
    let o = a.announce(dup_entry(DupStatus::Pause, 3, 1));
    assert!(ships(&o).is_empty() && queries(&o).is_empty());
    assert_eq!(a.part().snapshot.decree, 1);
    assert_eq!(
        a.part().log.keys().copied().collect::<Vec<_>>(),
        (2..=5).collect::<Vec<_>>()
    );
    // The LOG announcement of version 2 arrives late: still paused.
    let o = a.announce(dup_entry(DupStatus::Log, 2, 1));
    assert!(sends(&o).is_empty(), "{o:?}");
    assert_eq!(a.part().dup_entries[&DUP].status, DupStatus::Pause);
    // Resumed: look the follower primary up again, ship from the confirmed decree.
    let o = a.announce(dup_entry(DupStatus::Log, 4, 1));
    assert_eq!(queries(&o), vec![(id(B_META), F)]);
    let o = a.follower_is(Some(B1));
    assert_eq!(ships(&o), vec![(id(B1), batch(2, 3))]);
}

/// REMOVED: the duplicator is dropped, with its retain bound; a collecting primary then
/// collects everything committed, and nothing ships any more.
#[test]
fn removed_drops_the_duplicator_and_its_retain_bound() {
    let mut a = Source::start(false, true, Bugs::none());
    a.connect(0);
    for _ in 0..3 {
        a.write();
    }
    assert_eq!(a.part().snapshot.decree, 0);
    let o = a.announce(dup_entry(DupStatus::Removed, 3, 0));
    assert!(sends(&o).is_empty(), "{o:?}");
    assert!(a.part().dups.is_empty());
    assert_eq!(a.part().retain, Decree::MAX);
    assert_eq!(a.part().snapshot.decree, 3);
    assert!(a.part().log.is_empty());
    let o = a.write();
    assert!(ships(&o).is_empty());
    let o = a.applied(B1, 1);
    assert!(sends(&o).is_empty());
}

/// A primary restored by a switch or restart looks the follower primary up again (with
/// `Bug::DupSwitchForgetsFollower` it does not, and LOG never resumes).
#[test]
fn a_restored_primary_looks_the_follower_up_again() {
    for (bugs, asks) in [
        (Bugs::none(), true),
        (Bugs::none().with(Bug::DupSwitchForgetsFollower), false),
    ] {
        let mut a = Source::start(false, false, bugs);
        a.connect(0);
        a.write();
        let storage: ReplicaStorage = a.durable.saved.clone().unwrap();
        let Node::Replica(cfg) = a.sim.node.clone() else {
            unreachable!()
        };
        let (mut sim, o) = Sim::start(
            Node::Replica(cfg),
            id(A1),
            Some(NodeStorage::Replica(storage)),
        );
        let mut durable = a.durable.clone();
        durable.check(&o).unwrap();
        assert_eq!(
            sim.replica().parts[&G].dup_entries[&DUP].status,
            DupStatus::Log,
            "the duplication is durable"
        );
        let o = sim.msg(
            id(A_META),
            Msg::ConfigUpdate {
                config: pc(2, Some(A1), &[]),
                incarnation: 2,
            },
        );
        durable.check(&o).unwrap();
        assert_eq!(
            queries(&o) == vec![(id(B_META), F)],
            asks,
            "{bugs:?}: {o:?}"
        );
        if asks {
            let config = PartitionConfig {
                gpid: F,
                ballot: 1,
                primary: Some(id(B1)),
                secondaries: vec![],
                max_replica_count: 1,
                source: Some(id(A_META)),
            };
            let o = sim.msg(
                id(B_META),
                Msg::QueryConfigReply {
                    gpid: F,
                    config: Some(config),
                    incarnation: Some(1),
                },
            );
            durable.check(&o).unwrap();
            assert_eq!(
                ships(&o),
                vec![(id(B1), batch(1, 1))],
                "resumes from the persisted confirmed decree"
            );
        }
    }
}

// =======================================================================================
// Garbage collection
// =======================================================================================

/// A primary collects up to the confirmed decree meta-A announced (what it persisted),
/// not up to what the follower answered it: `retain` follows the announcement, and the
/// members hear it on the next prepare.
fn gc_follows_the_announced_confirmed(bugs: Bugs) -> Result<(), String> {
    let mut a = Source::start(true, true, bugs);
    a.connect(0);
    let check = |cond: bool, what: &str, a: &Source| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {:?}", a.part()))
        }
    };
    for d in 1..=3 {
        a.write();
        a.try_step(
            A2,
            Msg::PrepareAck {
                gpid: G,
                ballot: 1,
                decree: d,
                ok: true,
            },
        )?;
    }
    check(a.part().committed == 3, "not committed", &a)?;
    check(
        a.part().snapshot.decree == 0,
        "collected beyond the announced confirmed decree 0",
        &a,
    )?;
    let o = a.try_step(
        B1,
        Msg::ApplyReply {
            gpid: F,
            decree: 1,
            result: Ok(()),
        },
    )?;
    check(
        reports(&o) == vec![DupProgress::Confirmed(1)],
        "no report",
        &a,
    )?;
    check(
        a.part().snapshot.decree == 0,
        "collected what the follower confirmed before meta-A persisted it",
        &a,
    )?;
    a.try_step(
        A_META,
        Msg::DupUpdate {
            gpid: G,
            dups: [(DUP, dup_entry(DupStatus::Log, 2, 1))].into(),
            incarnation: 1,
        },
    )?;
    check(
        a.part().snapshot.decree == 1 && a.part().retain == 1,
        "not collected up to the announced 1",
        &a,
    )?;
    let o = a.write();
    check(
        prepares_retain(&o) == vec![1],
        "the members are not told retain 1",
        &a,
    )?;
    Ok(())
}

#[test]
fn a_primary_collects_only_up_to_the_announced_confirmed_decree() {
    gc_follows_the_announced_confirmed(Bugs::none()).unwrap();
    let err = gc_follows_the_announced_confirmed(Bugs::none().with(Bug::DupGcBeforeConfirm))
        .expect_err("the mutant DupGcBeforeConfirm went unnoticed");
    // Collected beyond the bound, or (the same step) the duplicator found the log it
    // still had to ship collected.
    assert!(err.contains("collected"), "{err}");
}

fn plain_primary(gc: bool, secs: &[usize]) -> (Sim, DurableReplica) {
    let mut cfg = replica_cfg(vec![pc(1, Some(A1), secs)], Bugs::none());
    cfg.gc = gc;
    let (sim, o) = Sim::start(Node::Replica(cfg), id(A1), None);
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    (sim, durable)
}

/// Without duplications a collecting primary collects up to its commit point (and tells
/// its members `Decree::MAX`); without `gc` nothing is ever collected.
#[test]
fn without_duplications_a_primary_collects_up_to_committed() {
    for gc in [true, false] {
        let (mut sim, mut durable) = plain_primary(gc, &[A2]);
        assert_eq!(sim.replica().parts[&G].retain, Decree::MAX);
        for d in 1..=4 {
            let o = sim.msg(id(CLIENT), write(G, d, value_of(d)));
            durable.check(&o).unwrap();
            assert_eq!(prepares_retain(&o), vec![Decree::MAX]);
            if d % 2 == 0 {
                for k in d - 1..=d {
                    let o = sim.msg(
                        id(A2),
                        Msg::PrepareAck {
                            gpid: G,
                            ballot: 1,
                            decree: k,
                            ok: true,
                        },
                    );
                    durable.check(&o).unwrap();
                }
            }
            let p = &sim.replica().parts[&G];
            assert_eq!(
                p.snapshot.decree,
                if gc { p.committed } else { 0 },
                "gc {gc}: {p:?}"
            );
            assert_eq!(p.last_decree(), d);
            assert_eq!(
                reg(p, p.committed),
                (p.committed > 0).then(|| val(value_of(p.committed)))
            );
        }
        let p = &sim.replica().parts[&G];
        assert_eq!(p.committed, 4);
        if gc {
            assert!(p.log.is_empty());
            assert_eq!(
                p.snapshot,
                Snapshot {
                    decree: 4,
                    data: data_of(4),
                    last_req: [(id(CLIENT), 4)].into()
                }
            );
        } else {
            assert_eq!(p.log.len(), 4);
        }
    }
}

/// A retried client write whose entry was collected is answered `Ok` from the snapshot's
/// `last_req`, without a second decree (and without rolling the register back).
#[test]
fn a_retry_of_a_collected_write_is_answered_without_reapplying() {
    let (mut sim, mut durable) = plain_primary(true, &[]);
    let o = sim.msg(id(CLIENT), write(G, 1, 5));
    durable.check(&o).unwrap();
    let o = sim.msg(id(CLIENT + 1), write(G, 1, 6));
    durable.check(&o).unwrap();
    let p = &sim.replica().parts[&G];
    assert!(p.log.is_empty(), "both writes are committed and collected");
    assert_eq!(p.snapshot.last_req.get(&id(CLIENT)), Some(&1));
    let before = sim.replica().clone();
    for req in [1, 0] {
        let o = sim.msg(id(CLIENT), write(G, req, 5));
        durable.check(&o).unwrap();
        assert_eq!(
            sends(&o),
            vec![(
                id(CLIENT),
                Msg::WriteReply {
                    gpid: G,
                    req,
                    result: Ok(())
                }
            )]
        );
        assert_eq!(
            sim.replica(),
            &before,
            "a retry of a collected write was applied again"
        );
    }
    let o = sim.msg(id(CLIENT), read(G, 2));
    assert_eq!(
        sends(&o),
        vec![(
            id(CLIENT),
            Msg::ReadReply {
                gpid: G,
                req: 2,
                result: Ok(Some(val(6)))
            }
        )]
    );
    // The next request of that client is a new write.
    let o = sim.msg(id(CLIENT), write(G, 2, 7));
    durable.check(&o).unwrap();
    assert_eq!(sim.replica().parts[&G].snapshot.decree, 3);
}

/// The secondary `A2` of `G` (primary `A1`), collecting.
fn collecting_secondary() -> (Sim, DurableReplica) {
    let mut cfg = replica_cfg(vec![pc(1, Some(A1), &[A2])], Bugs::none());
    cfg.gc = true;
    let (sim, o) = Sim::start(Node::Replica(cfg), id(A2), None);
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    (sim, durable)
}

fn prepare(ballot: Ballot, decree: Decree, committed: Decree, retain: Decree) -> Msg {
    let config = if ballot == 1 {
        pc(1, Some(A1), &[A2])
    } else {
        pc(ballot, Some(A1), &[A2, A3])
    };
    let entry = Entry {
        ballot,
        mutation: mutation(CLIENT, decree, value_of(decree)),
    };
    Msg::Prepare {
        config,
        decree,
        entry,
        committed,
        base: 0,
        retain,
    }
}

/// A member collects its committed log up to the primary's `retain`, as the prepares and
/// group checks carry it.
#[test]
fn a_member_collects_up_to_min_committed_retain() {
    for retain in [0, 1, 2, 4, Decree::MAX] {
        let (mut sim, mut durable) = collecting_secondary();
        for d in 1..=5 {
            let o = sim.msg(id(A1), prepare(1, d, d - 1, retain));
            durable.check(&o).unwrap();
            assert_eq!(ok_acks(&o), vec![(id(A1), 1, d)]);
            let p = &sim.replica().parts[&G];
            assert_eq!(p.committed, d - 1);
            assert_eq!(
                p.snapshot.decree,
                (d - 1).min(retain),
                "retain {retain}: {p:?}"
            );
            assert_eq!(
                p.log.keys().copied().collect::<Vec<_>>(),
                (p.snapshot.decree + 1..=d).collect::<Vec<_>>()
            );
        }
        let o = sim.msg(
            id(A1),
            Msg::GroupCheck {
                config: pc(1, Some(A1), &[A2]),
                committed: 5,
                base: 0,
                retain,
            },
        );
        durable.check(&o).unwrap();
        let p = &sim.replica().parts[&G];
        assert_eq!(
            (p.committed, p.snapshot.decree, p.retain),
            (5, 5.min(retain), retain)
        );
        assert_eq!(reg(p, 5), Some(val(value_of(5))));
        // The primary raises its bound (the follower confirmed more): collected further.
        let o = sim.msg(
            id(A1),
            Msg::GroupCheck {
                config: pc(1, Some(A1), &[A2]),
                committed: 5,
                base: 0,
                retain: Decree::MAX,
            },
        );
        durable.check(&o).unwrap();
        assert_eq!(sim.replica().parts[&G].snapshot.decree, 5);
        assert_eq!(
            durable.saved.as_ref().unwrap().parts[&G].snapshot.decree,
            5,
            "the collection is not durable"
        );
    }
}

/// A re-prepare (a new primary's) of a decree this member committed and collected is ACKed.
#[test]
fn a_prepare_for_a_collected_decree_is_acked() {
    let (mut sim, mut durable) = collecting_secondary();
    for d in 1..=3 {
        let o = sim.msg(id(A1), prepare(1, d, d - 1, Decree::MAX));
        durable.check(&o).unwrap();
    }
    assert_eq!(sim.replica().parts[&G].snapshot.decree, 2);
    for d in 1..=2 {
        let o = sim.msg(id(A1), prepare(2, d, 0, Decree::MAX));
        durable.check(&o).unwrap();
        assert_eq!(
            ok_acks(&o),
            vec![(id(A1), 2, d)],
            "collected decree {d} not ACKed: {o:?}"
        );
        assert_eq!(sim.replica().broken, None);
    }
}

/// A learner receives the primary's snapshot with the log after it, and ends with the
/// primary's committed state; the primary takes its `LearnDone` as caught up.
#[test]
fn a_learner_receives_the_snapshot() {
    let (mut sim, mut durable) = plain_primary(true, &[A2]);
    for d in 1..=3 {
        let o = sim.msg(id(CLIENT), write(G, d, value_of(d)));
        durable.check(&o).unwrap();
        if d < 3 {
            let o = sim.msg(
                id(A2),
                Msg::PrepareAck {
                    gpid: G,
                    ballot: 1,
                    decree: d,
                    ok: true,
                },
            );
            durable.check(&o).unwrap();
        }
    }
    let p = sim.replica().parts[&G].clone();
    assert_eq!((p.snapshot.decree, p.committed, p.last_decree()), (2, 2, 3));
    let o = sim.msg(
        id(A_META),
        Msg::AddSecondary {
            config: pc(1, Some(A1), &[A2]),
            node: id(A3),
            incarnation: 1,
        },
    );
    durable.check(&o).unwrap();
    let learn = sends_to(&o, id(A3));
    let expected = Msg::Learn {
        config: p.config.clone(),
        snapshot: p.snapshot.clone(),
        log: p.log.clone(),
        committed: 2,
        retain: Decree::MAX,
    };
    assert_eq!(learn, vec![expected.clone()]);

    let mut cfg = replica_cfg(vec![], Bugs::none());
    cfg.gc = true;
    let (mut learner, o) = Sim::start(Node::Replica(cfg), id(A3), None);
    let mut ldurable = DurableReplica::default();
    ldurable.check(&o).unwrap();
    let o = learner.msg(id(A1), expected);
    ldurable.check(&o).unwrap();
    let l = &learner.replica().parts[&G];
    assert_eq!(
        (l.status, l.snapshot.clone(), l.log.clone(), l.committed),
        (
            Status::PotentialSecondary,
            p.snapshot.clone(),
            p.log.clone(),
            2
        )
    );
    assert_eq!(reg(l, l.committed), Some(val(value_of(2))));
    assert_eq!(
        sends(&o),
        vec![(
            id(A1),
            Msg::LearnDone {
                gpid: G,
                ballot: 1,
                learned: 3
            }
        )]
    );
    // The learner knows the retry of a collected write too.
    assert_eq!(l.last_req(id(CLIENT)), Some(3));
    let o = sim.msg(
        id(A3),
        Msg::LearnDone {
            gpid: G,
            ballot: 1,
            learned: 3,
        },
    );
    assert!(
        sends(&o)
            .iter()
            .any(|(dst, m)| *dst == id(A_META) && matches!(m, Msg::ProposeConfig { .. })),
        "{o:?}"
    );
}

proptest! {
    #![proptest_config(pt_config(CASES / 2))]

    /// A member under prepares and group checks carrying arbitrary `retain` bounds: the
    /// snapshot never passes the commit point nor the bound in force when it grew, it
    /// grows as far as that bound allows whenever the member collects, and snapshot + log
    /// always hold the committed history (the register's value at the commit point).
    #[test]
    fn a_member_never_collects_beyond_min_committed_retain(
        ops in prop::collection::vec((any::<bool>(), 1u32..8, 0u32..8, prop_oneof![Just(Decree::MAX), 0u32..8]), 1..30),
    ) {
        let (mut sim, mut durable) = collecting_secondary();
        let mut prepared: Decree = 0;
        for (group_check, n, committed, retain) in ops {
            let before = sim.replica().parts[&G].clone();
            let msg = if group_check {
                Msg::GroupCheck { config: pc(1, Some(A1), &[A2]), committed: committed.min(prepared), base: 0, retain }
            } else {
                // The next decree (a consistent primary), or a repeat of one.
                let d = if n % 3 == 0 && prepared > 0 { n.min(prepared) } else { prepared + 1 };
                prepared = prepared.max(d);
                prepare(1, d, committed.min(d - 1), retain)
            };
            let o = sim.msg(id(A1), msg);
            durable.check(&o).map_err(fail)?;
            let p = &sim.replica().parts[&G];
            prop_assert_eq!(&sim.replica().broken, &None);
            prop_assert!(p.snapshot.decree <= p.committed);
            if p.snapshot.decree > before.snapshot.decree {
                prop_assert!(p.snapshot.decree <= retain, "collected to {} beyond retain {}", p.snapshot.decree, retain);
                prop_assert_eq!(p.snapshot.decree, p.committed.min(retain), "collected only part of what it may");
            }
            prop_assert!((p.snapshot.decree + 1..=p.last_decree()).all(|d| p.log.contains_key(&d)));
            let expected = (p.committed > 0).then(|| val(value_of(p.committed)));
            prop_assert_eq!(reg(p, p.committed), expected);
            prop_assert_eq!(p.last_req(id(CLIENT)), if p.last_decree() == 0 { None } else { Some(p.last_decree()) });
        }
    }
}

// =======================================================================================
// The follower primary
// =======================================================================================

fn follower_cfg(accept: bool) -> ReplicaCfg {
    ReplicaCfg {
        dir: dir_b(),
        bootstrap: vec![follower_pc(F, 1, Some(B1), &[], A_META)],
        bootstrap_dups: vec![],
        accept_duplication: accept,
        gc: false,
        ship_batch: SHIP_BATCH,
        lease: None,
        bugs: Bugs::none(),
    }
}

/// The follower primary `B1` of `F` (optionally with secondary `B2`).
fn follower(accept: bool, secondary: bool) -> (Sim, DurableReplica) {
    let mut cfg = follower_cfg(accept);
    if secondary {
        cfg.bootstrap = vec![follower_pc(F, 1, Some(B1), &[B2], A_META)];
    }
    let (sim, o) = Sim::start(Node::Replica(cfg), id(B1), None);
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    (sim, durable)
}

fn ship(decrees: impl IntoIterator<Item = Decree>) -> Msg {
    Msg::Ship {
        gpid: F,
        origin: id(A_META),
        entries: decrees.into_iter().map(|d| (d, put(value_of(d)))).collect(),
    }
}

/// The source decrees the follower holds, in its own log order.
fn origin_reqs(p: &Part) -> Vec<ReqId> {
    p.log
        .values()
        .filter(|e| e.mutation.client == id(A_META))
        .map(|e| e.mutation.req)
        .collect()
}

fn oks(
    from: usize,
    decrees: impl IntoIterator<Item = Decree>,
) -> Vec<(Id, Decree, Result<(), Option<String>>)> {
    decrees.into_iter().map(|d| (id(from), d, Ok(()))).collect()
}

/// Each (origin, decree) is applied once and in order: a repeat is answered `Ok` without
/// a second entry, a gap is not applied (and not answered).
#[test]
fn a_follower_applies_each_shipped_decree_once_and_in_order() {
    let (mut b, mut durable) = follower(true, false);
    let mut step = |b: &mut Sim, m: Msg| {
        let o = b.msg(id(A1), m);
        durable.check(&o).unwrap();
        o
    };
    let o = step(&mut b, ship([1, 2]));
    assert_eq!(apply_replies(&o), oks(A1, [1, 2]));
    assert_eq!(origin_reqs(&b.replica().parts[&F]), vec![1, 2]);
    let o = step(&mut b, ship([1, 2]));
    assert_eq!(
        apply_replies(&o),
        oks(A1, [1, 2]),
        "a repeat is answered as done"
    );
    assert_eq!(
        origin_reqs(&b.replica().parts[&F]),
        vec![1, 2],
        "a repeat was applied again"
    );
    let o = step(&mut b, ship([2, 3]));
    assert_eq!(apply_replies(&o), oks(A1, [2, 3]));
    let before = b.replica().clone();
    let o = step(&mut b, ship([5, 6]));
    assert!(sends(&o).is_empty(), "a gap was answered: {o:?}");
    assert_eq!(b.replica(), &before, "a gap was applied");
    let o = step(&mut b, ship([4, 5]));
    assert_eq!(apply_replies(&o), oks(A1, [4, 5]));
    let p = &b.replica().parts[&F];
    assert_eq!(origin_reqs(p), vec![1, 2, 3, 4, 5]);
    assert_eq!(reg(p, p.committed), Some(val(value_of(5))));
}

/// With a secondary, a shipped mutation is answered once it commits, once (a retry while
/// it is uncommitted waits for the same commit).
#[test]
fn a_follower_answers_a_shipped_decree_once_it_commits() {
    let (mut b, mut durable) = follower(true, true);
    let o = b.msg(id(A1), ship([1, 2]));
    durable.check(&o).unwrap();
    assert!(
        apply_replies(&o).is_empty(),
        "answered before commit: {o:?}"
    );
    assert_eq!(sends_to(&o, id(B2)).len(), 2);
    let o = b.msg(
        id(B2),
        Msg::PrepareAck {
            gpid: F,
            ballot: 1,
            decree: 1,
            ok: true,
        },
    );
    durable.check(&o).unwrap();
    assert_eq!(apply_replies(&o), oks(A1, [1]));
    let o = b.msg(id(A1), ship([2]));
    durable.check(&o).unwrap();
    assert!(
        sends(&o).is_empty(),
        "a retry of an uncommitted decree: {o:?}"
    );
    let o = b.msg(
        id(B2),
        Msg::PrepareAck {
            gpid: F,
            ballot: 1,
            decree: 2,
            ok: true,
        },
    );
    durable.check(&o).unwrap();
    assert_eq!(apply_replies(&o), oks(A1, [2]));
}

/// A follower that does not accept duplication refuses with a reason; a replica that is
/// not the primary (or does not host the partition) answers `Err(None)`: ask again.
#[test]
fn a_follower_refuses_or_redirects() {
    let (mut b, _) = follower(false, false);
    let o = b.msg(id(A1), ship([1, 2]));
    let replies = apply_replies(&o);
    assert_eq!(replies.len(), 1, "{o:?}");
    assert!(
        matches!(&replies[0], (to, 1, Err(Some(reason))) if *to == id(A1) && !reason.is_empty()),
        "{replies:?}"
    );
    assert!(b.replica().parts[&F].log.is_empty());

    // B2 is a secondary of F.
    let mut cfg = follower_cfg(true);
    cfg.bootstrap = vec![follower_pc(F, 1, Some(B1), &[B2], A_META)];
    let (mut b2, _) = Sim::start(Node::Replica(cfg), id(B2), None);
    let before = b2.replica().clone();
    let o = b2.msg(id(A1), ship([1, 2]));
    assert_eq!(apply_replies(&o), vec![(id(A1), 1, Err(None))]);
    assert_eq!(b2.replica(), &before);
    // B3 hosts nothing.
    let (mut b3, _) = Sim::start(Node::Replica(follower_cfg(true)), id(B2 + 1), None);
    let o = b3.msg(id(A1), ship([1]));
    assert_eq!(apply_replies(&o), vec![(id(A1), 1, Err(None))]);
}

/// The follower holds source decrees 3 and 4 (a log-only duplication: the first source
/// primary's log started after 2, which it had collected before the duplication existed).
/// A later source primary whose log still holds 2 ships 2 and 3. Decree 2 lies below what
/// the follower already applied, yet it is applied now, after 4: the follower's register
/// goes back to the source's value at 2, and since 3 and 4 are then "repeats" it never
/// comes forward again (SAFE-12 follower-applies-in-order, LIVE-4 follower-converges).
/// `a_switch_between_unequally_collected_source_primaries_reorders_the_follower` reaches
/// this input through real transitions.
#[test]
fn a_follower_never_applies_a_decree_below_one_it_applied() {
    let (mut b, mut durable) = follower(true, false);
    let o = b.msg(id(A1), ship([3, 4]));
    durable.check(&o).unwrap();
    assert_eq!(
        apply_replies(&o),
        oks(A1, [3, 4]),
        "a log-only duplication's first batch starts anywhere"
    );
    let o = b.msg(id(A2), ship([2, 3]));
    durable.check(&o).unwrap();
    let p = &b.replica().parts[&F];
    assert_eq!(
        origin_reqs(p),
        vec![3, 4],
        "source decree 2 applied after 4"
    );
    assert_eq!(
        reg(p, p.committed),
        Some(val(value_of(4))),
        "the follower's register went back"
    );
}

/// Bring `sim`'s `Out` to whoever is `to` (a tiny network for the scenario below).
fn deliver_all(o: &Out<Node>, from: Id, to: Id, dst: &mut Sim) -> Vec<Out<Node>> {
    sends(o)
        .into_iter()
        .filter(|(d, _)| *d == to)
        .map(|(_, m)| dst.msg(from, m))
        .collect()
}

/// The input of `a_follower_never_applies_a_decree_below_one_it_applied`, reached through
/// real transitions with every message delivered (one `DupReport` still in flight):
/// 1. A1 (primary, collecting) and A2 (secondary) commit decrees 1 and 2 while no table
///    has a duplication: A1 collects to 2, A2 to 1 (its commit point trails A1's by one).
/// 2. A log-only duplication is added (meta-A: LOG, confirmed 0). A1's duplicator starts
///    at its snapshot (2) and ships 3 and 4 to B1, which applies them.
/// 3. A1 dies; A2 is promoted, hears the duplication (confirmed still 0: A1's
///    `Confirmed` report has not reached meta-A) and starts at its own snapshot, 1.
/// 4. A2 ships 2 and 3: B1 applies 2 after 4.
#[test]
fn a_switch_between_unequally_collected_source_primaries_reorders_the_follower() {
    let boot = vec![pc(1, Some(A1), &[A2])];
    let mut cfg = replica_cfg(boot, Bugs::none());
    cfg.gc = true;
    let (mut a1, _) = Sim::start(Node::Replica(cfg.clone()), id(A1), None);
    let (mut a2, _) = Sim::start(Node::Replica(cfg), id(A2), None);
    let (mut b1, _) = follower(true, false);
    // A write, replicated and committed; what A1 sends B1 meanwhile is returned.
    let client_write = |a1: &mut Sim, a2: &mut Sim, d: Decree| {
        let mut to_b1 = Vec::new();
        let o = a1.msg(id(CLIENT), write(G, d, value_of(d)));
        for o in deliver_all(&o, id(A1), id(A2), a2) {
            for o in deliver_all(&o, id(A2), id(A1), a1) {
                to_b1.extend(sends_to(&o, id(B1)).into_iter().map(|m| (id(A1), m)));
            }
        }
        to_b1
    };
    // 1.
    for d in 1..=2 {
        client_write(&mut a1, &mut a2, d);
    }
    assert_eq!(a1.replica().parts[&G].snapshot.decree, 2);
    assert_eq!(a2.replica().parts[&G].snapshot.decree, 1);
    // 2.
    let log_only = dup_entry(DupStatus::Log, 0, 0);
    a1.msg(
        id(A_META),
        Msg::DupUpdate {
            gpid: G,
            dups: [(DUP, log_only.clone())].into(),
            incarnation: 1,
        },
    );
    let b_config = PartitionConfig {
        gpid: F,
        ballot: 1,
        primary: Some(id(B1)),
        secondaries: vec![],
        max_replica_count: 1,
        source: Some(id(A_META)),
    };
    let reply = Msg::QueryConfigReply {
        gpid: F,
        config: Some(b_config),
        incarnation: Some(1),
    };
    a1.msg(id(B_META), reply.clone());
    let mut in_flight = client_write(&mut a1, &mut a2, 3);
    in_flight.extend(client_write(&mut a1, &mut a2, 4));
    assert_eq!(in_flight, vec![(id(A1), ship([3]))], "one batch in flight");
    while let Some((src, m)) = in_flight.pop() {
        let o = b1.msg(src, m);
        for o in deliver_all(&o, id(B1), id(A1), &mut a1) {
            in_flight.extend(
                sends(&o)
                    .into_iter()
                    .filter(|(d, _)| *d == id(B1))
                    .map(|(_, m)| (id(A1), m)),
            );
        }
    }
    assert_eq!(origin_reqs(&b1.replica().parts[&F]), vec![3, 4]);
    // 3.
    a2.msg(
        id(A_META),
        Msg::ConfigUpdate {
            config: pc(2, Some(A2), &[]),
            incarnation: 1,
        },
    );
    assert_eq!(a2.replica().parts[&G].committed, 4);
    a2.msg(
        id(A_META),
        Msg::DupUpdate {
            gpid: G,
            dups: [(DUP, log_only)].into(),
            incarnation: 1,
        },
    );
    let o = a2.msg(id(B_META), reply);
    // 4.
    let shipped = ships(&o);
    for (_, entries) in &shipped {
        b1.msg(
            id(A2),
            Msg::Ship {
                gpid: F,
                origin: id(A_META),
                entries: entries.clone(),
            },
        );
    }
    let p = &b1.replica().parts[&F];
    assert_eq!(
        origin_reqs(p),
        vec![3, 4],
        "A2 shipped {shipped:?}; the follower applied source decree 2 after 4"
    );
    assert_eq!(reg(p, p.committed), Some(val(value_of(4))));
}

/// A follower's op: a source batch (consecutive decrees from `from`), or a secondary's ACK.
#[derive(Clone, Debug)]
enum FOp {
    Ship { from: Decree, len: u32 },
    Ack(Decree),
}

proptest! {
    #![proptest_config(pt_config(CASES / 2))]

    /// Random interleavings of batches (repeats, overlaps, gaps, out of order) at a
    /// follower primary, with or without a secondary and a checkpoint first: the source's
    /// decrees appear in the follower's log strictly increasing (each at most once), with
    /// the source's values; every `Ok` answers a committed decree, each decree once per
    /// request. Batches never start below the first decree the follower holds from the
    /// source (that input is the bug in
    /// `a_follower_never_applies_a_decree_below_one_it_applied`).
    #[test]
    fn a_follower_never_applies_the_source_out_of_order(
        secondary in any::<bool>(),
        checkpoint in prop::option::of(1u32..4),
        ops in prop::collection::vec(prop_oneof![
            3 => (1u32..10, 0u32..4).prop_map(|(from, len)| FOp::Ship { from, len }),
            2 => (1u32..12).prop_map(FOp::Ack),
        ], 1..40),
    ) {
        let (mut b, mut durable) = follower(true, secondary);
        if let Some(c) = checkpoint {
            let o = b.msg(id(A1), Msg::Checkpoint { gpid: F, origin: id(A_META), decree: c, data: data_of(c) });
            durable.check(&o).map_err(fail)?;
        }
        for op in ops {
            let before = b.replica().parts[&F].clone();
            let (src, msg) = match op {
                FOp::Ship { from, len } => {
                    let floor = origin_reqs(&before).first().copied().unwrap_or(0);
                    (A1, ship((from..from + len).filter(|d| *d >= floor)))
                }
                FOp::Ack(d) => (B2, Msg::PrepareAck { gpid: F, ballot: 1, decree: d, ok: true }),
            };
            let o = b.msg(id(src), msg);
            durable.check(&o).map_err(fail)?;
            let p = &b.replica().parts[&F];
            prop_assert_eq!(&b.replica().broken, &None);
            let reqs = origin_reqs(p);
            prop_assert!(reqs.windows(2).all(|w| w[0] < w[1]), "source decrees out of order at the follower: {:?}", reqs);
            for e in p.log.values() {
                prop_assert!(holds_source_value(&e.mutation), "not the source's value at its decree: {:?}", e);
            }
            let mut answered = BTreeSet::new();
            for (to, d, result) in apply_replies(&o) {
                prop_assert_eq!(to, id(A1));
                prop_assert_eq!(result, Ok(()));
                prop_assert!(answered.insert(d), "decree {} answered twice in one step", d);
                let at = p.log.iter().find(|(_, e)| e.mutation.req == d).map(|(k, _)| *k);
                prop_assert!(at.is_some_and(|k| k <= p.committed), "Ok for source decree {} not committed: {:?}", d, p);
            }
        }
    }
}

// =======================================================================================
// DupEntry::merge
// =======================================================================================

#[test]
fn merge_newer_version_wins_and_confirmed_only_grows() {
    use DupStatus::*;
    let e = |status, version, confirmed| dup_entry(status, version, confirmed);
    // (known, heard, expected)
    let table = [
        (None, e(Log, 2, 3), e(Log, 2, 3)),
        (Some(e(Log, 2, 3)), e(Pause, 3, 3), e(Pause, 3, 3)),
        (Some(e(Pause, 3, 3)), e(Log, 2, 5), e(Pause, 3, 5)),
        (Some(e(Log, 2, 5)), e(Log, 2, 3), e(Log, 2, 5)),
        (Some(e(Log, 2, 5)), e(Removed, 3, 0), e(Removed, 3, 5)),
        (Some(e(Removed, 3, 5)), e(Log, 2, 9), e(Removed, 3, 9)),
        (Some(e(App, 1, 0)), e(Log, 2, 4), e(Log, 2, 4)),
    ];
    for (known, heard, expected) in table {
        assert_eq!(
            DupEntry::merge(known.as_ref(), &heard),
            expected,
            "{known:?} + {heard:?}"
        );
    }
    // Equal versions: the announcement's fields, the larger confirmed.
    let known = DupEntry {
        remote_table: 5,
        ..e(Log, 2, 7)
    };
    assert_eq!(DupEntry::merge(Some(&known), &e(Log, 2, 1)), e(Log, 2, 7));
}

fn arb_entry() -> impl Strategy<Value = DupEntry> {
    (prop::sample::select(ALL.to_vec()), 0u32..5, 0u32..10).prop_map(|(s, v, c)| dup_entry(s, v, c))
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Announcements merged in any order: the confirmed decree is the largest heard, the
    /// version the highest, and the status is that of an announcement of the highest
    /// version (the only one if that version is unique: then the order does not matter).
    #[test]
    fn merge_in_any_order(heard in prop::collection::vec(arb_entry(), 1..6), seed in any::<u64>()) {
        let fold = |xs: &[DupEntry]| xs.iter().fold(None, |k: Option<DupEntry>, h| Some(DupEntry::merge(k.as_ref(), h))).unwrap();
        let mut shuffled = heard.clone();
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (seed.rotate_left(i as u32 * 7) as usize) % n);
        }
        let (a, b) = (fold(&heard), fold(&shuffled));
        let top = heard.iter().map(|h| h.version).max().unwrap();
        for m in [&a, &b] {
            prop_assert_eq!(m.confirmed, heard.iter().map(|h| h.confirmed).max().unwrap());
            prop_assert_eq!(m.version, top);
            prop_assert!(heard.iter().any(|h| h.version == top && h.status == m.status));
        }
        let tops: BTreeSet<DupStatus> = heard.iter().filter(|h| h.version == top).map(|h| h.status).collect();
        if tops.len() == 1 {
            prop_assert_eq!(a, b);
        }
    }
}

// =======================================================================================
// Meta-A: ModifyDup and confirmed reports
// =======================================================================================

const P1: Gpid = Gpid {
    table: 1,
    partition: 1,
};

/// Meta-A bootstrapped with table 1 (partitions 0 and 1, primaries A1 and A2) and `rec`.
fn source_meta(rec: DupRecord) -> (Sim, DurableMetaDups) {
    let mut cfg = meta_cfg(
        &[A1, A2, A3],
        vec![TableSpec {
            id: 1,
            partitions: 2,
            max_replica_count: 3,
            source: None,
        }],
        3,
        Bugs::none(),
    );
    cfg.dups = vec![rec];
    let (sim, o) = Sim::start(Node::Meta(cfg), id(A_META), None);
    let mut durable = DurableMetaDups::default();
    durable.check(&o).unwrap();
    assert_eq!(sim.meta().configs[&G].primary, Some(id(A1)));
    assert_eq!(sim.meta().configs[&P1].primary, Some(id(A2)));
    let updates: Vec<Id> = sends(&o)
        .into_iter()
        .filter(|(_, m)| matches!(m, Msg::DupUpdate { .. }))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(
        updates,
        vec![id(A1), id(A2)],
        "the primaries hear the duplication at boot"
    );
    (sim, durable)
}

fn dup_updates(o: &Out<Node>) -> Vec<(Id, Gpid, DupEntry)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::DupUpdate { gpid, dups, .. } => Some((dst, gpid, dups[&DUP].clone())),
            _ => None,
        })
        .collect()
}

/// Every (from, to) status pair: allowed changes are answered with the new status, saved
/// (version bumped when the status changes) and announced to every primary of the table,
/// REMOVED included; forbidden ones are answered with an error naming them and change
/// nothing.
#[test]
fn modify_dup_every_status_pair() {
    use DupStatus::*;
    let allowed = [
        (Init, Prepare),
        (Prepare, App),
        (App, Log),
        (Pause, Log),
        (Init, Log),
        (Log, Pause),
    ];
    for from in ALL {
        for to in ALL {
            let ok = from == to || to == Removed || allowed.contains(&(from, to));
            let (mut sim, mut durable) = source_meta(dup_record(from, 5, 2));
            let before = sim.meta().clone();
            let o = sim.msg(
                id(OPERATOR),
                Msg::ModifyDup {
                    dupid: DUP,
                    status: to,
                },
            );
            durable
                .check(&o)
                .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"));
            let replies = sends_to(&o, id(OPERATOR));
            assert_eq!(replies.len(), 1, "{from:?} -> {to:?}: {o:?}");
            if ok {
                assert_eq!(
                    replies[0],
                    Msg::ModifyDupReply {
                        dupid: DUP,
                        result: Ok(to)
                    },
                    "{from:?} -> {to:?}"
                );
                let rec = &sim.meta().dups[&DUP];
                assert_eq!(
                    (rec.status, rec.version),
                    (to, if from == to { 5 } else { 6 }),
                    "{from:?} -> {to:?}"
                );
                assert_eq!(meta_saves(&o).len(), 1);
                let expected = vec![(id(A1), G, rec.entry(0)), (id(A2), P1, rec.entry(1))];
                assert_eq!(
                    dup_updates(&o),
                    expected,
                    "{from:?} -> {to:?}: the change is not announced"
                );
            } else {
                let Msg::ModifyDupReply { result: Err(e), .. } = &replies[0] else {
                    panic!("{from:?} -> {to:?} allowed: {replies:?}")
                };
                assert!(e.contains(&format!("from {from} to {to}")), "{e}");
                assert!(
                    meta_saves(&o).is_empty() && dup_updates(&o).is_empty(),
                    "{from:?} -> {to:?}: {o:?}"
                );
                assert_eq!(sim.meta(), &before);
            }
        }
    }
    let (mut sim, mut durable) = source_meta(dup_record(Log, 0, 0));
    let o = sim.msg(
        id(OPERATOR),
        Msg::ModifyDup {
            dupid: DUP + 1,
            status: Pause,
        },
    );
    durable.check(&o).unwrap();
    assert!(
        matches!(&sends(&o)[..], [(to, Msg::ModifyDupReply { result: Err(_), .. })] if *to == id(OPERATOR)),
        "{o:?}"
    );
    assert!(meta_saves(&o).is_empty());
}

/// A primary's `Confirmed` report is persisted, then announced to that partition's
/// primary only (the checker: the announcement carries what is saved); a repeat or an
/// older report changes nothing; reports count in LOG and PAUSE only.
#[test]
fn confirmed_reports_are_persisted_before_they_are_announced() {
    let (mut sim, mut durable) = source_meta(dup_record(DupStatus::Log, 2, 0));
    let report = |gpid: Gpid, d: Decree| Msg::DupReport {
        gpid,
        dupid: DUP,
        progress: DupProgress::Confirmed(d),
    };
    let o = sim.msg(id(A1), report(G, 3));
    durable.check(&o).unwrap();
    assert_eq!(meta_saves(&o).len(), 1);
    assert_eq!(
        dup_updates(&o),
        vec![(id(A1), G, dup_entry(DupStatus::Log, 2, 3))]
    );
    for d in [3, 2, 0] {
        let o = sim.msg(id(A1), report(G, d));
        assert!(o.is_empty(), "a stale report acted: {o:?}");
    }
    let o = sim.msg(id(A2), report(P1, 1));
    durable.check(&o).unwrap();
    assert_eq!(sim.meta().dups[&DUP].confirmed, [(0, 3), (1, 1)].into());
    assert_eq!(
        dup_updates(&o)
            .iter()
            .map(|(to, g, e)| (*to, *g, e.confirmed))
            .collect::<Vec<_>>(),
        vec![(id(A2), P1, 1)]
    );
    // Another table's partition: ignored.
    let o = sim.msg(
        id(A1),
        report(
            Gpid {
                table: 3,
                partition: 0,
            },
            9,
        ),
    );
    assert!(o.is_empty());
    // PAUSE: still recorded (the follower did confirm it).
    let o = sim.msg(
        id(OPERATOR),
        Msg::ModifyDup {
            dupid: DUP,
            status: DupStatus::Pause,
        },
    );
    durable.check(&o).unwrap();
    let o = sim.msg(id(A1), report(G, 5));
    durable.check(&o).unwrap();
    assert_eq!(
        dup_updates(&o),
        vec![(id(A1), G, dup_entry(DupStatus::Pause, 3, 5))]
    );
    // In any other status a report is ignored.
    for status in [
        DupStatus::Prepare,
        DupStatus::App,
        DupStatus::Removed,
        DupStatus::Init,
    ] {
        let (mut sim, _) = source_meta(dup_record(status, 2, 0));
        let before = sim.meta().clone();
        let o = sim.msg(id(A1), report(G, 4));
        assert!(o.is_empty(), "{status:?}: {o:?}");
        assert_eq!(sim.meta(), &before);
    }
}

/// The fail mode at meta-A: `SetFailMode` is saved with a version bump and announced to
/// every primary of the table; a `Rejected` report makes the refusal the duplication's
/// stall reason until that partition confirms again (a report about a batch confirmed
/// since is ignored); a `Skipped` report advances the confirmed decree (saved, announced)
/// and counts the mutations given up.
#[test]
fn fail_mode_and_refusal_reports_at_the_source_meta() {
    let (mut sim, mut durable) = source_meta(dup_record(DupStatus::Log, 2, 0));
    let mut step = |sim: &mut Sim, src: usize, m: Msg| {
        let o = sim.msg(id(src), m);
        durable.check(&o).unwrap();
        o
    };
    let o = step(
        &mut sim,
        OPERATOR,
        Msg::SetFailMode {
            dupid: DUP,
            mode: FailMode::Skip,
        },
    );
    assert_eq!(
        sends_to(&o, id(OPERATOR)),
        vec![Msg::SetFailModeReply {
            dupid: DUP,
            result: Ok(FailMode::Skip)
        }]
    );
    let rec = sim.meta().dups[&DUP].clone();
    assert_eq!(
        (rec.fail_mode, rec.version, rec.status),
        (FailMode::Skip, 3, DupStatus::Log)
    );
    assert_eq!(meta_saves(&o).len(), 1);
    assert_eq!(
        dup_updates(&o),
        vec![(id(A1), G, rec.entry(0)), (id(A2), P1, rec.entry(1))]
    );
    assert_eq!(rec.entry(0).fail_mode, FailMode::Skip);
    // The same mode again: no new version.
    step(
        &mut sim,
        OPERATOR,
        Msg::SetFailMode {
            dupid: DUP,
            mode: FailMode::Skip,
        },
    );
    assert_eq!(sim.meta().dups[&DUP].version, 3);
    let o = step(
        &mut sim,
        OPERATOR,
        Msg::SetFailMode {
            dupid: DUP + 1,
            mode: FailMode::Slow,
        },
    );
    assert!(
        matches!(&sends(&o)[..], [(to, Msg::SetFailModeReply { result: Err(_), .. })] if *to == id(OPERATOR)),
        "{o:?}"
    );
    assert!(meta_saves(&o).is_empty());
    step(
        &mut sim,
        OPERATOR,
        Msg::SetFailMode {
            dupid: DUP,
            mode: FailMode::Slow,
        },
    );

    let report = |gpid: Gpid, progress: DupProgress| Msg::DupReport {
        gpid,
        dupid: DUP,
        progress,
    };
    let rejected = |from: Decree| DupProgress::Rejected {
        from,
        reason: "bad credentials".into(),
    };
    let o = step(&mut sim, A1, report(G, rejected(1)));
    assert_eq!(meta_saves(&o).len(), 1, "the stall reason is not saved");
    let rec = sim.meta().dups[&DUP].clone();
    assert!(
        rec.stall
            .as_ref()
            .is_some_and(|s| s.contains("bad credentials") && s.contains("partition 0")),
        "{:?}",
        rec.stall
    );
    assert_eq!(rec.refusing.keys().copied().collect::<Vec<_>>(), [0]);
    let o = step(&mut sim, A1, report(G, rejected(1)));
    assert!(o.is_empty(), "a repeated refusal acted: {o:?}");
    // Confirmed again: the stall clears.
    let o = step(&mut sim, A1, report(G, DupProgress::Confirmed(3)));
    assert_eq!(
        dup_updates(&o),
        vec![(id(A1), G, sim.meta().dups[&DUP].entry(0))]
    );
    let rec = sim.meta().dups[&DUP].clone();
    assert_eq!(
        (rec.stall.clone(), rec.refusing.len(), rec.confirmed[&0]),
        (None, 0, 3)
    );
    // A late refusal of a batch confirmed since: ignored.
    let o = step(&mut sim, A1, report(G, rejected(2)));
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(sim.meta().dups[&DUP].stall, None);

    // Skipped: confirmed moves on (saved, announced), the count grows, the stall clears.
    step(&mut sim, A2, report(P1, rejected(1)));
    assert_eq!(
        sim.meta().dups[&DUP]
            .refusing
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
    let o = step(
        &mut sim,
        A2,
        report(P1, DupProgress::Skipped { upto: 4, count: 4 }),
    );
    let rec = sim.meta().dups[&DUP].clone();
    assert_eq!(
        (
            rec.skipped,
            rec.confirmed[&1],
            rec.stall.clone(),
            rec.refusing.len()
        ),
        (4, 4, None, 0)
    );
    assert_eq!(dup_updates(&o), vec![(id(A2), P1, rec.entry(1))]);
    assert_eq!(meta_saves(&o).len(), 1);
    // A repeat, or a report below the confirmed decree, counts nothing.
    for upto in [4, 2] {
        let o = step(
            &mut sim,
            A2,
            report(P1, DupProgress::Skipped { upto, count: 2 }),
        );
        assert!(o.is_empty(), "{o:?}");
    }
    assert_eq!(sim.meta().dups[&DUP].skipped, 4);
    let o = step(
        &mut sim,
        A1,
        report(G, DupProgress::Skipped { upto: 5, count: 2 }),
    );
    assert_eq!(dup_updates(&o).len(), 1);
    assert_eq!(sim.meta().dups[&DUP].skipped, 6);
}

/// The stall reason names a partition whose follower still refuses: partitions 0 and 1
/// are refused, then 1 confirms again; 0 still refuses, so the reason must say so (a
/// reason kept from the last refusal, "partition 1", would send the operator to a
/// partition that is fine).
#[test]
fn the_stall_reason_names_a_partition_still_refusing() {
    let (mut sim, mut durable) = source_meta(dup_record(DupStatus::Log, 2, 0));
    let report = |gpid: Gpid, progress: DupProgress| Msg::DupReport {
        gpid,
        dupid: DUP,
        progress,
    };
    for (src, gpid) in [(A1, G), (A2, P1)] {
        let o = sim.msg(
            id(src),
            report(
                gpid,
                DupProgress::Rejected {
                    from: 1,
                    reason: "no".into(),
                },
            ),
        );
        durable.check(&o).unwrap();
    }
    let o = sim.msg(id(A2), report(P1, DupProgress::Confirmed(1)));
    durable.check(&o).unwrap();
    let rec = &sim.meta().dups[&DUP];
    assert_eq!(rec.refusing.keys().copied().collect::<Vec<_>>(), [0]);
    assert!(
        rec.stall
            .as_ref()
            .is_some_and(|s| s.contains("partition 0")),
        "stall {:?} while partition 0 refuses",
        rec.stall
    );
}

/// Which partitions refuse is durable state (after a restart it decides when the stall
/// clears), so every change to it is saved. Here: 0 and 1 refused, 1 confirmed, 1 refused
/// again. The last refusal leaves the stall text unchanged (it names partition 0) yet
/// changes `refusing`: unsaved, a restarted meta server would clear the stall when 0
/// confirms while 1 still refuses (its duplicator reports a refusal once, not on every
/// retry).
#[test]
fn every_change_of_the_refusing_partitions_is_saved() {
    let (mut sim, mut durable) = source_meta(dup_record(DupStatus::Log, 2, 0));
    let report = |gpid: Gpid, progress: DupProgress| Msg::DupReport {
        gpid,
        dupid: DUP,
        progress,
    };
    let rejected = || DupProgress::Rejected {
        from: 2,
        reason: "no".into(),
    };
    for (src, m) in [
        (A1, report(G, rejected())),
        (A2, report(P1, rejected())),
        (A2, report(P1, DupProgress::Confirmed(1))),
        (A2, report(P1, rejected())),
    ] {
        let o = sim.msg(id(src), m);
        durable.check(&o).unwrap();
        let saved = &durable.saved.as_ref().unwrap().dups[&DUP];
        let now = &sim.meta().dups[&DUP];
        assert_eq!(
            saved.refusing, now.refusing,
            "refusing changed without a save"
        );
    }
}

/// The checker bites: an announcement of a confirmed decree the meta has not saved.
#[test]
fn the_meta_checker_catches_an_unsaved_confirmed_decree() {
    let (_sim, mut durable) = source_meta(dup_record(DupStatus::Log, 2, 0));
    let mut o: Out<Node> = Out::new();
    o.send(
        id(A1),
        Msg::DupUpdate {
            gpid: G,
            dups: [(DUP, dup_entry(DupStatus::Log, 2, 4))].into(),
            incarnation: 1,
        },
    );
    let err = durable
        .check(&o)
        .expect_err("an unsaved confirmed decree went unnoticed");
    assert!(err.contains("saved records"), "{err}");
    // Saved in the same step: fine (the driver makes the save durable before the send).
    let mut st = durable.saved.clone().unwrap();
    st.dups.get_mut(&DUP).unwrap().confirmed.insert(0, 4);
    let mut o: Out<Node> = Out::new();
    o.send(
        id(A1),
        Msg::DupUpdate {
            gpid: G,
            dups: [(DUP, dup_entry(DupStatus::Log, 2, 4))].into(),
            incarnation: 1,
        },
    );
    o.save(NodeStorage::Meta(st));
    durable.check(&o).unwrap();
}

#[derive(Clone, Debug)]
enum MOp {
    Modify(DupStatus),
    Confirmed { partition: u8, decree: Decree },
    Applied { partition: u8, decree: Decree },
    PeerDown(usize),
    Register(usize),
}

proptest! {
    #![proptest_config(pt_config(CASES / 2))]

    /// Operator changes, primaries' reports and replica failures in any order: every
    /// announcement and answer is backed by the saved records, the status only moves along
    /// `can_become`, the version grows by one per change, and a partition's confirmed
    /// decree never goes back.
    #[test]
    fn meta_dup_claims_are_always_durable(
        start in prop::sample::select(ALL.to_vec()),
        ops in prop::collection::vec(prop_oneof![
            3 => prop::sample::select(ALL.to_vec()).prop_map(MOp::Modify),
            3 => (0u8..2, 0u32..8).prop_map(|(partition, decree)| MOp::Confirmed { partition, decree }),
            1 => (0u8..2, 0u32..8).prop_map(|(partition, decree)| MOp::Applied { partition, decree }),
            1 => (1usize..4).prop_map(MOp::PeerDown),
            1 => (1usize..4).prop_map(MOp::Register),
        ], 1..30),
    ) {
        let (mut sim, mut durable) = source_meta(dup_record(start, 0, 0));
        let mut lives: BTreeMap<usize, u32> = [(A1, 1), (A2, 1), (A3, 1)].into();
        for op in ops {
            let before = sim.meta().dups[&DUP].clone();
            let (src, msg) = match op {
                MOp::Modify(status) => (OPERATOR, Msg::ModifyDup { dupid: DUP, status }),
                MOp::Confirmed { partition, decree } => {
                    (A1, Msg::DupReport { gpid: Gpid { table: 1, partition }, dupid: DUP, progress: DupProgress::Confirmed(decree) })
                }
                MOp::Applied { partition, decree } => {
                    (A1, Msg::DupReport { gpid: Gpid { table: 1, partition }, dupid: DUP, progress: DupProgress::Applied(decree) })
                }
                MOp::PeerDown(r) => (r, Msg::PeerDown { incarnation: lives[&r] }),
                MOp::Register(r) => {
                    let l = lives.get_mut(&r).unwrap();
                    *l += 1;
                    (r, Msg::Register { incarnation: *l })
                }
            };
            let o = sim.msg(id(src), msg);
            durable.check(&o).map_err(fail)?;
            let after = &sim.meta().dups[&DUP];
            prop_assert!(before.status.can_become(after.status), "{:?} -> {:?}", before.status, after.status);
            prop_assert_eq!(after.version, before.version + u32::from(after.status != before.status));
            for (p, c) in &before.confirmed {
                prop_assert!(after.confirmed.get(p).is_some_and(|a| a >= c), "confirmed of {} went back", p);
            }
        }
    }
}

// =======================================================================================
// Source and follower together, over a lossy, reordering network
// =======================================================================================

/// A message in flight.
#[derive(Clone, Debug)]
struct Flight {
    from: usize,
    to: usize,
    msg: Msg,
}

/// Meta-A, A1 (the source primary, collecting, no secondary), meta-B and B1 (the follower
/// primary), with messages delivered in any order, duplicated or lost, and connection
/// failures between A1 and B1.
struct World {
    meta_a: Sim,
    meta_a_durable: DurableMetaDups,
    a1: Source,
    meta_b: Sim,
    b1: Sim,
    b1_durable: DurableReplica,
    net: Vec<Flight>,
}

#[derive(Clone, Debug)]
enum WOp {
    /// Deliver the i-th message in flight (mod the count); `dup`: keep a copy in flight.
    Deliver {
        i: usize,
        dup: bool,
    },
    Lose(usize),
    Write,
    /// A1 sees its connection to B1 break (B1 stays up).
    LinkDown,
}

impl World {
    fn new() -> World {
        let rec = dup_record(DupStatus::Log, 2, 0);
        let mut cfg = meta_cfg(
            &[A1],
            vec![TableSpec {
                id: 1,
                partitions: 1,
                max_replica_count: 1,
                source: None,
            }],
            1,
            Bugs::none(),
        );
        cfg.dups = vec![rec];
        let (meta_a, o) = Sim::start(Node::Meta(cfg), id(A_META), None);
        let mut meta_a_durable = DurableMetaDups::default();
        meta_a_durable.check(&o).unwrap();
        let mut net = Vec::new();
        net.extend(sends(&o).into_iter().map(|(to, msg)| Flight {
            from: A_META,
            to: usize::from(to),
            msg,
        }));
        let a1 = Source::start(false, true, Bugs::none());
        let mut bcfg = meta_cfg(
            &[B1],
            vec![TableSpec {
                id: F.table,
                partitions: 1,
                max_replica_count: 1,
                source: None,
            }],
            1,
            Bugs::none(),
        );
        bcfg.accept_duplication = true;
        let (meta_b, _) = Sim::start(Node::Meta(bcfg), id(B_META), None);
        let (b1, b1_durable) = follower(true, false);
        World {
            meta_a,
            meta_a_durable,
            a1,
            meta_b,
            b1,
            b1_durable,
            net,
        }
    }

    fn send_all(&mut self, from: usize, o: &Out<Node>) {
        for (to, msg) in sends(o) {
            let to = usize::from(to);
            if [A_META, A1, B_META, B1].contains(&to) {
                self.net.push(Flight { from, to, msg });
            }
        }
    }

    fn deliver(&mut self, f: Flight) -> Result<(), String> {
        let o = match f.to {
            A_META => {
                let o = self.meta_a.msg(id(f.from), f.msg);
                self.meta_a_durable.check(&o)?;
                o
            }
            A1 => self.a1.try_step(f.from, f.msg)?,
            B_META => self.meta_b.msg(id(f.from), f.msg),
            _ => {
                let o = self.b1.msg(id(f.from), f.msg);
                self.b1_durable.check(&o)?;
                o
            }
        };
        self.send_all(f.to, &o);
        Ok(())
    }

    fn apply(&mut self, op: &WOp) -> Result<(), String> {
        match *op {
            WOp::Deliver { i, dup } if !self.net.is_empty() => {
                let i = i % self.net.len();
                let f = if dup {
                    self.net[i].clone()
                } else {
                    self.net.remove(i)
                };
                self.deliver(f)?;
            }
            WOp::Lose(i) => {
                // Only the link between the two primaries loses messages (a link reset,
                // `LinkDown`, recovers them); the meta servers' traffic is only reordered.
                let link: Vec<usize> = (0..self.net.len())
                    .filter(|k| {
                        [A1, B1].contains(&self.net[*k].from) && [A1, B1].contains(&self.net[*k].to)
                    })
                    .collect();
                if !link.is_empty() {
                    self.net.remove(link[i % link.len()]);
                }
            }
            WOp::Write => {
                let o = self.a1.write();
                self.send_all(A1, &o);
            }
            WOp::LinkDown => {
                let o = self.a1.try_step(B1, Msg::PeerDown { incarnation: 1 })?;
                self.send_all(A1, &o);
            }
            _ => {}
        }
        self.check()
    }

    /// SAFE-12/13/14 on this pair.
    fn check(&self) -> Result<(), String> {
        let a = self.a1.part();
        let f = &self.b1.replica().parts[&F];
        let reqs = origin_reqs(f);
        if !reqs.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!(
                "source decrees out of order at the follower: {reqs:?}"
            ));
        }
        for e in f.log.values() {
            if e.mutation.req > a.committed || !holds_source_value(&e.mutation) {
                return Err(format!(
                    "the follower holds {e:?}, not committed on the source (committed {})",
                    a.committed
                ));
            }
        }
        let persisted = self.meta_a_durable.saved.as_ref().unwrap().dups[&DUP]
            .confirmed
            .get(&0)
            .copied()
            .unwrap_or(0);
        if a.snapshot.decree > persisted {
            return Err(format!(
                "A1 collected to {} beyond meta-A's persisted confirmed {persisted}",
                a.snapshot.decree
            ));
        }
        let follower_committed = f
            .log
            .range(..=f.committed)
            .filter(|(_, e)| e.mutation.client == id(A_META))
            .map(|(_, e)| e.mutation.req)
            .max();
        if persisted > 0 && follower_committed.is_none_or(|c| c < persisted) {
            return Err(format!("meta-A persisted confirmed {persisted}, the follower committed only {follower_committed:?}"));
        }
        Ok(())
    }

    /// Deliver everything, in order, without loss, until nothing is in flight.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..10_000 {
            if self.net.is_empty() {
                return Ok(());
            }
            let f = self.net.remove(0);
            self.deliver(f)?;
            self.check()?;
        }
        Err(format!(
            "still talking after 10000 deliveries: {:?}",
            self.net
        ))
    }
}

proptest! {
    #![proptest_config(pt_config(CASES / 4))]

    /// The source primary and the follower primary over a network that reorders,
    /// duplicates and loses messages, with connection failures: the follower applies the
    /// source in order and only committed mutations, meta-A persists only what the
    /// follower committed, and A1 collects nothing meta-A has not persisted as confirmed.
    /// After a final link reset and a lossless drain the follower holds the source's
    /// committed state, all of it confirmed.
    #[test]
    fn log_shipping_over_a_faulty_network(
        ops in prop::collection::vec(prop_oneof![
            8 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(i, dup)| WOp::Deliver { i, dup }),
            1 => any::<usize>().prop_map(WOp::Lose),
            3 => Just(WOp::Write),
            1 => Just(WOp::LinkDown),
        ], 1..80),
    ) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op).map_err(fail)?;
        }
        // Lost messages are recovered by a reconnection (the transport's failure notice).
        w.apply(&WOp::LinkDown).map_err(fail)?;
        w.drain().map_err(fail)?;
        let a = w.a1.part().clone();
        let f = w.b1.replica().parts[&F].clone();
        prop_assert_eq!(w.a1.dup().confirmed, a.committed, "not everything committed was confirmed");
        prop_assert_eq!(reg(&f, f.committed), reg(&a, a.committed), "the follower did not converge");
        prop_assert_eq!(f.data_at(f.committed), a.data_at(a.committed), "the follower's map did not converge");
        prop_assert_eq!(origin_reqs(&f).last().copied(), if a.committed == 0 { None } else { Some(a.committed) });
        let persisted = w.meta_a.meta().dups[&DUP].confirmed.get(&0).copied().unwrap_or(0);
        prop_assert_eq!(persisted, a.committed, "meta-A did not persist the last confirmation");
        prop_assert_eq!(a.snapshot.decree, a.committed, "A1 did not collect what was confirmed");
    }
}
