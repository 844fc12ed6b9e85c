//! Safety and sometimes: shortest counterexamples with any thread count, where stateright's
//! own parallel BFS may report longer ones.

use petrel_checks::engine::{check, Fairness, Options, Trace};
use stateright::{Checker, Expectation, Model, Property};
use std::collections::{HashMap, VecDeque};

/// Three counters below `N`; `x` can also be doubled. Reaching `x == 37, y == 5, z == 3`
/// takes at least 8 + 5 + 3 = 16 steps (37 = 0b100101: 6 bits + 3 ones - 1 with +1/×2).
#[derive(Clone)]
struct Counters;

const N: u8 = 40;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Act {
    IncX,
    DoubleX,
    IncY,
    IncZ,
}

impl Model for Counters {
    type State = (u8, u8, u8);
    type Action = Act;
    fn init_states(&self) -> Vec<Self::State> {
        vec![(0, 0, 0)]
    }
    fn actions(&self, _: &Self::State, actions: &mut Vec<Self::Action>) {
        actions.extend([Act::IncX, Act::DoubleX, Act::IncY, Act::IncZ]);
    }
    fn next_state(&self, s: &Self::State, a: Self::Action) -> Option<Self::State> {
        let (x, y, z) = *s;
        let n = match a {
            Act::IncX => (x + 1, y, z),
            Act::DoubleX if x > 0 => (x * 2, y, z),
            Act::DoubleX => return None,
            Act::IncY => (x, y + 1, z),
            Act::IncZ => (x, y, z + 1),
        };
        (n.0 < N && n.1 < N && n.2 < N).then_some(n)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("not-target", |_, s| *s != (37, 5, 3)),
            Property::always("x-small", |_, s: &(u8, u8, u8)| s.0 < 20),
            Property::sometimes("y-and-z-big", |_, s: &(u8, u8, u8)| s.1 == 30 && s.2 == 30),
            Property::always("never-violated", |_, s: &(u8, u8, u8)| s.0 < N),
        ]
    }
}

impl Fairness for Counters {
    fn fair_class(&self, _: &Self::State, a: &Self::Action) -> Option<u64> {
        Some(a.id())
    }
}

impl Act {
    const fn id(&self) -> u64 {
        match self {
            Act::IncX => 0,
            Act::DoubleX => 1,
            Act::IncY => 2,
            Act::IncZ => 3,
        }
    }
}

/// Independent oracle: plain sequential BFS distance to the first state failing `ok`.
fn oracle_distance(m: &Counters, ok: fn(&(u8, u8, u8)) -> bool) -> Option<usize> {
    let mut dist = HashMap::new();
    let mut q = VecDeque::new();
    for s in m.init_states() {
        dist.insert(s, 0usize);
        q.push_back(s);
    }
    while let Some(s) = q.pop_front() {
        let d = dist[&s];
        if !ok(&s) {
            return Some(d);
        }
        for n in m.next_states(&s) {
            if let std::collections::hash_map::Entry::Vacant(e) = dist.entry(n) {
                e.insert(d + 1);
                q.push_back(n);
            }
        }
    }
    None
}

/// Replays a trace through the model: every step must be an enabled action leading to the
/// recorded state.
fn assert_replays(m: &Counters, t: &Trace<Counters>) {
    assert!(m.init_states().contains(&t.init));
    let mut cur = t.init;
    for (a, s) in &t.steps {
        assert_eq!(
            m.next_state(&cur, a.clone()),
            Some(*s),
            "step {a:?} from {cur:?}"
        );
        cur = *s;
    }
}

fn opts(threads: usize) -> Options {
    Options {
        threads,
        stop_when_decided: false,
        ..Options::default()
    }
}

#[test]
fn shortest_violation_with_one_and_two_threads() {
    let m = Counters;
    assert_eq!(oracle_distance(&m, |s| *s != (37, 5, 3)), Some(16));
    assert_eq!(oracle_distance(&m, |s| s.0 < 20), Some(6));
    let mut traces = Vec::new();
    for threads in [1, 2] {
        let r = check(&m, &opts(threads));
        assert!(r.complete && r.exhausted, "{:?}", r.stop_reason);
        assert_eq!(r.unique_states, 40 * 40 * 40);
        assert_eq!(r.properties.len(), 4);

        let p = r.property("not-target").expect("property reported");
        assert_eq!(p.expectation, Expectation::Always);
        assert!(!p.holds && p.conclusive);
        assert_eq!(p.checker, "bfs");
        let t = p.counterexample.as_ref().expect("counterexample");
        assert_eq!(t.len(), 16, "threads={threads}");
        assert_eq!(*t.last_state(), (37, 5, 3));
        assert_eq!(t.loop_start, None);
        assert_replays(&m, t);

        let p = r.property("x-small").expect("property reported");
        let t = p.counterexample.as_ref().expect("counterexample");
        assert_eq!(t.len(), 6);
        assert!(t.last_state().0 >= 20);
        assert_replays(&m, t);

        let p = r.property("y-and-z-big").expect("property reported");
        assert!(p.holds && p.conclusive);
        let t = p.counterexample.as_ref().expect("witness");
        assert_eq!(t.len(), 60);
        assert_replays(&m, t);

        let p = r.property("never-violated").expect("property reported");
        assert!(p.holds && p.conclusive && p.counterexample.is_none());
        traces.push(r);
    }
    // Same counterexamples whatever the thread count.
    for name in ["not-target", "x-small", "y-and-z-big"] {
        let a = traces[0]
            .property(name)
            .and_then(|p| p.counterexample.as_ref());
        let b = traces[1]
            .property(name)
            .and_then(|p| p.counterexample.as_ref());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{name}");
    }
}

#[test]
fn stateright_parallel_bfs_is_not_shorter() {
    let ours = check(&Counters, &opts(2));
    let ours_len = ours
        .property("not-target")
        .and_then(|p| p.counterexample.as_ref())
        .map(Trace::len)
        .expect("engine finds the violation");
    let theirs = Counters.checker().threads(2).spawn_bfs().join();
    let path = theirs
        .discovery("not-target")
        .expect("stateright finds it too");
    let theirs_len = path.into_actions().len();
    assert!(
        theirs_len >= ours_len,
        "stateright {theirs_len} < engine {ours_len}"
    );
}

#[test]
fn stops_early_once_everything_is_decided() {
    /// Only the always-properties that get violated.
    #[derive(Clone)]
    struct Decided;
    impl Model for Decided {
        type State = (u8, u8, u8);
        type Action = Act;
        fn init_states(&self) -> Vec<Self::State> {
            Counters.init_states()
        }
        fn actions(&self, s: &Self::State, a: &mut Vec<Self::Action>) {
            Counters.actions(s, a)
        }
        fn next_state(&self, s: &Self::State, a: Self::Action) -> Option<Self::State> {
            Counters.next_state(s, a)
        }
        fn properties(&self) -> Vec<Property<Self>> {
            vec![Property::always("x-small", |_, s: &(u8, u8, u8)| s.0 < 3)]
        }
    }
    impl Fairness for Decided {
        fn fair_class(&self, _: &Self::State, _: &Self::Action) -> Option<u64> {
            None
        }
    }
    let r = check(
        &Decided,
        &Options {
            threads: 2,
            ..Options::default()
        },
    );
    assert!(r.complete, "a decided run is complete");
    assert!(!r.exhausted, "but it did not explore everything");
    assert!(r.stop_reason.is_none());
    assert!(r.unique_states < 40 * 40 * 40);
    let p = r.property("x-small").expect("reported");
    assert!(!p.holds && p.conclusive);
    assert_eq!(p.counterexample.as_ref().map(Trace::len), Some(3));
}
