//! Replica transitions: the secondary's prepare rules, the primary's write/commit/read
//! rules, reconfiguration, recovery, and "every claim is durable" (the persistence contract
//! in `common`).
mod common;

use common::*;
use petrel_core::replica::{ReplicaState, ReplicaStorage, Status};
use petrel_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

/// The replica under test.
const R: usize = 1;
/// Its configured primary (secondary tests).
const P: usize = 2;
const META: usize = 0;

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

fn replica_node(bootstrap: Vec<PartitionConfig>, bugs: Bugs) -> Node {
    Node::Replica(replica_cfg(bootstrap, bugs))
}

fn part(s: &ReplicaState) -> &petrel_core::replica::Part {
    &s.parts[&G]
}

// =======================================================================================
// 1. Secondary: prepares
// =======================================================================================

/// One prepare, as some node sends it.
#[derive(Clone, Debug)]
struct Prep {
    from: usize,
    /// The primary the carried configuration names (a well-formed prepare names its sender).
    claimed: Option<usize>,
    ballot: Ballot,
    /// The carried configuration lists the replica under test as a secondary.
    member: bool,
    decree: Decree,
    entry: Entry,
    committed: Decree,
    /// The primary's last decree when it adopted `ballot`.
    base: Decree,
}

impl Prep {
    fn config(&self) -> PartitionConfig {
        let mut secs: Vec<usize> = [R, 3, 4]
            .into_iter()
            .filter(|n| Some(*n) != self.claimed)
            .collect();
        if !self.member {
            secs.retain(|n| *n != R);
        }
        pc(self.ballot, self.claimed, &secs)
    }
    fn msg(&self) -> Msg {
        Msg::Prepare {
            config: self.config(),
            decree: self.decree,
            entry: self.entry.clone(),
            committed: self.committed,
            base: self.base,
            retain: 0,
        }
    }
}

/// The mutation a consistent history holds at `decree`.
fn history(decree: Decree) -> Mutation {
    mutation(10, decree, decree)
}

/// Arbitrary prepares. An entry's ballot is the prepare's, or (malformed) an older one;
/// never a newer one: that is the trigger of the bug reported by
/// `a_future_ballot_entry_never_leaves_a_hole`, kept out so the properties check the rest.
fn arb_prep() -> impl Strategy<Value = Prep> {
    (
        prop_oneof![4 => Just(P), 1 => Just(3usize), 1 => Just(4usize)],
        0u8..10,
        0u32..6,
        prop::bool::weighted(0.85),
        1u32..9,
        prop::option::weighted(0.85, Just(())),
        (0u32..6, 10usize..12, 1u32..4, 1u8..4),
        prop::bool::weighted(0.8),
        (0u32..9, 0u32..9),
    )
        .prop_map(
            |(
                from,
                claim,
                ballot,
                member,
                decree,
                same_ballot,
                (eb, client, req, value),
                consistent,
                (committed, base),
            )| {
                let claimed = match claim {
                    0 => None,
                    1 => Some(if from == P { 3 } else { P }),
                    _ => Some(from),
                };
                let m = if consistent {
                    history(decree)
                } else {
                    mutation(client, req, value)
                };
                let entry = Entry {
                    ballot: if same_ballot.is_some() {
                        ballot
                    } else {
                        eb.min(ballot)
                    },
                    mutation: m,
                };
                Prep {
                    from,
                    claimed,
                    ballot,
                    member,
                    decree,
                    entry,
                    committed,
                    base,
                }
            },
        )
}

/// Feed `ops` to a secondary (bootstrapped at ballot 2 with primary `P`) and check every
/// rule of a secondary after every step. `strict_mutation`: an ACK of the prepared decree
/// also means the log holds the prepared mutation there.
fn run_secondary(bugs: Bugs, ops: &[Prep], strict_mutation: bool) -> Result<(), TestCaseError> {
    let (mut sim, o) = Sim::start(
        replica_node(vec![pc(2, Some(P), &[R, 3])], bugs),
        id(R),
        None,
    );
    let mut durable = DurableReplica::default();
    durable.check(&o).map_err(fail)?;
    prop_assert_eq!(part(sim.replica()).status, Status::Secondary);
    for op in ops {
        let before = sim.replica().clone();
        let o = sim.msg(id(op.from), op.msg());
        let after = sim.replica().clone();
        let (bp, ap) = (part(&before), part(&after));
        let acks = ok_acks(&o);

        if before.broken.is_some() {
            prop_assert!(o.is_empty(), "a broken replica keeps talking: {:?}", o);
            prop_assert_eq!(&after, &before);
            continue;
        }
        if op.claimed != Some(op.from) {
            prop_assert!(
                o.is_empty(),
                "acted on a prepare whose config names another primary: {:?}",
                o
            );
            prop_assert_eq!(
                &after,
                &before,
                "state changed on a prepare from a non-primary"
            );
        }
        // Never ACK a prepare whose configuration ballot is below the replica's own.
        prop_assert!(
            op.ballot >= bp.config.ballot || acks.is_empty(),
            "ACKed a stale prepare (ballot {} < own {}): {:?}",
            op.ballot,
            bp.config.ballot,
            acks
        );
        // The log is the contiguous prefix 1..=last; the commit point is within it.
        prop_assert!(
            log_is_contiguous(ap),
            "log has a hole: {:?}",
            ap.log.keys().collect::<Vec<_>>()
        );
        prop_assert!(
            ap.committed <= ap.last_decree(),
            "committed {} > last {}",
            ap.committed,
            ap.last_decree()
        );
        prop_assert!(ap.committed >= bp.committed, "commit point went back");
        // The ballot never decreases.
        prop_assert!(
            ap.config.ballot >= bp.config.ballot,
            "ballot decreased {} -> {}",
            bp.config.ballot,
            ap.config.ballot
        );
        // Every ACK is for a decree the replica has logged, at its current ballot, to the sender.
        for (dst, ballot, d) in &acks {
            prop_assert_eq!(*dst, id(op.from));
            prop_assert!(
                ap.log.contains_key(d),
                "ACKed decree {} it has not logged: {:?}",
                d,
                ap.log
            );
            prop_assert_eq!(*ballot, ap.config.ballot);
            if strict_mutation && *d == op.decree {
                prop_assert_eq!(
                    ap.log.get(d).map(|e| &e.mutation),
                    Some(&op.entry.mutation),
                    "ACKed decree {} for a mutation it does not hold",
                    d
                );
            }
        }
        // A prepare ahead of a missing decree is buffered, neither logged nor ACKed.
        let nacked = sends(&o)
            .iter()
            .any(|(_, m)| matches!(m, Msg::PrepareAck { ok: false, .. }));
        let accepted = op.claimed == Some(op.from) && !nacked && after.broken.is_none();
        if accepted && op.decree > bp.last_decree() + 1 {
            prop_assert!(
                !ap.log.contains_key(&op.decree),
                "early prepare {} was logged",
                op.decree
            );
            prop_assert!(
                !acks.iter().any(|(_, _, d)| *d == op.decree),
                "early prepare {} was ACKed",
                op.decree
            );
            prop_assert_eq!(ap.early.get(&op.decree), Some(&op.entry));
        }
        prop_assert!(
            ap.early.keys().all(|d| *d > ap.last_decree() + 1),
            "a buffered prepare could have been logged: early {:?}, last {}",
            ap.early.keys().collect::<Vec<_>>(),
            ap.last_decree()
        );
        // Adopting a higher ballot as a secondary drops the old-ballot entries beyond
        // max(committed, base) before anything of the new ballot is logged: of those, only
        // the prepared decree itself may be in the log afterwards.
        if op.claimed == Some(op.from)
            && ap.config.ballot > bp.config.ballot
            && ap.status == Status::Secondary
        {
            let keep = bp.committed.max(op.base);
            for (d, e) in bp.log.range(keep + 1..) {
                if e.ballot < ap.config.ballot && *d != op.decree {
                    prop_assert!(
                        ap.log.get(d) != Some(e),
                        "stale decree {} (ballot {}) kept beyond base {}: {:?}",
                        d,
                        e.ballot,
                        keep,
                        ap.log
                    );
                }
            }
        }
        // `broken` only when a committed decree is re-prepared with another mutation.
        if after.broken.is_some() {
            prop_assert!(
                op.decree <= bp.committed
                    && bp
                        .log
                        .get(&op.decree)
                        .is_some_and(|e| e.mutation != op.entry.mutation),
                "broken without a conflicting re-prepare of a committed decree: {:?} after {:?}",
                after.broken,
                op
            );
        }
        // Everything claimed is durable.
        durable.check(&o).map_err(fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Secondary rules under arbitrary prepares (stale/new ballots, gaps, forged senders,
    /// conflicting mutations): an ACK always means "I hold this mutation here".
    #[test]
    fn secondary_prepare_rules(ops in prop::collection::vec(arb_prep(), 1..40)) {
        run_secondary(Bugs::none(), &ops, true)?;
    }
}

/// With `Bug::AcceptStalePrepare` the same property finds a stale prepare that is ACKed.
#[test]
fn secondary_prepare_rules_catch_accept_stale_prepare() {
    let bugs = Bugs::none().with(Bug::AcceptStalePrepare);
    let mut runner = deterministic_runner(256);
    let result = runner.run(&prop::collection::vec(arb_prep(), 1..40), |ops| {
        run_secondary(bugs, &ops, false)
    });
    let err = result.expect_err("the mutant AcceptStalePrepare went unnoticed");
    assert!(
        err.to_string().contains("stale prepare"),
        "failed for another reason: {err}"
    );

    // And a concrete case: ballot 1 from the configured primary, below the replica's 2.
    let stale = Prep {
        from: P,
        claimed: Some(P),
        ballot: 1,
        member: true,
        decree: 1,
        entry: Entry {
            ballot: 1,
            mutation: history(1),
        },
        committed: 0,
        base: 0,
    };
    assert!(run_secondary(Bugs::none(), std::slice::from_ref(&stale), false).is_ok());
    assert!(run_secondary(bugs, &[stale], false).is_err());
}

/// With `Bug::ForgetToPersistBallot` the durable checker sees an ACK at a ballot not saved.
#[test]
fn secondary_durability_catches_forget_to_persist_ballot() {
    let bugs = Bugs::none().with(Bug::ForgetToPersistBallot);
    let prep = Prep {
        from: P,
        claimed: Some(P),
        ballot: 3,
        member: true,
        decree: 1,
        entry: Entry {
            ballot: 3,
            mutation: history(1),
        },
        committed: 0,
        base: 0,
    };
    assert!(run_secondary(Bugs::none(), std::slice::from_ref(&prep), false).is_ok());
    let err = run_secondary(bugs, &[prep], false).expect_err("unsaved ballot went unnoticed");
    assert!(err.to_string().contains("saved ballot"), "{err}");
}

/// An ACK means "I hold this mutation at this decree". When a committed decree is
/// re-prepared with a different mutation the replica sets `broken` (an assert), and it
/// must not ACK that prepare in the same step: a primary would count a replica that does
/// not hold its mutation.
#[test]
fn secondary_never_acks_a_mutation_it_does_not_hold() {
    let prep = |decree: Decree, m: Mutation, committed: Decree| Prep {
        from: P,
        claimed: Some(P),
        ballot: 2,
        member: true,
        decree,
        entry: Entry {
            ballot: 2,
            mutation: m,
        },
        committed,
        base: 0,
    };
    let ops = [prep(1, history(1), 1), prep(1, mutation(11, 9, 9), 1)];
    run_secondary(Bugs::none(), &ops, true).unwrap();
    // And the step itself: broken, and silent about the conflicting decree.
    let (mut sim, _) = Sim::start(
        replica_node(vec![pc(2, Some(P), &[R, 3])], Bugs::none()),
        id(R),
        None,
    );
    sim.msg(id(P), ops[0].msg());
    let o = sim.msg(id(P), ops[1].msg());
    assert!(sim.replica().broken.is_some());
    assert!(
        ok_acks(&o).is_empty(),
        "ACKed a conflicting re-prepare: {o:?}"
    );
}

proptest! {
    #![proptest_config(pt_config(CASES / 2))]

    /// The strict "ACK = holds this mutation" rule on one consistent history (no conflict
    /// with a committed decree, so the replica never breaks and the deep paths are reached).
    #[test]
    fn secondary_acks_hold_the_prepared_mutation(ops in prop::collection::vec(arb_prep(), 1..40)) {
        let conflict_free: Vec<Prep> = ops
            .into_iter()
            .map(|mut p| {
                p.entry.mutation = history(p.decree);
                p
            })
            .collect();
        run_secondary(Bugs::none(), &conflict_free, true)?;
    }
}

// --- Secondary under prepares, group checks and config updates ------------------------

#[derive(Clone, Debug)]
enum SecOp {
    Prep(Prep),
    GroupCheck {
        from: usize,
        ballot: Ballot,
        member: bool,
        committed: Decree,
        base: Decree,
    },
    ConfigUpdate {
        ballot: Ballot,
        primary: usize,
        member: bool,
        incarnation: u32,
    },
}

fn arb_sec_op() -> impl Strategy<Value = SecOp> {
    prop_oneof![
        6 => arb_prep().prop_map(SecOp::Prep),
        2 => (prop_oneof![Just(P), Just(3usize)], 0u32..6, prop::bool::weighted(0.85), 0u32..9, 0u32..9)
            .prop_map(|(from, ballot, member, committed, base)| SecOp::GroupCheck { from, ballot, member, committed, base }),
        1 => (0u32..6, prop_oneof![Just(P), Just(3usize)], prop::bool::weighted(0.8), 0u32..3)
            .prop_map(|(ballot, primary, member, incarnation)| SecOp::ConfigUpdate { ballot, primary, member, incarnation }),
    ]
}

fn members(primary: usize, member: bool) -> Vec<usize> {
    [R, 3, 4]
        .into_iter()
        .filter(|n| *n != primary && (member || *n != R))
        .collect()
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Mixed traffic: the ballot never decreases, committed <= last, no stale or unlogged
    /// ACK, and the committed prefix is never dropped or rewritten.
    #[test]
    fn secondary_mixed_traffic_rules(ops in prop::collection::vec(arb_sec_op(), 1..40)) {
        let (mut sim, o) = Sim::start(replica_node(vec![pc(2, Some(P), &[R, 3])], Bugs::none()), id(R), None);
        let mut durable = DurableReplica::default();
        durable.check(&o).map_err(fail)?;
        for op in &ops {
            let before = sim.replica().clone();
            let (src, msg) = match op {
                SecOp::Prep(p) => (p.from, p.msg()),
                SecOp::GroupCheck { from, ballot, member, committed, base } => (
                    *from,
                    Msg::GroupCheck { config: pc(*ballot, Some(*from), &members(*from, *member)), committed: *committed, base: *base, retain: 0 },
                ),
                SecOp::ConfigUpdate { ballot, primary, member, incarnation } => (
                    META,
                    Msg::ConfigUpdate { config: pc(*ballot, Some(*primary), &members(*primary, *member)), incarnation: *incarnation },
                ),
            };
            let o = sim.msg(id(src), msg);
            let after = sim.replica().clone();
            let (bp, ap) = (part(&before), part(&after));
            if before.broken.is_some() {
                prop_assert!(o.is_empty());
                continue;
            }
            prop_assert!(ap.config.ballot >= bp.config.ballot, "ballot decreased");
            prop_assert!(ap.committed >= bp.committed, "commit point went back");
            prop_assert!(ap.committed <= ap.last_decree(), "committed {} > last {}", ap.committed, ap.last_decree());
            for d in 1..=bp.committed {
                prop_assert_eq!(ap.log.get(&d), bp.log.get(&d), "committed decree {} changed", d);
            }
            let msg_ballot = match op {
                SecOp::Prep(p) => Some(p.ballot),
                _ => None,
            };
            for (_, ballot, d) in ok_acks(&o) {
                prop_assert!(ap.log.contains_key(&d), "ACKed unlogged decree {}", d);
                prop_assert_eq!(ballot, ap.config.ballot);
                if let Some(b) = msg_ballot {
                    prop_assert!(b >= bp.config.ballot, "ACKed a stale prepare");
                }
            }
            if let SecOp::ConfigUpdate { incarnation, .. } = op {
                if *incarnation != before.incarnation {
                    prop_assert_eq!(&after, &before, "acted on a ConfigUpdate for another life");
                }
            }
            // A prepare or group check that makes it a secondary of a higher ballot drops
            // the old-ballot entries beyond max(committed, base) (the prepared decree
            // itself may be taken again in the same step).
            let truncating = match op {
                SecOp::Prep(p) if p.claimed == Some(p.from) => Some((p.base, Some(p.decree))),
                SecOp::GroupCheck { base, .. } => Some((*base, None)),
                _ => None,
            };
            if let Some((base, taken)) = truncating {
                if ap.config.ballot > bp.config.ballot && ap.status == Status::Secondary {
                    let keep = bp.committed.max(base);
                    for (d, e) in bp.log.range(keep + 1..) {
                        if e.ballot < ap.config.ballot && Some(*d) != taken {
                            prop_assert!(ap.log.get(d) != Some(e), "stale decree {} kept beyond {}: {:?}", d, keep, ap.log);
                        }
                    }
                }
            }
            durable.check(&o).map_err(fail)?;
        }
    }
}

/// A member's log must stay a contiguous prefix ("a promoted member never has a hole",
/// replica.rs), whichever message of a new ballot arrives first.
///
/// The scenario: P=1 primary of {2,3} at ballot 1 prepares 1..5; 2 gets 1..3, 3 gets all.
/// P crashes; the meta promotes 2 (ballot 2, base 3: its last decree when it took over).
/// Two clients write decrees 4 and 5 at ballot 2. Replica 3 gets the prepare of 5 first,
/// or the group check first. Formerly the group check dropped the stale 4 but kept the
/// new 5 (taken before it), leaving {1,2,3,5}: promoted, 3 could never commit past 3.
/// Now the first message of ballot 2 truncates 3's log to 1..=3 before anything of the
/// new ballot is taken, so the prepare of 5 waits for 4 and the log stays contiguous.
#[test]
fn secondary_log_stays_contiguous_across_a_new_ballot() {
    let old = pc(1, Some(1), &[2, 3]);
    let new = pc(2, Some(2), &[3]);
    let four = Entry {
        ballot: 2,
        mutation: mutation(11, 1, 40),
    };
    let five = Entry {
        ballot: 2,
        mutation: mutation(12, 1, 50),
    };
    let prepare = |decree: Decree, entry: Entry| Msg::Prepare {
        config: new.clone(),
        decree,
        entry,
        committed: 0,
        base: 3,
        retain: 0,
    };
    let group_check = Msg::GroupCheck {
        config: new.clone(),
        committed: 0,
        base: 3,
        retain: 0,
    };

    for group_check_first in [false, true] {
        let (mut sim, o) = Sim::start(replica_node(vec![old.clone()], Bugs::none()), id(3), None);
        let mut durable = DurableReplica::default();
        durable.check(&o).unwrap();
        for d in 1..=5 {
            let entry = Entry {
                ballot: 1,
                mutation: history(d),
            };
            let o = sim.msg(
                id(1),
                Msg::Prepare {
                    config: old.clone(),
                    decree: d,
                    entry,
                    committed: 0,
                    base: 0,
                    retain: 0,
                },
            );
            durable.check(&o).unwrap();
        }
        assert_eq!(part(sim.replica()).last_decree(), 5);

        let steps = if group_check_first {
            vec![group_check.clone(), prepare(5, five.clone())]
        } else {
            vec![prepare(5, five.clone()), group_check.clone()]
        };
        let mut five_sent = false;
        for m in steps {
            five_sent |= matches!(m, Msg::Prepare { .. });
            let o = sim.msg(id(2), m);
            durable.check(&o).unwrap();
            assert!(
                ok_acks(&o).is_empty(),
                "ACKed ahead of the missing decree 4: {o:?}"
            );
            let p = part(sim.replica());
            assert_eq!(p.config, new);
            assert_eq!(p.status, Status::Secondary);
            assert!(
                log_is_contiguous(p),
                "hole in a secondary's log: {:?}",
                p.log.keys().collect::<Vec<_>>()
            );
            assert_eq!(
                p.last_decree(),
                3,
                "the stale tail beyond base was kept: {:?}",
                p.log
            );
            if five_sent {
                assert_eq!(
                    p.early.get(&5),
                    Some(&five),
                    "the prepare of 5 was not kept for later"
                );
            }
        }
        // The prepare of 4 fills the gap: both are logged and ACKed at ballot 2.
        let o = sim.msg(id(2), prepare(4, four.clone()));
        durable.check(&o).unwrap();
        assert_eq!(ok_acks(&o), vec![(id(2), 2, 4), (id(2), 2, 5)]);
        let p = part(sim.replica());
        assert!(log_is_contiguous(p));
        let expected: BTreeMap<Decree, Entry> = (1..=3)
            .map(|d| {
                (
                    d,
                    Entry {
                        ballot: 1,
                        mutation: history(d),
                    },
                )
            })
            .chain([(4, four.clone()), (5, five.clone())])
            .collect();
        assert_eq!(p.log, expected);
        assert!(p.early.is_empty());
    }
}

/// The truncation keeps every entry of the new ballot or above and drops the older ones
/// beyond max(committed, base), decree by decree. A malformed prepare can log an entry
/// whose ballot is above its own configuration's (no correct primary sends one: entries
/// carry the ballot they are prepared at); when a later ballot is adopted that entry is
/// kept and the older entries below it are dropped, leaving a hole. Here: decree 1 at
/// ballot 2, decree 2 carrying ballot 3 inside a ballot-2 prepare; the group check of
/// ballot 3 (base 0) drops 1 and keeps 2. The fix would drop the whole suffix from the
/// first dropped decree (the new ballot's entries are all taken after the truncation),
/// or refuse a prepare whose entry ballot differs from its configuration's.
#[test]
fn a_future_ballot_entry_never_leaves_a_hole() {
    let (mut sim, _) = Sim::start(
        replica_node(vec![pc(2, Some(P), &[R, 3])], Bugs::none()),
        id(R),
        None,
    );
    let cur = pc(2, Some(P), &[R, 3]);
    let one = Entry {
        ballot: 2,
        mutation: history(1),
    };
    let two = Entry {
        ballot: 3,
        mutation: history(2),
    };
    sim.msg(
        id(P),
        Msg::Prepare {
            config: cur.clone(),
            decree: 1,
            entry: one,
            committed: 0,
            base: 0,
            retain: 0,
        },
    );
    sim.msg(
        id(P),
        Msg::Prepare {
            config: cur,
            decree: 2,
            entry: two,
            committed: 0,
            base: 0,
            retain: 0,
        },
    );
    assert_eq!(part(sim.replica()).last_decree(), 2);
    sim.msg(
        id(P),
        Msg::GroupCheck {
            config: pc(3, Some(P), &[R, 3]),
            committed: 0,
            base: 0,
            retain: 0,
        },
    );
    let p = part(sim.replica());
    assert!(
        log_is_contiguous(p),
        "hole in a secondary's log: {:?}",
        p.log.keys().collect::<Vec<_>>()
    );
}

/// The truncation keeps the committed prefix even when `base` is below it, keeps entries
/// of the new ballot, and does not happen again for later messages of the same ballot.
#[test]
fn new_ballot_truncation_keeps_the_committed_prefix_and_happens_once() {
    let old = pc(1, Some(1), &[2, 3]);
    let new = pc(2, Some(2), &[3]);
    let (mut sim, _) = Sim::start(replica_node(vec![old.clone()], Bugs::none()), id(3), None);
    for d in 1..=4 {
        let entry = Entry {
            ballot: 1,
            mutation: history(d),
        };
        sim.msg(
            id(1),
            Msg::Prepare {
                config: old.clone(),
                decree: d,
                entry,
                committed: 2,
                base: 0,
                retain: 0,
            },
        );
    }
    assert_eq!(part(sim.replica()).committed, 2);
    // base 1 < committed 2: the committed prefix stays, 3 and 4 go.
    sim.msg(
        id(2),
        Msg::GroupCheck {
            config: new.clone(),
            committed: 0,
            base: 1,
            retain: 0,
        },
    );
    let p = part(sim.replica());
    assert_eq!(p.log.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(p.committed, 2);
    // Entries of ballot 2 taken afterwards survive a later (duplicate) group check.
    let e3 = Entry {
        ballot: 2,
        mutation: mutation(11, 1, 30),
    };
    let o = sim.msg(
        id(2),
        Msg::Prepare {
            config: new.clone(),
            decree: 3,
            entry: e3.clone(),
            committed: 2,
            base: 1,
            retain: 0,
        },
    );
    assert_eq!(ok_acks(&o), vec![(id(2), 2, 3)]);
    sim.msg(
        id(2),
        Msg::GroupCheck {
            config: new,
            committed: 2,
            base: 1,
            retain: 0,
        },
    );
    assert_eq!(part(sim.replica()).log.get(&3), Some(&e3));
}

// =======================================================================================
// 2. Primary: writes, commits, duplicates, reads, reconfiguration
// =======================================================================================

#[derive(Clone, Debug)]
enum POp {
    /// Write the register (`write(G, req, value)`).
    Write {
        client: usize,
        req: ReqId,
        value: u8,
    },
    Ack {
        from: usize,
        ballot: Ballot,
        decree: Decree,
        ok: bool,
    },
    Read {
        client: usize,
        req: ReqId,
    },
}

fn arb_pop(max_decree: Decree, ack_from: &'static [usize]) -> impl Strategy<Value = POp> {
    prop_oneof![
        3 => (10usize..13, 1u32..5, 1u8..50).prop_map(|(client, req, value)| POp::Write { client, req, value }),
        6 => (prop::sample::select(ack_from), 0u32..4, 1..=max_decree, prop::bool::weighted(0.9))
            .prop_map(|(from, ballot, decree, ok)| POp::Ack { from, ballot, decree, ok }),
        1 => (10usize..13, 1u32..5).prop_map(|(client, req)| POp::Read { client, req }),
    ]
}

fn pop_msg(op: &POp) -> (usize, Msg) {
    match *op {
        POp::Write { client, req, value } => (client, write(G, req, value)),
        POp::Ack {
            from,
            ballot,
            decree,
            ok,
        } => (
            from,
            Msg::PrepareAck {
                gpid: G,
                ballot,
                decree,
                ok,
            },
        ),
        POp::Read { client, req } => (client, read(G, req)),
    }
}

/// The test's own account of the primary: which write got which decree, and which
/// secondaries ACKed each decree (at the current ballot, after it was logged).
#[derive(Default)]
struct PrimaryModel {
    decree_of: BTreeMap<(usize, ReqId), Decree>,
    value: BTreeMap<Decree, Value>,
    acks: BTreeMap<Decree, BTreeSet<usize>>,
}

impl PrimaryModel {
    fn fully_acked(&self, d: Decree, secs: &[usize]) -> bool {
        self.acks
            .get(&d)
            .is_some_and(|a| secs.iter().all(|s| a.contains(s)))
    }
    /// The register at decree `d` (`None`: never written).
    fn value_at(&self, d: Decree) -> Option<Value> {
        self.value.range(..=d).next_back().map(|(_, v)| v.clone())
    }
}

const SECS: [usize; 2] = [2, 3];

/// Drive a bootstrapped primary (ballot 1, secondaries 2 and 3) with `ops`, checking the
/// primary's rules after every step.
fn run_primary(bugs: Bugs, ops: &[POp]) -> Result<(), TestCaseError> {
    let (mut sim, o) = Sim::start(replica_node(vec![pc(1, Some(R), &SECS)], bugs), id(R), None);
    let mut durable = DurableReplica::default();
    durable.check(&o).map_err(fail)?;
    let mut model = PrimaryModel::default();
    for op in ops {
        let before = sim.replica().clone();
        let (src, msg) = pop_msg(op);
        let o = sim.msg(id(src), msg);
        let after = sim.replica().clone();
        let (bp, ap) = (part(&before), part(&after));
        let out = sends(&o);
        let prepares: Vec<(Id, Decree, Entry, PartitionConfig, Decree, Decree, Decree)> = out
            .iter()
            .filter_map(|(dst, m)| match m {
                Msg::Prepare {
                    config,
                    decree,
                    entry,
                    committed,
                    base,
                    retain,
                } => Some((
                    *dst,
                    *decree,
                    entry.clone(),
                    config.clone(),
                    *committed,
                    *base,
                    *retain,
                )),
                _ => None,
            })
            .collect();
        match *op {
            POp::Write { client, req, value } => {
                if let Some(&d) = model.decree_of.get(&(client, req)) {
                    // A duplicate: no second decree, no prepare; success only if committed.
                    prop_assert_eq!(&ap.log, &bp.log, "a duplicate write changed the log");
                    prop_assert!(prepares.is_empty(), "a duplicate write was prepared again");
                    let replies: Vec<_> = out
                        .iter()
                        .filter(|(dst, m)| {
                            *dst == id(client) && matches!(m, Msg::WriteReply { .. })
                        })
                        .collect();
                    if d <= bp.committed {
                        prop_assert_eq!(replies.len(), 1);
                        let ok = matches!(replies[0].1, Msg::WriteReply { req: r, result: Ok(()), .. } if r == req);
                        prop_assert!(
                            ok,
                            "duplicate of a committed write not answered with success: {:?}",
                            replies
                        );
                    } else {
                        prop_assert!(
                            replies.is_empty(),
                            "uncommitted duplicate answered: {:?}",
                            replies
                        );
                    }
                } else {
                    // A new write: the next decree, prepared to every secondary at the ballot.
                    let d = bp.last_decree() + 1;
                    prop_assert_eq!(ap.last_decree(), d);
                    let e = ap.log[&d].clone();
                    prop_assert_eq!(&e.mutation, &mutation(client, req, value));
                    prop_assert_eq!(e.ballot, ap.config.ballot);
                    let mut to: Vec<Id> = prepares.iter().map(|p| p.0).collect();
                    to.sort();
                    prop_assert_eq!(to, SECS.iter().map(|s| id(*s)).collect::<Vec<_>>());
                    for (_, pd, pe, pcfg, pcommitted, pbase, pretain) in &prepares {
                        prop_assert_eq!(*pd, d);
                        prop_assert_eq!(pe, &e);
                        prop_assert_eq!(pcfg, &ap.config);
                        prop_assert_eq!(*pcommitted, bp.committed);
                        // A bootstrapped primary never adopted its ballot: base 0.
                        prop_assert_eq!(*pbase, 0);
                        // No duplication: the members need keep nothing for one.
                        prop_assert_eq!(*pretain, Decree::MAX);
                    }
                    model.decree_of.insert((client, req), d);
                    model.value.insert(d, val(value));
                    model.acks.insert(d, BTreeSet::new());
                }
            }
            POp::Ack {
                from,
                ballot,
                decree,
                ok,
            } => {
                prop_assert!(prepares.is_empty());
                if ok
                    && ballot == ap.config.ballot
                    && SECS.contains(&from)
                    && bp.log.contains_key(&decree)
                    && decree > bp.committed
                {
                    model.acks.entry(decree).or_default().insert(from);
                }
            }
            POp::Read { client, req } => {
                let replies: Vec<_> = out
                    .iter()
                    .filter(|(dst, m)| *dst == id(client) && matches!(m, Msg::ReadReply { .. }))
                    .collect();
                prop_assert_eq!(
                    replies.len(),
                    1,
                    "read not answered (no barrier on a bootstrapped primary)"
                );
                let expected = model.value_at(ap.committed);
                prop_assert!(
                    matches!(&replies[0].1, Msg::ReadReply { req: r, result: Ok(v), .. } if *r == req && *v == expected),
                    "read returned {:?}, committed value is {:?}",
                    replies[0].1,
                    expected
                );
            }
        }
        // Commit: in order, only decrees every secondary ACKed at the current ballot, and
        // as soon as they are.
        prop_assert!(ap.committed >= bp.committed && ap.committed <= ap.last_decree());
        for d in 1..=ap.committed {
            prop_assert!(
                model.fully_acked(d, &SECS),
                "decree {} committed without ACKs from every secondary (acks {:?})",
                d,
                model.acks.get(&d)
            );
        }
        let ready = (1..)
            .take_while(|d| model.fully_acked(*d, &SECS))
            .last()
            .unwrap_or(0);
        prop_assert_eq!(ap.committed, ready, "a fully ACKed prefix is not committed");
        // Every write that commits in this step is answered once; no success before commit.
        for d in bp.committed + 1..=ap.committed {
            let (client, req) = model
                .decree_of
                .iter()
                .find(|(_, v)| **v == d)
                .map(|(k, _)| *k)
                .unwrap();
            let n = out
                .iter()
                .filter(|(dst, m)| {
                    *dst == id(client)
                        && matches!(m, Msg::WriteReply { req: r, result: Ok(()), .. } if *r == req)
                })
                .count();
            prop_assert_eq!(n, 1, "commit of decree {} answered {} times", d, n);
        }
        for (dst, m) in &out {
            if let Msg::WriteReply {
                req,
                result: Ok(()),
                ..
            } = m
            {
                let client: usize = (*dst).into();
                let d = model.decree_of[&(client, *req)];
                prop_assert!(d <= ap.committed, "success for uncommitted decree {}", d);
            }
        }
        durable.check(&o).map_err(fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Writes get consecutive decrees; commit only after every secondary's ACK at the
    /// current ballot; duplicates get no second decree; reads return the committed value.
    #[test]
    fn primary_write_commit_rules(ops in prop::collection::vec(arb_pop(8, &[2, 3, 4]), 1..60)) {
        run_primary(Bugs::none(), &ops)?;
    }
}

/// With `Bug::CommitWithoutAllAcks` the same property sees a commit with a missing ACK.
#[test]
fn primary_write_commit_rules_catch_commit_without_all_acks() {
    let bugs = Bugs::none().with(Bug::CommitWithoutAllAcks);
    let mut runner = deterministic_runner(256);
    let result = runner.run(
        &prop::collection::vec(arb_pop(8, &[2, 3, 4]), 1..60),
        |ops| run_primary(bugs, &ops),
    );
    let err = result.expect_err("the mutant CommitWithoutAllAcks went unnoticed");
    assert!(
        err.to_string()
            .contains("without ACKs from every secondary"),
        "{err}"
    );
}

#[test]
fn primary_duplicate_write_gets_no_second_decree() {
    let (mut sim, _) = Sim::start(
        replica_node(vec![pc(1, Some(R), &[2])], Bugs::none()),
        id(R),
        None,
    );
    let o = sim.msg(id(10), write(G, 1, 7));
    assert_eq!(sends_to(&o, id(2)).len(), 1);
    // Retry before commit: no new decree, no prepare, no answer yet.
    let o = sim.msg(id(10), write(G, 1, 7));
    assert!(sends(&o).is_empty(), "{o:?}");
    assert_eq!(part(sim.replica()).last_decree(), 1);
    // Another client's request 1 is a different write.
    sim.msg(id(11), write(G, 1, 8));
    assert_eq!(part(sim.replica()).last_decree(), 2);
    // The commit answers the client once.
    let o = sim.msg(
        id(2),
        Msg::PrepareAck {
            gpid: G,
            ballot: 1,
            decree: 1,
            ok: true,
        },
    );
    assert_eq!(
        sends_to(&o, id(10)),
        vec![Msg::WriteReply {
            gpid: G,
            req: 1,
            result: Ok(())
        }]
    );
    // A retry after commit: answered at once, still one decree.
    let o = sim.msg(id(10), write(G, 1, 7));
    assert_eq!(
        sends(&o),
        vec![(
            id(10),
            Msg::WriteReply {
                gpid: G,
                req: 1,
                result: Ok(())
            }
        )]
    );
    assert_eq!(part(sim.replica()).last_decree(), 2);
}

/// Recovered storage: log 1..=n at ballot 1 (primary 2, secondaries R and 3), commit point k.
fn storage_with_log(n: Decree, k: Decree, incarnation: u32) -> ReplicaStorage {
    let (_, o) = Sim::start(
        replica_node(vec![pc(1, Some(P), &[R, 3])], Bugs::none()),
        id(R),
        None,
    );
    let mut st = replica_saves(&o).pop().expect("first boot saves");
    st.incarnation = incarnation;
    let d = st.parts.get_mut(&G).unwrap();
    d.log = (1..=n)
        .map(|d| {
            (
                d,
                Entry {
                    ballot: 1,
                    mutation: history(d),
                },
            )
        })
        .collect();
    d.committed = k;
    st
}

#[derive(Clone, Debug)]
enum BOp {
    Read {
        client: usize,
        req: ReqId,
    },
    Ack {
        from: usize,
        ballot: Ballot,
        decree: Decree,
        ok: bool,
    },
    Write {
        client: usize,
        value: u8,
    },
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Adopting a config as primary: `base` is its last decree; re-prepare every
    /// uncommitted entry at the new ballot, GroupCheck with the commit point and `base`,
    /// and every prepare of the ballot (later writes too) carries `base`; then no read is answered before the barrier (the
    /// last decree inherited), and reads return the committed value.
    #[test]
    fn new_primary_reprepares_and_holds_reads_until_barrier(
        n in 1u32..6,
        k_frac in 0u32..=100,
        secs in prop::sample::select(vec![vec![], vec![3usize], vec![3, 4]]),
        ops in prop::collection::vec(prop_oneof![
            2 => (10usize..13, 1u32..4).prop_map(|(client, req)| BOp::Read { client, req }),
            6 => (prop::sample::select(vec![3usize, 4, 5]), 1u32..4, 1u32..8, prop::bool::weighted(0.9))
                .prop_map(|(from, ballot, decree, ok)| BOp::Ack { from, ballot, decree, ok }),
            1 => (20usize..23, 1u8..50).prop_map(|(client, value)| BOp::Write { client, value }),
        ], 0..40),
    ) {
        let k = n * k_frac / 100;
        let st = storage_with_log(n, k, 1);
        let (mut sim, o) = Sim::start(replica_node(vec![], Bugs::none()), id(R), Some(NodeStorage::Replica(st)));
        let mut durable = DurableReplica::default();
        durable.check(&o).map_err(fail)?;
        prop_assert_eq!(sim.replica().incarnation, 2);
        let new = pc(2, Some(R), &secs);
        let o = sim.msg(id(META), Msg::ConfigUpdate { config: new.clone(), incarnation: 2 });
        durable.check(&o).map_err(fail)?;
        let p = part(sim.replica()).clone();
        prop_assert_eq!(p.status, Status::Primary);
        prop_assert_eq!(p.read_barrier, n);
        prop_assert_eq!(p.base, n);
        for d in 1..=n {
            let e = p.log[&d].clone();
            prop_assert_eq!(&e.mutation, &history(d));
            prop_assert_eq!(e.ballot, if d <= k { 1 } else { 2 }, "decree {} has the wrong ballot", d);
        }
        for t in &secs {
            let to = sends_to(&o, id(*t));
            let checks: Vec<_> = to.iter().filter(|m| matches!(m, Msg::GroupCheck { .. })).collect();
            // A primary without duplications retains nothing for them: Decree::MAX.
            let expected = Msg::GroupCheck { config: new.clone(), committed: k, base: n, retain: Decree::MAX };
            prop_assert_eq!(checks, vec![&expected]);
            let mut prepared: Vec<Decree> = Vec::new();
            for m in &to {
                if let Msg::Prepare { config, decree, entry, committed, base, retain } = m {
                    prop_assert_eq!(config, &new);
                    prop_assert_eq!(*retain, Decree::MAX);
                    prop_assert_eq!(*committed, k);
                    prop_assert_eq!(*base, n);
                    prop_assert_eq!(entry, &Entry { ballot: 2, mutation: history(*decree) });
                    prepared.push(*decree);
                }
            }
            prepared.sort();
            prop_assert_eq!(prepared, (k + 1..=n).collect::<Vec<_>>(), "not every uncommitted entry was re-prepared");
        }
        if secs.is_empty() {
            prop_assert_eq!(p.committed, n, "a primary without secondaries commits what it inherited");
        }

        let mut acks: BTreeMap<Decree, BTreeSet<usize>> = BTreeMap::new();
        // Identical (client, req) reads waiting at once are one request.
        let mut pending: BTreeSet<(usize, ReqId)> = BTreeSet::new();
        let mut values: BTreeMap<Decree, Value> = (1..=n).map(|d| (d, val(d))).collect();
        for op in &ops {
            let bp = part(sim.replica()).clone();
            let o = match *op {
                BOp::Read { client, req } => sim.msg(id(client), read(G, req)),
                BOp::Ack { from, ballot, decree, ok } => {
                    if ok && ballot == 2 && secs.contains(&from) && bp.log.contains_key(&decree) && decree > bp.committed {
                        acks.entry(decree).or_default().insert(from);
                    }
                    sim.msg(id(from), Msg::PrepareAck { gpid: G, ballot, decree, ok })
                }
                BOp::Write { client, value } => {
                    let o = sim.msg(id(client), write(G, 1, value));
                    if part(sim.replica()).last_decree() > bp.last_decree() {
                        values.insert(part(sim.replica()).last_decree(), val(value));
                        acks.insert(part(sim.replica()).last_decree(), BTreeSet::new());
                    }
                    o
                }
            };
            durable.check(&o).map_err(fail)?;
            for (_, m) in sends(&o) {
                if let Msg::Prepare { base, .. } = m {
                    prop_assert_eq!(base, n, "a prepare of ballot 2 does not carry its base");
                }
            }
            let ap = part(sim.replica()).clone();
            for d in bp.committed + 1..=ap.committed {
                prop_assert!(acks.get(&d).is_some_and(|a| secs.iter().all(|s| a.contains(s))), "decree {} committed early", d);
            }
            let read_replies: Vec<Result<Option<Value>, ErrorCode>> = sends(&o)
                .into_iter()
                .filter_map(|(_, m)| match m {
                    Msg::ReadReply { result, .. } => Some(result),
                    _ => None,
                })
                .collect();
            if let BOp::Read { client, req } = *op {
                pending.insert((client, req));
            }
            if ap.committed < n {
                prop_assert!(read_replies.is_empty(), "read answered before the barrier: committed {} < {}", ap.committed, n);
            } else {
                prop_assert_eq!(read_replies.len(), pending.len(), "pending reads not answered once the barrier was reached");
                pending.clear();
                let v = values.range(..=ap.committed).next_back().map(|(_, v)| v.clone());
                for r in read_replies {
                    prop_assert_eq!(r, Ok(v.clone()));
                }
            }
        }
    }
}

#[test]
fn primary_staying_primary_under_a_new_ballot_reprepares_and_keeps_waiting_clients() {
    let (mut sim, _) = Sim::start(
        replica_node(vec![pc(1, Some(R), &[2, 3])], Bugs::none()),
        id(R),
        None,
    );
    sim.msg(id(10), write(G, 1, 5));
    sim.msg(id(11), write(G, 1, 6));
    // 3 died: the meta commits ballot 2 without it.
    let new = pc(2, Some(R), &[2]);
    let o = sim.msg(
        id(META),
        Msg::ConfigUpdate {
            config: new.clone(),
            incarnation: 1,
        },
    );
    let to2 = sends_to(&o, id(2));
    assert_eq!(part(sim.replica()).base, 2);
    assert!(to2.contains(&Msg::GroupCheck {
        config: new.clone(),
        committed: 0,
        base: 2,
        retain: Decree::MAX
    }));
    for d in 1..=2 {
        assert!(to2.iter().any(|m| matches!(m, Msg::Prepare { decree, entry, config, base: 2, retain, .. } if *decree == d && entry.ballot == 2 && *config == new && *retain == Decree::MAX)));
    }
    assert!(sends_to(&o, id(3)).is_empty());
    // An ACK at the old ballot no longer counts; ACKs at the new one commit and answer.
    let o = sim.msg(
        id(2),
        Msg::PrepareAck {
            gpid: G,
            ballot: 1,
            decree: 1,
            ok: true,
        },
    );
    assert!(sends(&o).is_empty());
    let o = sim.msg(
        id(2),
        Msg::PrepareAck {
            gpid: G,
            ballot: 2,
            decree: 1,
            ok: true,
        },
    );
    assert_eq!(
        sends(&o),
        vec![(
            id(10),
            Msg::WriteReply {
                gpid: G,
                req: 1,
                result: Ok(())
            }
        )]
    );
    let o = sim.msg(
        id(2),
        Msg::PrepareAck {
            gpid: G,
            ballot: 2,
            decree: 2,
            ok: true,
        },
    );
    assert_eq!(
        sends(&o),
        vec![(
            id(11),
            Msg::WriteReply {
                gpid: G,
                req: 1,
                result: Ok(())
            }
        )]
    );
}

// =======================================================================================
// 3. Recovery and durable claims
// =======================================================================================

fn arb_storage() -> impl Strategy<Value = ReplicaStorage> {
    let part = (
        (
            0u32..6,
            prop::option::of(1usize..5),
            prop::collection::vec(1usize..5, 0..3),
        ),
        (0u32..6, 0u32..=100, 0u32..=100),
        prop::collection::vec((0u32..5, 10usize..13, 1u32..5, 0u8..9), 6),
        prop_oneof![Just(Decree::MAX), 0u32..6],
    );
    (
        0u32..1_000_000,
        prop::collection::btree_map((0u8..3, 0u8..3), part, 0..4),
    )
        .prop_map(|(incarnation, parts)| {
            let mut st = storage_with_log(0, 0, incarnation);
            let template = st.parts.remove(&G).unwrap();
            for (
                (table, partition),
                ((ballot, primary, secs), (n, k_frac, s_frac), entries, retain),
            ) in parts
            {
                let gpid = Gpid { table, partition };
                let mut d = template.clone();
                d.config = pcg(gpid, ballot, primary, &secs);
                let log: BTreeMap<Decree, Entry> = (1..=n)
                    .map(|i| {
                        (
                            i,
                            Entry {
                                ballot: entries[i as usize - 1].0,
                                mutation: mutation(
                                    entries[i as usize - 1].1,
                                    entries[i as usize - 1].2,
                                    entries[i as usize - 1].3,
                                ),
                            },
                        )
                    })
                    .collect();
                d.committed = n * k_frac / 100;
                // Garbage collection collapsed a committed prefix into the snapshot.
                let collected = d.committed * s_frac / 100;
                for (dec, e) in log.range(..=collected) {
                    d.snapshot.fold(*dec, e);
                }
                d.log = log
                    .into_iter()
                    .filter(|(dec, _)| *dec > collected)
                    .collect();
                d.retain = retain;
                st.parts.insert(gpid, d);
            }
            st
        })
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Restart from storage: incarnation + 1, every part Inactive with its durable config,
    /// log and commit point and nothing volatile; the new incarnation is saved and
    /// announced with `Register`; and it serves nothing until the meta gives it a role.
    #[test]
    fn recovery_rebuilds_an_inactive_replica(st in arb_storage()) {
        let (mut sim, o) = Sim::start(replica_node(vec![pc(1, Some(R), &[2, 3])], Bugs::none()), id(R), Some(NodeStorage::Replica(st.clone())));
        let s = sim.replica().clone();
        prop_assert_eq!(s.incarnation, st.incarnation + 1);
        prop_assert_eq!(&s.broken, &None);
        prop_assert_eq!(s.parts.keys().collect::<Vec<_>>(), st.parts.keys().collect::<Vec<_>>(), "bootstrap config used on a restart");
        for (g, d) in &st.parts {
            let p = &s.parts[g];
            prop_assert_eq!(p.status, Status::Inactive);
            prop_assert_eq!(&p.config, &d.config);
            prop_assert_eq!(&p.log, &d.log);
            prop_assert_eq!(p.committed, d.committed);
            prop_assert_eq!(&p.snapshot, &d.snapshot);
            prop_assert_eq!(p.retain, d.retain);
            prop_assert_eq!(&p.dup_entries, &d.dups);
            prop_assert!(p.dups.is_empty(), "a duplicator runs on an inactive replica");
            prop_assert!(!p.recovering);
            prop_assert!(p.acks.is_empty() && p.waiting.is_empty() && p.learners.is_empty());
            prop_assert!(p.pending_reads.is_empty() && p.early.is_empty());
            prop_assert_eq!(p.read_barrier, 0);
        }
        let mut expected = st.clone();
        expected.incarnation += 1;
        prop_assert_eq!(replica_saves(&o), vec![expected]);
        prop_assert_eq!(sends(&o), vec![(id(META), Msg::Register { incarnation: st.incarnation + 1 })]);
        let mut durable = DurableReplica::default();
        durable.check(&o).map_err(fail)?;

        // Inactive: no writes, no reads, no prepares.
        for g in st.parts.keys() {
            let o = sim.msg(id(10), write(*g, 1, 1));
            prop_assert_eq!(sends(&o), vec![(id(10), Msg::WriteReply { gpid: *g, req: 1, result: Err(ErrorCode::NotPrimary) })]);
            let o = sim.msg(id(10), read(*g, 2));
            prop_assert_eq!(sends(&o), vec![(id(10), Msg::ReadReply { gpid: *g, req: 2, result: Err(ErrorCode::NotPrimary) })]);
            let ballot = s.parts[g].config.ballot;
            let config = pcg(*g, ballot, Some(2), &[R]);
            let e = Entry { ballot, mutation: mutation(10, 1, 1) };
            let o = sim.msg(id(2), Msg::Prepare { config, decree: s.parts[g].last_decree() + 1, entry: e, committed: 0, base: 0, retain: 0 });
            prop_assert!(ok_acks(&o).is_empty(), "an inactive replica ACKed a prepare at its own ballot");
            // A decision about the previous life is ignored.
            let o = sim.msg(id(META), Msg::ConfigUpdate { config: pcg(*g, ballot + 1, Some(R), &[]), incarnation: st.incarnation });
            prop_assert!(o.is_empty());
            prop_assert_eq!(s.parts[g].status, sim.replica().parts[g].status);
        }
        prop_assert_eq!(&sim.replica().parts, &s.parts);
    }
}

#[test]
fn first_boot_saves_and_registers() {
    // Not bootstrapped (a new node, or a wiped disk): no life yet, nothing saved; it asks
    // the meta server for a life, persists the one it is given, then registers it.
    let (mut sim, o) = Sim::start(replica_node(vec![], Bugs::none()), id(R), None);
    assert_eq!(sim.replica().incarnation, 0);
    assert!(replica_saves(&o).is_empty());
    assert_eq!(
        sends(&o),
        vec![(id(META), Msg::Register { incarnation: 0 })]
    );
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    let o = sim.msg(id(META), Msg::Registered { incarnation: 4 });
    assert_eq!(sim.replica().incarnation, 4);
    assert_eq!(
        replica_saves(&o)
            .iter()
            .map(|st| st.incarnation)
            .collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(
        sends(&o),
        vec![(id(META), Msg::Register { incarnation: 4 })]
    );
    durable.check(&o).unwrap();
    // Only the meta server assigns lives, and only to a node without one.
    let o = sim.msg(id(2), Msg::Registered { incarnation: 9 });
    assert!(o.is_empty() && sim.replica().incarnation == 4);
    let o = sim.msg(id(META), Msg::Registered { incarnation: 9 });
    assert!(o.is_empty() && sim.replica().incarnation == 4);
    // Bootstrapped: the role comes from the configuration, which is saved.
    let (sim, o) = Sim::start(
        replica_node(
            vec![
                pc(1, Some(R), &[2]),
                pcg(
                    Gpid {
                        table: 1,
                        partition: 1,
                    },
                    1,
                    Some(2),
                    &[3],
                ),
            ],
            Bugs::none(),
        ),
        id(R),
        None,
    );
    assert_eq!(
        sim.replica().parts.len(),
        1,
        "a replica hosts only the partitions it is a member of"
    );
    assert_eq!(part(sim.replica()).status, Status::Primary);
    let saved = replica_saves(&o);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].parts[&G].config, pc(1, Some(R), &[2]));
    DurableReplica::default().check(&o).unwrap();
}

/// Sends that report durable state are backed by what the step leaves durable, on the
/// commit path (the write's success is emitted before the new commit point is saved: the
/// driver makes the save durable before the reply leaves) and on demotion (the waiting
/// clients' NotPrimary claims nothing durable).
#[test]
fn durable_state_backs_every_claim_on_commit_and_demotion() {
    let (mut sim, o) = Sim::start(
        replica_node(vec![pc(1, Some(R), &[2])], Bugs::none()),
        id(R),
        None,
    );
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    for (src, m) in [
        (10, write(G, 1, 5)),
        (
            2,
            Msg::PrepareAck {
                gpid: G,
                ballot: 1,
                decree: 1,
                ok: true,
            },
        ),
        (11, write(G, 1, 6)),
        (
            META,
            Msg::ConfigUpdate {
                config: pc(2, Some(2), &[R]),
                incarnation: 1,
            },
        ),
    ] {
        let o = sim.msg(id(src), m);
        durable.check(&o).unwrap();
    }
    assert_eq!(durable.saved.unwrap().parts[&G].config.ballot, 2);
}
