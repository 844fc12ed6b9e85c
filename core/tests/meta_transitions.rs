//! Meta server transitions: the commit rule for proposals, one ballot step per committed
//! configuration, failure detection by incarnation, re-registration and cures.
mod common;

use common::*;
use petrel_core::meta::{MetaState, MetaStorage, TableSpec};
use petrel_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stateright::actor::{Command, Id};
use std::collections::BTreeMap;

const META: usize = 0;
const REPLICAS: [usize; 3] = [1, 2, 3];

fn table(partitions: u8, max_replica_count: u8) -> TableSpec {
    TableSpec {
        id: 1,
        partitions,
        max_replica_count,
        source: None,
    }
}

fn meta_node(partitions: u8, max: u8, members: u8, bugs: Bugs) -> Node {
    Node::Meta(meta_cfg(
        &REPLICAS,
        vec![table(partitions, max)],
        members,
        bugs,
    ))
}

/// A meta server bootstrapped with partition G = {primary 1, secondaries 2 and 3} at ballot 1.
fn bootstrapped() -> Sim {
    bootstrapped_with_out().0
}

fn bootstrapped_with_out() -> (Sim, stateright::actor::Out<Node>) {
    let (sim, o) = Sim::start(meta_node(1, 3, 3, Bugs::none()), id(META), None);
    assert_eq!(sim.meta().configs[&G], pc(1, Some(1), &[2, 3]));
    assert_eq!(meta_saves(&o).len(), 1);
    (sim, o)
}

fn config_updates(o: &stateright::actor::Out<Node>) -> Vec<(Id, PartitionConfig, u32)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::ConfigUpdate {
                config,
                incarnation,
            } => Some((dst, config, incarnation)),
            _ => None,
        })
        .collect()
}

/// Checks, step by step, what the meta server emits against what it has saved: each save
/// commits at most one configuration change, at exactly the previous ballot + 1 (a save
/// without one records other durable state: a replica's life, a duplication); every
/// configuration it tells anyone about is a committed one: saved before the step or by
/// one of the step's saves (the persistence contract in `common`: all saves of a step
/// are durable before any of its sends leaves, wherever they sit in the `Out`; a step
/// that commits two ballots of a partition may announce both); decisions name the
/// incarnation it believes alive (`alive`, the state after the step).
#[derive(Default)]
struct DurableMeta {
    saved: Option<MetaStorage>,
}

impl DurableMeta {
    fn check(
        &mut self,
        o: &stateright::actor::Out<Node>,
        alive: &BTreeMap<Id, u32>,
    ) -> Result<(), String> {
        // What is durable when the step's sends leave: the storage before it, and each
        // of its saves (a later one may supersede an earlier configuration).
        let mut durable: Vec<MetaStorage> = self.saved.iter().cloned().collect();
        for c in o.iter() {
            match c {
                Command::Save(NodeStorage::Meta(m)) => {
                    if let Some(prev) = &self.saved {
                        if prev.configs.keys().ne(m.configs.keys()) {
                            return Err(format!(
                                "partitions changed: {:?} -> {:?}",
                                prev.configs.keys(),
                                m.configs.keys()
                            ));
                        }
                        let changed: Vec<_> = m
                            .configs
                            .iter()
                            .filter(|(g, c)| prev.configs[g] != **c)
                            .collect();
                        if changed.len() > 1 {
                            return Err(format!(
                                "a save commits {} configuration changes: {changed:?}",
                                changed.len()
                            ));
                        }
                        if changed.is_empty() && m == prev {
                            return Err("a save that changes nothing".into());
                        }
                        if let Some((g, c)) = changed.first() {
                            if c.ballot != prev.configs[g].ballot + 1 {
                                return Err(format!(
                                    "committed ballot {} after {}: {c:?}",
                                    c.ballot, prev.configs[g].ballot
                                ));
                            }
                        }
                    }
                    self.saved = Some(m.clone());
                    durable.push(m.clone());
                }
                Command::Save(NodeStorage::Replica(_)) => {
                    return Err("meta saved replica storage".into())
                }
                _ => {}
            }
        }
        for c in o.iter() {
            let Command::Send(dst, m) = c else { continue };
            let committed = |g: &Gpid, c: Option<&PartitionConfig>| {
                durable.iter().any(|s| s.configs.get(g) == c)
            };
            match m {
                Msg::ConfigUpdate {
                    config,
                    incarnation,
                } => {
                    if !committed(&config.gpid, Some(config)) {
                        return Err(format!("ConfigUpdate of an unsaved config {config:?}"));
                    }
                    if config.primary != Some(*dst) || alive.get(dst) != Some(incarnation) {
                        return Err(format!("ConfigUpdate to {dst:?}/{incarnation} for {config:?} (alive {alive:?})"));
                    }
                }
                Msg::ProposeConfigReply {
                    result: Ok(config), ..
                } if !committed(&config.gpid, Some(config)) => {
                    return Err(format!(
                        "proposal acknowledged before it was saved: {config:?}"
                    ));
                }
                Msg::AddSecondary {
                    config,
                    node,
                    incarnation,
                } => {
                    if !committed(&config.gpid, Some(config))
                        || config.primary != Some(*dst)
                        || alive.get(dst) != Some(incarnation)
                    {
                        return Err(format!(
                            "AddSecondary to {dst:?}/{incarnation} with {config:?}"
                        ));
                    }
                    if config.is_member(*node) || !alive.contains_key(node) {
                        return Err(format!("AddSecondary of {node:?}: a member or not alive"));
                    }
                }
                Msg::QueryConfigReply {
                    gpid,
                    config,
                    incarnation,
                } => {
                    let saved = self.saved.as_ref().and_then(|s| s.configs.get(gpid));
                    if config.as_ref() != saved {
                        return Err(format!(
                            "QueryConfigReply {config:?} differs from the saved {saved:?}"
                        ));
                    }
                    let expected = config
                        .as_ref()
                        .and_then(|c| c.primary)
                        .and_then(|p| alive.get(&p).copied());
                    if *incarnation != expected {
                        return Err(format!("QueryConfigReply names incarnation {incarnation:?}, alive says {expected:?}"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The ballots of `G` a step's saves commit, after `from` (a save may record something
/// else than a configuration: a replica's new life).
fn committed_ballots(o: &stateright::actor::Out<Node>, from: Ballot) -> Vec<Ballot> {
    let mut ballots: Vec<Ballot> = meta_saves(o)
        .iter()
        .map(|s| s.configs[&G].ballot)
        .filter(|b| *b > from)
        .collect();
    ballots.dedup();
    ballots
}

/// After every step every partition is cured: a live primary with only live secondaries,
/// or a dead primary and no live secondary to promote; a partition never assigned has no
/// live replica to take it.
fn cured(s: &MetaState) -> Result<(), String> {
    for c in s.configs.values() {
        let alive = |n: &Id| s.alive.contains_key(n);
        let primary_ok = c.primary.is_some_and(|p| alive(&p));
        if primary_ok && !c.secondaries.iter().all(alive) {
            return Err(format!(
                "a dead secondary stays in {c:?} (alive {:?})",
                s.alive
            ));
        }
        if !primary_ok && c.secondaries.iter().any(alive) {
            return Err(format!(
                "no live primary, yet a live secondary was not promoted: {c:?} (alive {:?})",
                s.alive
            ));
        }
        if c.ballot == 0 && !s.alive.is_empty() {
            return Err(format!("unassigned partition with live replicas: {c:?}"));
        }
    }
    Ok(())
}

// =======================================================================================
// ProposeConfig
// =======================================================================================

#[derive(Clone, Debug)]
struct Proposal {
    /// 0: the current primary, else that replica (4 is not a replica of this cluster).
    src: usize,
    delta: i64,
    /// 0: the sender, 1: the current primary, 2: another replica, 3: none.
    primary: u8,
    secondaries: Vec<usize>,
    /// 0: the incarnation the meta believes alive, 1: the next one, 2: zero.
    life: u8,
    known_gpid: bool,
}

fn arb_proposal() -> impl Strategy<Value = Proposal> {
    (
        prop_oneof![3 => Just(0usize), 2 => 1usize..5],
        prop_oneof![2 => Just(1i64), 3 => -2i64..3],
        prop_oneof![4 => Just(0u8), 1 => 1u8..4],
        prop::collection::vec(1usize..5, 0..3),
        prop_oneof![4 => Just(0u8), 1 => 1u8..3],
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(src, delta, primary, secondaries, life, known_gpid)| Proposal {
                src,
                delta,
                primary,
                secondaries,
                life,
                known_gpid,
            },
        )
}

/// The proposal's message given the meta's state; and whether the rule says to commit it.
fn proposal_msg(p: &Proposal, s: &MetaState, gpid: Gpid) -> (Id, Msg, bool) {
    let cur = s.configs.get(&gpid).cloned().unwrap_or_default();
    let src = if p.src == 0 {
        cur.primary.unwrap_or(id(1))
    } else {
        id(p.src)
    };
    let ballot = (i64::from(cur.ballot) + p.delta).max(0) as Ballot;
    let primary = match p.primary {
        0 => Some(src),
        1 => cur.primary,
        2 => Some(if src == id(2) { id(3) } else { id(2) }),
        _ => None,
    };
    let alive = s.alive.get(&src).copied();
    let incarnation = match p.life {
        0 => alive.unwrap_or(1),
        1 => alive.unwrap_or(1) + 1,
        _ => 0,
    };
    let gpid = if p.known_gpid {
        gpid
    } else {
        Gpid {
            table: 9,
            partition: 0,
        }
    };
    let mut config = pcg(gpid, ballot, primary.map(usize::from), &p.secondaries);
    config.secondaries.retain(|m| Some(*m) != primary);
    config.max_replica_count = cur.max_replica_count;
    let valid = p.known_gpid
        && ballot == cur.ballot + 1
        && cur.primary == Some(src)
        && primary == Some(src)
        && alive == Some(incarnation);
    (
        src,
        Msg::ProposeConfig {
            config,
            incarnation,
        },
        valid,
    )
}

/// One proposal against `sim`: committed iff its ballot is current + 1, it comes from the
/// current primary's registered life and names the sender as primary.
fn check_proposal(
    sim: &mut Sim,
    p: &Proposal,
    durable: &mut DurableMeta,
) -> Result<(), TestCaseError> {
    let before = sim.meta().clone();
    let (src, msg, valid) = proposal_msg(p, &before, G);
    let Msg::ProposeConfig {
        config,
        incarnation,
    } = msg.clone()
    else {
        unreachable!()
    };
    let o = sim.msg(src, msg);
    let after = sim.meta().clone();
    durable
        .check(&o, &after.alive)
        .map_err(TestCaseError::fail)?;
    let replies: Vec<Msg> = sends_to(&o, src)
        .into_iter()
        .filter(|m| matches!(m, Msg::ProposeConfigReply { .. }))
        .collect();
    let saves = meta_saves(&o);
    if valid {
        prop_assert!(!saves.is_empty(), "a valid proposal was not saved");
        prop_assert_eq!(
            saves[0].configs.get(&G),
            Some(&config),
            "the first save is not the proposal"
        );
        let updates = config_updates(&o);
        prop_assert_eq!(updates.first(), Some(&(src, config.clone(), incarnation)));
        prop_assert_eq!(
            replies,
            vec![Msg::ProposeConfigReply {
                result: Ok(config.clone()),
                incarnation
            }]
        );
    } else {
        prop_assert!(
            saves.is_empty(),
            "an invalid proposal was committed: {:?} against {:?}",
            config,
            before.configs.get(&G)
        );
        prop_assert_eq!(&after, &before, "an invalid proposal changed the state");
        let answered = p.known_gpid && before.alive.get(&src) == Some(&incarnation);
        if answered {
            let current = before.configs[&G].clone();
            prop_assert_eq!(
                sends(&o),
                vec![(
                    src,
                    Msg::ProposeConfigReply {
                        result: Err(current),
                        incarnation
                    }
                )]
            );
        } else {
            prop_assert!(
                o.is_empty(),
                "answered a proposal from another life or for an unknown partition: {:?}",
                o
            );
        }
    }
    cured(&after).map_err(TestCaseError::fail)?;
    Ok(())
}

#[derive(Clone, Debug)]
enum Ev {
    Register { src: usize, incarnation: u32 },
    PeerDown { src: usize, incarnation: u32 },
    Propose(Proposal),
    Query { gpid: u8 },
}

fn arb_ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        2 => (1usize..6, 1u32..4).prop_map(|(src, incarnation)| Ev::Register { src, incarnation }),
        3 => (1usize..6, 0u32..4).prop_map(|(src, incarnation)| Ev::PeerDown { src, incarnation }),
        4 => arb_proposal().prop_map(Ev::Propose),
        1 => (0u8..3).prop_map(|gpid| Ev::Query { gpid }),
    ]
}

fn run_meta(
    bugs: Bugs,
    members: u8,
    partitions: u8,
    max: u8,
    evs: &[Ev],
) -> Result<(), TestCaseError> {
    let (mut sim, o) = Sim::start(meta_node(partitions, max, members, bugs), id(META), None);
    let mut durable = DurableMeta::default();
    durable
        .check(&o, &sim.meta().alive)
        .map_err(TestCaseError::fail)?;
    cured(sim.meta()).map_err(TestCaseError::fail)?;
    for ev in evs {
        match ev {
            Ev::Propose(p) => check_proposal(&mut sim, p, &mut durable)?,
            Ev::Register { src, incarnation } => {
                let before = sim.meta().clone();
                let o = sim.msg(
                    id(*src),
                    Msg::Register {
                        incarnation: *incarnation,
                    },
                );
                let after = sim.meta().clone();
                durable
                    .check(&o, &after.alive)
                    .map_err(TestCaseError::fail)?;
                // Only a newer life than the registered one is a restart; the registered
                // life again is the node announcing itself (it kept its role state).
                let known = before.lives.get(&id(*src)).copied();
                let stale = known.is_some_and(|k| k > *incarnation);
                let repeat =
                    known == Some(*incarnation) && before.alive.get(&id(*src)) == Some(incarnation);
                if !REPLICAS.contains(src) || stale || repeat {
                    prop_assert_eq!(
                        &after,
                        &before,
                        "a Register from a stranger, a repeat or an older life changed the state"
                    );
                    prop_assert!(o.is_empty());
                } else if known == Some(*incarnation) {
                    prop_assert_eq!(after.alive.get(&id(*src)), Some(incarnation));
                    prop_assert_eq!(&after.lives, &before.lives);
                    for (g, c) in &before.configs {
                        prop_assert!(
                            !c.is_member(id(*src)) || after.configs[g].is_member(id(*src)),
                            "the same life lost its role: {:?} -> {:?}",
                            c,
                            after.configs[g]
                        );
                    }
                } else {
                    prop_assert_eq!(after.alive.get(&id(*src)), Some(incarnation));
                    prop_assert_eq!(
                        after.lives.get(&id(*src)),
                        Some(incarnation),
                        "the new life is not recorded"
                    );
                    prop_assert!(
                        meta_saves(&o)
                            .iter()
                            .all(|st| st.lives.get(&id(*src)) == Some(incarnation)),
                        "the new life is not durable"
                    );
                    // The restarted node keeps no role, except as the only one alive of a
                    // partition it was primary of: then it is primary again, one ballot up.
                    for (g, c) in &before.configs {
                        if !c.is_member(id(*src)) {
                            continue;
                        }
                        let others = c
                            .members()
                            .any(|m| m != id(*src) && after.alive.contains_key(&m));
                        let n = &after.configs[g];
                        if c.primary == Some(id(*src)) && !others {
                            prop_assert_eq!(n.primary, Some(id(*src)));
                            prop_assert_eq!(
                                n.ballot,
                                c.ballot + 1,
                                "reassigned at ballot {} after {}",
                                n.ballot,
                                c.ballot
                            );
                            let update = (id(*src), n.clone(), *incarnation);
                            prop_assert!(
                                config_updates(&o).contains(&update),
                                "restarted last holder not told: {:?}",
                                o
                            );
                        } else {
                            prop_assert!(n.ballot > c.ballot);
                            prop_assert!(
                                !n.is_member(id(*src)),
                                "restarted member kept a role: {:?} -> {:?}",
                                c,
                                n
                            );
                        }
                    }
                }
                cured(&after).map_err(TestCaseError::fail)?;
            }
            Ev::PeerDown { src, incarnation } => {
                let before = sim.meta().clone();
                let o = sim.msg(
                    id(*src),
                    Msg::PeerDown {
                        incarnation: *incarnation,
                    },
                );
                let after = sim.meta().clone();
                durable
                    .check(&o, &after.alive)
                    .map_err(TestCaseError::fail)?;
                if before.alive.get(&id(*src)) != Some(incarnation) {
                    prop_assert_eq!(
                        &after,
                        &before,
                        "a PeerDown of another life changed the state"
                    );
                    prop_assert!(o.is_empty(), "a PeerDown of another life produced {:?}", o);
                } else {
                    prop_assert!(!after.alive.contains_key(&id(*src)));
                    for (g, c) in &before.configs {
                        let n = &after.configs[g];
                        // The dead primary is replaced by its first live secondary.
                        if c.primary == Some(id(*src)) {
                            let live: Vec<Id> = c
                                .secondaries
                                .iter()
                                .copied()
                                .filter(|m| after.alive.contains_key(m))
                                .collect();
                            if let Some(first) = live.first() {
                                prop_assert_eq!(n.primary, Some(*first));
                                prop_assert_eq!(&n.secondaries, &live[1..].to_vec());
                                prop_assert_eq!(n.ballot, c.ballot + 1);
                            } else {
                                prop_assert_eq!(n, c, "a partition with no live member changed");
                            }
                        }
                    }
                }
                cured(&after).map_err(TestCaseError::fail)?;
            }
            Ev::Query { gpid } => {
                let before = sim.meta().clone();
                let gpid = Gpid {
                    table: 1,
                    partition: *gpid,
                };
                let o = sim.msg(id(20), Msg::QueryConfig { gpid });
                prop_assert_eq!(sim.meta(), &before);
                prop_assert_eq!(sends(&o).len(), 1);
                durable
                    .check(&o, &before.alive)
                    .map_err(TestCaseError::fail)?;
            }
        }
        prop_assert_eq!(
            Some(&sim.meta().configs),
            durable.saved.as_ref().map(|s| &s.configs),
            "the configurations in memory differ from the saved ones"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// A single proposal against the bootstrapped configuration.
    #[test]
    fn propose_config_committed_iff_next_ballot_from_current_primary_life(p in arb_proposal()) {
        let (mut sim, o) = bootstrapped_with_out();
        let mut durable = DurableMeta::default();
        durable.check(&o, &sim.meta().alive).map_err(TestCaseError::fail)?;
        check_proposal(&mut sim, &p, &mut durable)?;
    }

    /// Arbitrary sequences of registrations, failure notices (current and stale lives),
    /// proposals and queries: every rule above after every step, every save one ballot
    /// step of one partition, every partition cured.
    #[test]
    fn meta_sequences_keep_commit_and_cure_rules(
        members in 0u8..4,
        partitions in 1u8..3,
        max in 1u8..4,
        evs in prop::collection::vec(arb_ev(), 1..40),
    ) {
        run_meta(Bugs::none(), members, partitions, max, &evs)?;
    }
}

/// With `Bug::MetaAcceptsStaleBallot` the proposal rule is caught.
#[test]
fn propose_rule_catches_meta_accepts_stale_ballot() {
    let bugs = Bugs::none().with(Bug::MetaAcceptsStaleBallot);
    let mut runner = deterministic_runner(256);
    let result = runner.run(&prop::collection::vec(arb_ev(), 1..40), |evs| {
        run_meta(bugs, 3, 1, 3, &evs)
    });
    let err = result.expect_err("the mutant MetaAcceptsStaleBallot went unnoticed");
    assert!(
        err.to_string().contains("invalid proposal was committed")
            || err.to_string().contains("committed ballot"),
        "{err}"
    );
}

#[test]
fn peer_down_with_a_stale_incarnation_changes_nothing() {
    let mut sim = bootstrapped();
    for (src, inc) in [(1, 0), (1, 2), (2, 7), (9, 1), (0, 1)] {
        let before = sim.meta().clone();
        let o = sim.msg(id(src), Msg::PeerDown { incarnation: inc });
        assert!(o.is_empty(), "{o:?}");
        assert_eq!(sim.meta(), &before);
    }
    // The current life's notice does act.
    let o = sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    assert_eq!(sim.meta().configs[&G], pc(2, Some(1), &[3]));
    assert_eq!(config_updates(&o), vec![(id(1), pc(2, Some(1), &[3]), 1)]);
    // A node that restarted (life 2) is not killed by the late notice of life 1.
    sim.msg(id(3), Msg::Register { incarnation: 2 });
    let before = sim.meta().clone();
    let o = sim.msg(id(3), Msg::PeerDown { incarnation: 1 });
    assert!(o.is_empty());
    assert_eq!(sim.meta(), &before);
}

#[test]
fn cure_promotes_a_live_secondary_when_the_primary_dies() {
    let mut sim = bootstrapped();
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    let next = pc(2, Some(2), &[3]);
    assert_eq!(sim.meta().configs[&G], next);
    assert_eq!(meta_saves(&o).len(), 1);
    assert_eq!(config_updates(&o), vec![(id(2), next, 1)]);
    // Then the new primary dies too: 3 is promoted.
    let o = sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    assert_eq!(sim.meta().configs[&G], pc(3, Some(3), &[]));
    assert_eq!(config_updates(&o), vec![(id(3), pc(3, Some(3), &[]), 1)]);
}

#[test]
fn register_of_the_restarted_last_member_reassigns_it_primary() {
    let mut sim = bootstrapped();
    sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    sim.msg(id(3), Msg::PeerDown { incarnation: 1 });
    assert_eq!(sim.meta().configs[&G], pc(3, Some(1), &[]));
    // The last member dies: nothing to promote, the meta waits for it.
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(sim.meta().configs[&G], pc(3, Some(1), &[]));
    // It restarts (life 2): primary again at ballot + 1, told under its new life.
    let o = sim.msg(id(1), Msg::Register { incarnation: 2 });
    let next = pc(4, Some(1), &[]);
    assert_eq!(sim.meta().configs[&G], next);
    assert_eq!(
        meta_saves(&o).last().map(|s| s.configs[&G].clone()),
        Some(next.clone())
    );
    assert_eq!(committed_ballots(&o, 3), vec![4]);
    assert_eq!(config_updates(&o), vec![(id(1), next, 2)]);
    // 2 restarts: it is no member (it was dropped), so the primary is asked to add it.
    let o = sim.msg(id(2), Msg::Register { incarnation: 2 });
    assert_eq!(
        sends(&o),
        vec![(
            id(1),
            Msg::AddSecondary {
                config: pc(4, Some(1), &[]),
                node: id(2),
                incarnation: 2
            }
        )]
    );
}

#[test]
fn register_of_a_restarted_member_with_live_peers_removes_it() {
    let mut sim = bootstrapped();
    let o = sim.msg(id(1), Msg::Register { incarnation: 2 });
    // Out of the configuration at ballot 2, then the cure promotes 2 at ballot 3.
    assert_eq!(committed_ballots(&o, 1), vec![2, 3]);
    assert_eq!(sim.meta().configs[&G], pc(3, Some(2), &[3]));
    assert_eq!(config_updates(&o), vec![(id(2), pc(3, Some(2), &[3]), 1)]);
}

/// A `Register` is a restart only if its incarnation is newer than the registered one.
/// A delayed `Register` of an earlier life (the network reorders; two restarts send
/// Register{2} and Register{3}) must not roll `alive` back to the dead life: the meta
/// would then name that life in every decision (the live replica ignores them:
/// incarnation mismatch), ignore the failure notice of the live one, and a partition
/// whose last holder it is would stay without a serving primary.
#[test]
fn register_of_an_older_incarnation_changes_nothing() {
    let mut sim = bootstrapped();
    sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    sim.msg(id(3), Msg::PeerDown { incarnation: 1 });
    sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    sim.msg(id(1), Msg::Register { incarnation: 3 });
    assert_eq!(sim.meta().alive.get(&id(1)), Some(&3));
    let before = sim.meta().clone();
    let o = sim.msg(id(1), Msg::Register { incarnation: 2 });
    assert!(
        o.is_empty(),
        "a late Register of an earlier life acted: {o:?}"
    );
    assert_eq!(sim.meta(), &before);
}

/// One cure pass handles every partition in turn, so one step may send an `AddSecondary`
/// for partition 0 ahead of the `Save` committing partition 1's promotion. Under the
/// persistence contract (`common`) that order is irrelevant; what counts is that every
/// configuration the step sends about is the one it leaves durable.
#[test]
fn multi_partition_cure_sends_only_durable_configs() {
    let (mut sim, o) = Sim::start(meta_node(2, 2, 2, Bugs::none()), id(META), None);
    let mut durable = DurableMeta::default();
    durable.check(&o, &sim.meta().alive).unwrap();
    let p1 = Gpid {
        table: 1,
        partition: 1,
    };
    let with_max2 = |mut c: PartitionConfig| {
        c.max_replica_count = 2;
        c
    };
    assert_eq!(sim.meta().configs[&G], with_max2(pc(1, Some(1), &[2])));
    assert_eq!(
        sim.meta().configs[&p1],
        with_max2(pcg(p1, 1, Some(2), &[3]))
    );
    let o = sim.msg(
        id(1),
        Msg::ProposeConfig {
            config: with_max2(pc(2, Some(1), &[])),
            incarnation: 1,
        },
    );
    durable.check(&o, &sim.meta().alive).unwrap();
    let o = sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    durable.check(&o, &sim.meta().alive).unwrap();
    assert_eq!(sim.meta().configs[&p1].primary, Some(id(3)));
    assert!(
        sends(&o)
            .iter()
            .any(|(_, m)| matches!(m, Msg::AddSecondary { .. })),
        "{o:?}"
    );
    cured(sim.meta()).unwrap();
}
