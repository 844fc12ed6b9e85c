//! Liveness: cycles (which stateright's `eventually` never reports), weak fairness, and
//! "stuck" states.

use petrel_checks::engine::{check, Fairness, Options, Report, Trace};
use stateright::{Checker, Model, Property};
use std::fmt::Debug;
use std::hash::Hash;

fn opts(threads: usize, fairness: bool) -> Options {
    Options {
        threads,
        fairness,
        ..Options::default()
    }
}

/// Replays `t`: each step is an enabled action of the previous state leading to the recorded
/// state; for a lasso, the last state equals the state before `loop_start`.
fn assert_valid<M>(m: &M, t: &Trace<M>)
where
    M: Model,
    M::State: PartialEq + Debug + Clone,
    M::Action: Clone + Debug,
{
    assert!(
        m.init_states().contains(&t.init),
        "trace starts in an initial state"
    );
    let mut cur = t.init.clone();
    for (a, s) in &t.steps {
        let mut acts = Vec::new();
        m.actions(&cur, &mut acts);
        let next = m.next_state(&cur, a.clone());
        assert_eq!(next.as_ref(), Some(s), "step {a:?} from {cur:?}");
        cur = s.clone();
    }
    if let Some(i) = t.loop_start {
        assert!(i < t.steps.len(), "the cycle has at least one step");
        assert_eq!(
            t.last_state(),
            t.state_before(i),
            "the cycle returns to its start"
        );
    }
}

/// Fairness classes of the actions of `s` that are enabled.
fn enabled_classes<M: Fairness>(m: &M, s: &M::State) -> Vec<u64>
where
    M::Action: Clone,
{
    let mut acts = Vec::new();
    m.actions(s, &mut acts);
    acts.into_iter()
        .filter(|a| m.next_state(s, a.clone()).is_some())
        .filter_map(|a| m.fair_class(s, &a))
        .collect()
}

/// A lasso is weakly fair: every class enabled in all cycle states is taken in the cycle.
fn assert_fair<M: Fairness>(m: &M, t: &Trace<M>)
where
    M::Action: Clone,
{
    let i = t.loop_start.expect("a lasso");
    let cycle_states: Vec<&M::State> = (i..t.steps.len()).map(|k| t.state_before(k)).collect();
    let taken: Vec<u64> = (i..t.steps.len())
        .filter_map(|k| m.fair_class(t.state_before(k), &t.steps[k].0))
        .collect();
    let first = enabled_classes(m, cycle_states[0]);
    for c in first {
        if cycle_states
            .iter()
            .all(|s| enabled_classes(m, s).contains(&c))
        {
            assert!(
                taken.contains(&c),
                "class {c} always enabled but never taken"
            );
        }
    }
}

fn eventually_result<M: Model>(r: &Report<M>, name: &str) -> (bool, Option<usize>, usize) {
    let p = r.property(name).expect("property reported");
    assert_eq!(p.checker, "scc");
    assert!(p.conclusive && r.complete, "{:?}", r.stop_reason);
    let t = p.counterexample.as_ref();
    (
        p.holds,
        t.and_then(|t| t.loop_start),
        t.map_or(0, Trace::len),
    )
}

// ---------------------------------------------------------------------------------------------

/// 0 → 1 → 2 → 0 forever, with an exit 2 → 3 (the goal) that is enabled only in state 2.
/// Weak fairness does not force the exit (it is not continuously enabled), so the pure
/// cycle is a real behaviour that never reaches 3. No ¬P state is terminal, so stateright's
/// `eventually` sees nothing.
#[derive(Clone)]
struct Ring;

impl Model for Ring {
    type State = u8;
    type Action = &'static str;
    fn init_states(&self) -> Vec<u8> {
        vec![0]
    }
    fn actions(&self, s: &u8, a: &mut Vec<&'static str>) {
        if *s < 3 {
            a.push("tick");
        }
        if *s == 2 {
            a.push("exit");
        }
    }
    fn next_state(&self, s: &u8, a: &'static str) -> Option<u8> {
        match a {
            "tick" => Some((s + 1) % 3),
            "exit" => Some(3),
            _ => None,
        }
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::eventually("reaches-3", |_, s| *s == 3)]
    }
}

impl Fairness for Ring {
    fn fair_class(&self, _: &u8, a: &&'static str) -> Option<u64> {
        Some(if *a == "tick" { 1 } else { 2 })
    }
}

#[test]
fn pure_cycle_is_reported_as_lasso() {
    let theirs = Ring.checker().spawn_bfs().join();
    assert!(
        theirs.discovery("reaches-3").is_none(),
        "stateright's eventually misses cycles"
    );
    for threads in [1, 2] {
        let r = check(&Ring, &opts(threads, true));
        let (holds, loop_start, len) = eventually_result(&r, "reaches-3");
        assert!(!holds);
        assert_eq!(loop_start, Some(0), "the loop starts at the initial state");
        assert_eq!(len, 3);
        let t = r.properties[0].counterexample.as_ref().expect("lasso");
        assert_valid(&Ring, t);
        assert_fair(&Ring, t);
        assert!(t.steps.iter().all(|(_, s)| *s != 3));
        assert_eq!(r.scc_count, 1);
    }
}

// ---------------------------------------------------------------------------------------------

/// Spin between 0 and 1 while `finish` (to 2, the goal) is enabled in both: the only cycle
/// avoiding the goal starves an always-enabled fair action, so under weak fairness the goal
/// is always reached; without fairness the spin is a violation.
#[derive(Clone)]
struct Spin;

impl Model for Spin {
    type State = u8;
    type Action = &'static str;
    fn init_states(&self) -> Vec<u8> {
        vec![0]
    }
    fn actions(&self, s: &u8, a: &mut Vec<&'static str>) {
        if *s < 2 {
            a.extend(["spin", "finish"]);
        }
    }
    fn next_state(&self, s: &u8, a: &'static str) -> Option<u8> {
        match a {
            "spin" => Some(1 - s),
            "finish" => Some(2),
            _ => None,
        }
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::eventually("finishes", |_, s| *s == 2)]
    }
}

impl Fairness for Spin {
    fn fair_class(&self, _: &u8, a: &&'static str) -> Option<u64> {
        Some(if *a == "spin" { 10 } else { 20 })
    }
}

#[test]
fn fairness_decides_the_spin() {
    for threads in [1, 2] {
        let fair = check(&Spin, &opts(threads, true));
        let (holds, _, _) = eventually_result(&fair, "finishes");
        assert!(holds, "weak fairness forces `finish`");
        assert!(fair.properties[0].counterexample.is_none());

        let unfair = check(&Spin, &opts(threads, false));
        let (holds, loop_start, len) = eventually_result(&unfair, "finishes");
        assert!(!holds, "without fairness the spin never finishes");
        assert_eq!(loop_start, Some(0));
        assert_eq!(len, 2);
        let t = unfair.properties[0].counterexample.as_ref().expect("lasso");
        assert_valid(&Spin, t);
        assert!(t.steps.iter().all(|(a, _)| *a == "spin"));
    }
}

// ---------------------------------------------------------------------------------------------

/// `work` (fair) reaches the goal, but an unfair `crash` leads to a state whose only action
/// is unfair noise: nothing forces progress there, so the system may stay forever.
#[derive(Clone)]
struct Crash;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum C {
    Start,
    Done,
    Crashed(u8),
}

impl Model for Crash {
    type State = C;
    type Action = &'static str;
    fn init_states(&self) -> Vec<C> {
        vec![C::Start]
    }
    fn actions(&self, s: &C, a: &mut Vec<&'static str>) {
        match s {
            C::Start => a.extend(["work", "crash"]),
            C::Crashed(_) => a.push("noise"),
            C::Done => {}
        }
    }
    fn next_state(&self, s: &C, a: &'static str) -> Option<C> {
        match (s, a) {
            (C::Start, "work") => Some(C::Done),
            (C::Start, "crash") => Some(C::Crashed(0)),
            (C::Crashed(k), "noise") => Some(C::Crashed(1 - k)),
            _ => None,
        }
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::eventually("done", |_, s| *s == C::Done)]
    }
}

impl Fairness for Crash {
    fn fair_class(&self, _: &C, a: &&'static str) -> Option<u64> {
        (*a == "work").then_some(1)
    }
}

#[test]
fn stuck_state_has_no_loop() {
    for threads in [1, 2] {
        let r = check(&Crash, &opts(threads, true));
        let (holds, loop_start, len) = eventually_result(&r, "done");
        assert!(!holds);
        assert_eq!(loop_start, None, "a stuck state is reported without a loop");
        assert_eq!(len, 1);
        let t = r.properties[0].counterexample.as_ref().expect("path");
        assert_valid(&Crash, t);
        assert_eq!(*t.last_state(), C::Crashed(0));
        assert!(
            enabled_classes(&Crash, t.last_state()).is_empty(),
            "no fair action enabled"
        );
    }
    // Without fairness a state with any enabled action is not stuck: the noise cycle is the
    // violation instead.
    let r = check(&Crash, &opts(1, false));
    let (holds, loop_start, len) = eventually_result(&r, "done");
    assert!(!holds);
    assert_eq!(loop_start, Some(1));
    assert_eq!(len, 3);
    assert_valid(
        &Crash,
        r.properties[0].counterexample.as_ref().expect("lasso"),
    );
}

// ---------------------------------------------------------------------------------------------

/// A ring of `LEN` states per lane, `LANES` lanes; each step advances the lane's position
/// (fair, class = lane) or switches lane (unfair). The goal is position `LEN - 1` of lane 0,
/// which lanes other than 0 never reach: lane 1 is a fair cycle far from the start, found only
/// after a long prefix. Big enough to run the parallel phases.
#[derive(Clone)]
struct Lanes;

const LANES: u32 = 300;
const LEN: u32 = 200;

impl Model for Lanes {
    type State = (u32, u32);
    type Action = u8;
    fn init_states(&self) -> Vec<(u32, u32)> {
        vec![(0, 0)]
    }
    fn actions(&self, _: &(u32, u32), a: &mut Vec<u8>) {
        a.extend([0, 1]);
    }
    fn next_state(&self, &(lane, pos): &(u32, u32), a: u8) -> Option<(u32, u32)> {
        match a {
            0 if lane == 0 && pos == LEN - 1 => None,
            0 => Some((lane, (pos + 1) % LEN)),
            _ if lane + 1 < LANES => Some((lane + 1, pos)),
            _ => None,
        }
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::eventually("lane0-end", |_, s| *s == (0, LEN - 1)),
            Property::eventually("pos-nonzero-or-lane-big", |_, s: &(u32, u32)| {
                s.1 != 0 || s.0 > 0
            }),
        ]
    }
}

impl Fairness for Lanes {
    fn fair_class(&self, s: &(u32, u32), a: &u8) -> Option<u64> {
        (*a == 0).then_some(s.0 as u64)
    }
}

#[test]
fn large_model_same_lasso_with_one_and_two_threads() {
    let mut shown = Vec::new();
    for threads in [1, 2] {
        let r = check(&Lanes, &opts(threads, true));
        assert_eq!(r.unique_states, (LANES * LEN) as usize);
        let (holds, loop_start, _) = eventually_result(&r, "lane0-end");
        assert!(!holds);
        let t = r.properties[0].counterexample.as_ref().expect("lasso");
        assert_valid(&Lanes, t);
        assert_fair(&Lanes, t);
        // Shortest prefix: one lane switch from the start, then the lane-1 ring.
        assert_eq!(loop_start, Some(1));
        assert_eq!(t.len(), 1 + LEN as usize);
        // Only the initial state violates P2 and every successor satisfies it.
        let (holds2, _, _) = eventually_result(&r, "pos-nonzero-or-lane-big");
        assert!(holds2);
        shown.push(format!("{t:?}"));
    }
    assert_eq!(shown[0], shown[1]);
}

// ---------------------------------------------------------------------------------------------

/// A ring of 70,000 states whose every step has its own fairness class: more classes than
/// an edge stores inline (2^16), so most are kept aside and must come back intact — for the
/// fairness test of the SCC and for replaying the lasso class by class.
#[derive(Clone)]
struct BigRing;

const BIG_RING: u32 = 70_000;

impl Model for BigRing {
    type State = u32;
    type Action = u32;
    fn init_states(&self) -> Vec<u32> {
        vec![0]
    }
    fn actions(&self, s: &u32, a: &mut Vec<u32>) {
        a.push(*s);
    }
    fn next_state(&self, s: &u32, _: u32) -> Option<u32> {
        Some((s + 1) % BIG_RING)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::eventually("never", |_, _| false)]
    }
}

impl Fairness for BigRing {
    fn fair_class(&self, s: &u32, _: &u32) -> Option<u64> {
        Some(*s as u64 * 3 + 1)
    }
}

#[test]
fn classes_beyond_16_bits_survive() {
    for threads in [1, 2] {
        let r = check(&BigRing, &opts(threads, true));
        assert!(r.complete, "{:?}", r.stop_reason);
        let (holds, loop_start, len) = eventually_result(&r, "never");
        assert!(
            !holds,
            "the ring is a fair cycle (no class is enabled throughout)"
        );
        assert_eq!(loop_start, Some(0));
        assert_eq!(len, BIG_RING as usize);
        let t = r.properties[0].counterexample.as_ref().expect("lasso");
        assert_valid(&BigRing, t);
        assert_fair(&BigRing, t);
    }
}
