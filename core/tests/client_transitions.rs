//! Client transitions: failover on a dead node's life, redirects, the retry budget and
//! incarnation fencing of late failure notices.
mod common;

use common::*;
use petrel_core::client::{ClientCfg, ClientState, Phase};
use petrel_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stateright::actor::{Command, Out};
use std::time::Duration;

const META: usize = 0;
const ME: usize = 30;

fn client_cfg(max_attempts: u8, timeout: bool, bugs: Bugs) -> ClientCfg {
    ClientCfg {
        meta: id(META),
        gpid: G,
        ops: vec![
            ClientOp::put(K, "5"),
            ClientOp::get(K),
            ClientOp::put(K, "6"),
        ],
        max_attempts,
        request_timeout: timeout.then(|| Duration::from_secs(1)),
        first_req: 1,
        route: None,
        bugs,
    }
}

fn start(cfg: ClientCfg) -> Sim {
    let (sim, o) = Sim::start(Node::Client(cfg), id(ME), None);
    assert_eq!(sends(&o), vec![(id(META), Msg::QueryConfig { gpid: G })]);
    assert_eq!(sim.client().phase, Phase::Querying);
    sim
}

fn reply(ballot: Ballot, primary: Option<usize>, incarnation: Option<u32>) -> Msg {
    Msg::QueryConfigReply {
        gpid: G,
        config: Some(pc(ballot, primary, &[])),
        incarnation,
    }
}

/// The operation message the client sends for its current op (`req` = op index + 1).
fn is_op(m: &Msg) -> bool {
    matches!(m, Msg::Write { .. } | Msg::Read { .. })
}

fn only_query(o: &Out<Node>) -> bool {
    sends(o) == vec![(id(META), Msg::QueryConfig { gpid: G })]
}

/// The client backs off: no message, only the `QueryBackoff` timer.
fn only_backoff(o: &Out<Node>) -> bool {
    o.iter()
        .all(|c| matches!(c, Command::SetTimer(Timer::QueryBackoff, _)))
        && o.iter()
            .any(|c| matches!(c, Command::SetTimer(Timer::QueryBackoff, _)))
}

// =======================================================================================
// PeerDown of the life it sent to: refresh, never retry that life
// =======================================================================================

/// Sent to node 1 in life 1; 1 dies (PeerDown{1}); then arbitrary meta replies.
fn run_peer_down(
    bugs: Bugs,
    max_attempts: u8,
    replies: &[(Ballot, Option<usize>, Option<u32>)],
) -> Result<(), TestCaseError> {
    let mut sim = start(client_cfg(max_attempts, false, bugs));
    let o = sim.msg(id(META), reply(1, Some(1), Some(1)));
    prop_assert_eq!(
        &sim.client().phase,
        &Phase::Sent {
            target: id(1),
            incarnation: Some(1)
        }
    );
    prop_assert_eq!(sends(&o), vec![(id(1), write(G, 1, 5))]);

    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    prop_assert!(
        only_query(&o),
        "on PeerDown of the life it sent to, the client must ask the meta: {:?}",
        o
    );
    prop_assert_eq!(&sim.client().phase, &Phase::Querying);
    prop_assert_eq!(sim.client().attempts, 1);

    for (ballot, primary, incarnation) in replies {
        let before = sim.client().clone();
        let o = sim.msg(id(META), reply(*ballot, *primary, *incarnation));
        let s = sim.client().clone();
        prop_assert!(
            s.phase
                != Phase::Sent {
                    target: id(1),
                    incarnation: Some(1)
                },
            "the client went back to the dead life 1 of node 1: {:?}",
            s
        );
        for (dst, m) in sends(&o) {
            prop_assert!(
                !(dst == id(1) && is_op(&m) && s.incarnation == Some(1)),
                "re-sent to the dead life: {:?}",
                m
            );
        }
        if before.phase == Phase::Querying {
            // An answer is used only if it is not older than what the client knows.
            if before.config.as_ref().is_some_and(|c| *ballot < c.ballot) {
                prop_assert_eq!(&s.config, &before.config);
            }
            match &s.phase {
                Phase::Querying => prop_assert!(
                    false,
                    "an answer that did not help was asked again at once: {:?}",
                    o
                ),
                Phase::Backoff => {
                    // No usable primary named: ask again, but only after the pause.
                    prop_assert!(only_backoff(&o), "{:?}", o);
                    let o = sim.timeout(Timer::QueryBackoff);
                    prop_assert!(only_query(&o), "the backoff ended without a query: {:?}", o);
                    prop_assert_eq!(&sim.client().phase, &Phase::Querying);
                }
                Phase::Sent {
                    target,
                    incarnation,
                } => {
                    prop_assert_eq!(Some(*target), s.config.as_ref().and_then(|c| c.primary));
                    prop_assert!(incarnation.is_some());
                    prop_assert_eq!(sends(&o), vec![(*target, write(G, 1, 5))]);
                }
                Phase::Done => prop_assert!(false, "done without an answer"),
            }
        } else {
            prop_assert!(
                o.is_empty(),
                "a meta answer while not querying acted: {:?}",
                o
            );
        }
        prop_assert_eq!(
            sim.client().attempts,
            1,
            "a meta answer changed the attempt count"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    #[test]
    fn peer_down_of_the_sent_life_requeries_and_never_resends_to_it(
        max_attempts in 2u8..5,
        replies in prop::collection::vec((0u32..4, prop::option::weighted(0.9, 1usize..4), prop::option::weighted(0.9, 1u32..3)), 0..20),
    ) {
        run_peer_down(Bugs::none(), max_attempts, &replies)?;
    }
}

/// `Bug::ClientNoRefresh` retries the same node at once; `Bug::ClientIgnoresPeerDown`
/// keeps waiting on the dead life. The property above catches both.
#[test]
fn peer_down_rule_catches_client_no_refresh_and_ignores_peer_down() {
    for bug in [Bug::ClientNoRefresh, Bug::ClientIgnoresPeerDown] {
        let err = run_peer_down(Bugs::none().with(bug), 3, &[]).expect_err("mutant went unnoticed");
        assert!(err.to_string().contains("ask the meta"), "{bug:?}: {err}");
    }
    // Concretely, ClientNoRefresh re-sends the write to the dead node 1.
    let mut sim = start(client_cfg(
        3,
        false,
        Bugs::none().with(Bug::ClientNoRefresh),
    ));
    sim.msg(id(META), reply(1, Some(1), Some(1)));
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    assert_eq!(sends(&o), vec![(id(1), write(G, 1, 5))]);
}

#[test]
fn a_life_still_named_by_the_meta_is_polled_again_and_a_new_life_is_tried() {
    let mut sim = start(client_cfg(3, false, Bugs::none()));
    sim.msg(id(META), reply(1, Some(1), Some(1)));
    sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    // The meta's failure detector has not fired: it still names 1 in life 1. The client
    // asks again after a pause (it must not spin on the meta server).
    let o = sim.msg(id(META), reply(1, Some(1), Some(1)));
    assert!(only_backoff(&o), "{o:?}");
    assert_eq!(sim.client().phase, Phase::Backoff);
    // Answers arriving during the pause are not used.
    let o = sim.msg(id(META), reply(2, Some(1), Some(2)));
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(sim.client().phase, Phase::Backoff);
    let o = sim.timeout(Timer::QueryBackoff);
    assert!(only_query(&o), "{o:?}");
    // Neither does a stray deadline or a second backoff timer.
    assert!(
        sim.timeout(Timer::QueryBackoff).is_empty()
            && sim.timeout(Timer::RequestTimeout).is_empty()
    );
    // 1 restarted and was re-assigned (life 2): that is a different life, try it.
    let o = sim.msg(id(META), reply(2, Some(1), Some(2)));
    assert_eq!(sends(&o), vec![(id(1), write(G, 1, 5))]);
    assert_eq!(
        sim.client().phase,
        Phase::Sent {
            target: id(1),
            incarnation: Some(2)
        }
    );
}

// =======================================================================================
// Redirects, the retry budget, late notices
// =======================================================================================

#[derive(Clone, Debug)]
enum Ev {
    /// The target answers with an error from a live node.
    Redirect(ErrorCode),
    /// The target's life dies.
    PeerDown,
    /// The request deadline fires.
    Timeout,
    /// The target answers with success.
    Success,
    /// A failure notice for another life of the target.
    LatePeerDown,
    /// A failure notice about another node.
    OtherPeerDown,
    /// A reply for another request, or from another node.
    StrayReply { other_req: bool },
}

fn arb_ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => prop::sample::select(vec![ErrorCode::NotPrimary, ErrorCode::Recovering, ErrorCode::UnknownPartition, ErrorCode::InvalidVersion])
            .prop_map(Ev::Redirect),
        2 => Just(Ev::PeerDown),
        2 => Just(Ev::Timeout),
        1 => Just(Ev::Success),
        1 => Just(Ev::LatePeerDown),
        1 => Just(Ev::OtherPeerDown),
        1 => any::<bool>().prop_map(|other_req| Ev::StrayReply { other_req }),
    ]
}

fn reply_msg(s: &ClientState, cfg: &ClientCfg, result: Result<(), ErrorCode>, req: ReqId) -> Msg {
    match cfg.ops[s.op as usize] {
        ClientOp::Put(..) | ClientOp::Del(_) => Msg::WriteReply {
            gpid: G,
            req,
            result,
        },
        ClientOp::Get(_) => Msg::ReadReply {
            gpid: G,
            req,
            result: result.map(|()| Some(val(5))),
        },
    }
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Redirects cost no attempt; each dead-node failure (PeerDown of the sent life, a
    /// deadline) costs one; at `max_attempts` the op reports `Failed` and the client stops
    /// for good; late or unrelated notices and stray replies change nothing.
    #[test]
    fn retry_budget_counts_only_dead_node_failures(
        max_attempts in 1u8..5,
        timeout in any::<bool>(),
        evs in prop::collection::vec(arb_ev(), 1..40),
    ) {
        let cfg = client_cfg(max_attempts, timeout, Bugs::none());
        let mut sim = start(cfg.clone());
        let mut life = 0u32;
        let mut node = 0usize;
        let (mut attempts, mut results): (u8, Vec<OpResult>) = (0, Vec::new());
        for ev in &evs {
            if sim.client().done() {
                // Stopped: nothing moves it any more.
                let before = sim.client().clone();
                let mut outs = vec![
                    sim.msg(id(META), reply(9, Some(1), Some(9))),
                    sim.timeout(Timer::RequestTimeout),
                    sim.timeout(Timer::QueryBackoff),
                ];
                outs.push(sim.msg(id(1), Msg::PeerDown { incarnation: 9 }));
                prop_assert!(outs.iter().all(|o| o.is_empty()), "a finished client acted: {:?}", outs);
                prop_assert_eq!(sim.client(), &before);
                break;
            }
            // Route: the meta names a fresh life of the next node.
            if sim.client().phase == Phase::Querying {
                node = node % 3 + 1;
                life += 1;
                let o = sim.msg(id(META), reply(life, Some(node), Some(life)));
                prop_assert_eq!(&sim.client().phase, &Phase::Sent { target: id(node), incarnation: Some(life) });
                let op = sends(&o);
                prop_assert_eq!(op.len(), 1);
                prop_assert!(op[0].0 == id(node) && is_op(&op[0].1));
                let timers: Vec<_> = o.iter().filter(|c| matches!(c, Command::SetTimer(Timer::RequestTimeout, _))).collect();
                prop_assert_eq!(timers.len(), usize::from(timeout), "request deadline armed iff configured");
            }
            if matches!(ev, Ev::Timeout) && !timeout {
                continue; // no deadline armed: no such timer fires
            }
            let before = sim.client().clone();
            let req = ReqId::from(before.op) + 1;
            let o = match ev {
                Ev::Redirect(e) => sim.msg(id(node), reply_msg(&before, &cfg, Err(*e), req)),
                Ev::PeerDown => sim.msg(id(node), Msg::PeerDown { incarnation: life }),
                Ev::Timeout => sim.timeout(Timer::RequestTimeout),
                Ev::Success => sim.msg(id(node), reply_msg(&before, &cfg, Ok(()), req)),
                Ev::LatePeerDown => sim.msg(id(node), Msg::PeerDown { incarnation: life + 7 }),
                Ev::OtherPeerDown => sim.msg(id(node % 3 + 1), Msg::PeerDown { incarnation: life }),
                Ev::StrayReply { other_req: true } => sim.msg(id(node), reply_msg(&before, &cfg, Ok(()), req + 1)),
                Ev::StrayReply { other_req: false } => sim.msg(id(node % 3 + 1), reply_msg(&before, &cfg, Ok(()), req)),
            };
            let s = sim.client().clone();
            let cancelled = o.iter().any(|c| matches!(c, Command::CancelTimer(Timer::RequestTimeout)));
            match ev {
                Ev::Redirect(_) => {
                    prop_assert_eq!(s.attempts, attempts, "a redirect cost an attempt");
                    prop_assert_eq!(&s.phase, &Phase::Querying);
                    prop_assert!(only_query(&o), "a redirect must refresh from the meta: {:?}", o);
                    prop_assert_eq!(s.suspect, None, "a live node that redirected is not suspect");
                    prop_assert_eq!(cancelled, timeout);
                }
                Ev::PeerDown | Ev::Timeout => {
                    attempts += 1;
                    prop_assert_eq!(cancelled, timeout);
                    if attempts >= max_attempts {
                        let err = if matches!(ev, Ev::PeerDown) { ErrorCode::PeerDown } else { ErrorCode::Timeout };
                        results.push(OpResult::Failed(err));
                        prop_assert_eq!(&s.phase, &Phase::Done, "budget spent but the client goes on");
                        prop_assert!(sends(&o).is_empty(), "gave up yet sent {:?}", o);
                    } else {
                        prop_assert_eq!(s.attempts, attempts);
                        prop_assert_eq!(&s.phase, &Phase::Querying);
                        prop_assert!(sends(&o).iter().all(|(dst, _)| *dst == id(META)), "retried without asking the meta: {:?}", o);
                        if matches!(ev, Ev::PeerDown) {
                            prop_assert_eq!(s.suspect, Some((id(node), life)));
                        }
                    }
                }
                Ev::Success => {
                    results.push(match cfg.ops[before.op as usize] {
                        ClientOp::Put(..) | ClientOp::Del(_) => OpResult::WriteOk,
                        ClientOp::Get(_) => OpResult::ReadOk(Some(val(5))),
                    });
                    attempts = 0;
                    prop_assert_eq!(s.op, before.op + 1);
                    prop_assert_eq!(s.attempts, 0);
                    prop_assert_eq!(cancelled, timeout);
                    if s.op as usize == cfg.ops.len() {
                        prop_assert_eq!(&s.phase, &Phase::Done);
                    }
                }
                Ev::LatePeerDown | Ev::OtherPeerDown | Ev::StrayReply { .. } => {
                    prop_assert!(o.is_empty(), "{:?} acted: {:?}", ev, o);
                    prop_assert_eq!(&s, &before);
                }
            }
            prop_assert_eq!(&s.results, &results);
        }
    }
}

#[test]
fn a_late_peer_down_of_an_earlier_life_is_ignored() {
    let mut sim = start(client_cfg(3, false, Bugs::none()));
    sim.msg(id(META), reply(3, Some(1), Some(2)));
    let before = sim.client().clone();
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(sim.client(), &before);
    // While querying, no PeerDown applies at all.
    sim.msg(id(1), Msg::PeerDown { incarnation: 2 });
    let before = sim.client().clone();
    assert_eq!(before.phase, Phase::Querying);
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 2 });
    assert!(o.is_empty());
    assert_eq!(sim.client(), &before);
}

#[test]
fn after_max_attempts_the_client_reports_failed_and_stops() {
    let mut sim = start(client_cfg(2, false, Bugs::none()));
    sim.msg(id(META), reply(1, Some(1), Some(1)));
    sim.msg(id(1), Msg::PeerDown { incarnation: 1 });
    sim.msg(id(META), reply(2, Some(2), Some(1)));
    let o = sim.msg(id(2), Msg::PeerDown { incarnation: 1 });
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(
        sim.client().results,
        vec![OpResult::Failed(ErrorCode::PeerDown)]
    );
    assert!(sim.client().done());
    let o = sim.msg(id(META), reply(3, Some(3), Some(1)));
    assert!(o.is_empty(), "{o:?}");
}

#[test]
fn redirects_alone_never_exhaust_the_budget() {
    let mut sim = start(client_cfg(1, false, Bugs::none()));
    for i in 0..20 {
        sim.msg(id(META), reply(i, Some(1), Some(1)));
        let o = sim.msg(
            id(1),
            Msg::WriteReply {
                gpid: G,
                req: 1,
                result: Err(ErrorCode::NotPrimary),
            },
        );
        assert!(only_query(&o), "{o:?}");
        assert_eq!(sim.client().attempts, 0);
        assert!(sim.client().results.is_empty());
    }
}

#[test]
fn a_client_with_no_ops_is_done_at_once() {
    let mut cfg = client_cfg(3, false, Bugs::none());
    cfg.ops.clear();
    let (sim, o) = Sim::start(Node::Client(cfg), id(ME), None);
    assert!(o.is_empty());
    assert!(sim.client().done());
}

/// A `PeerDown` of life 0 (the driver could not connect at all, so it never learned the
/// life it dialled) may be about an earlier send to an earlier life: it costs no attempt
/// and casts no suspicion; the client backs off, asks the meta again and resends.
#[test]
fn a_peer_down_of_life_zero_backs_off_without_suspicion() {
    let mut sim = start(client_cfg(3, false, Bugs::none()));
    sim.msg(id(META), reply(1, Some(1), Some(4)));
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 0 });
    assert!(
        o.iter()
            .any(|c| matches!(c, Command::SetTimer(Timer::QueryBackoff, _))),
        "{o:?}"
    );
    assert!(
        !o.iter().any(|c| matches!(c, Command::Send(..))),
        "no message before the pause: {o:?}"
    );
    assert_eq!(sim.client().phase, Phase::Backoff);
    assert_eq!(sim.client().attempts, 0);
    assert_eq!(sim.client().suspect, None);
    // After the pause it asks again; the same live primary is then retried.
    let o = sim.timeout(Timer::QueryBackoff);
    assert!(only_query(&o), "{o:?}");
    let o = sim.msg(id(META), reply(1, Some(1), Some(4)));
    assert!(o.iter().any(|c| matches!(c, Command::Send(dst, Msg::Write { .. } | Msg::Read { .. }) if *dst == id(1))), "{o:?}");
    // The real life's failure moves the client to node 2; a late life-0 notice about
    // node 1 then says nothing about the target.
    sim.msg(id(1), Msg::PeerDown { incarnation: 4 });
    assert_eq!(sim.client().attempts, 1);
    sim.msg(id(META), reply(2, Some(2), Some(1)));
    assert_eq!(
        sim.client().phase,
        Phase::Sent {
            target: id(2),
            incarnation: Some(1)
        }
    );
    let before = sim.client().clone();
    let o = sim.msg(id(1), Msg::PeerDown { incarnation: 0 });
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(sim.client(), &before);
}
