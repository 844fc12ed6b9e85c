//! Randomised cross-check of the engine against brute force on small random graphs.
//!
//! The liveness oracle shares no code or algorithm with the engine: instead of Tarjan's
//! maximal components it enumerates every subset of ¬P states and asks whether the subset is
//! strongly connected and weakly fair on its own (the set of states a behaviour visits
//! infinitely often is exactly such a subset). Safety distances come from a plain BFS.

use petrel_checks::engine::{check, Fairness, Options, Report, Trace};
use stateright::{Model, Property};
use std::collections::VecDeque;

/// Edge target that makes the action disabled (`next_state` returns `None`).
const DISABLED: u16 = u16::MAX;

#[derive(Clone, Debug)]
struct RandomGraph {
    inits: Vec<u16>,
    /// Per node: (target or DISABLED, fairness class).
    edges: Vec<Vec<(u16, Option<u64>)>>,
    goal: Vec<bool>,
    bad: Vec<bool>,
    inside: Vec<bool>,
}

impl Model for RandomGraph {
    type State = u16;
    type Action = u16;
    fn init_states(&self) -> Vec<u16> {
        self.inits.clone()
    }
    fn actions(&self, s: &u16, a: &mut Vec<u16>) {
        a.extend(0..self.edges[*s as usize].len() as u16);
    }
    fn next_state(&self, s: &u16, a: u16) -> Option<u16> {
        let t = self.edges[*s as usize][a as usize].0;
        (t != DISABLED).then_some(t)
    }
    fn within_boundary(&self, s: &u16) -> bool {
        self.inside[*s as usize]
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::eventually("goal", |m: &Self, s: &u16| m.goal[*s as usize]),
            Property::always("not-bad", |m: &Self, s: &u16| !m.bad[*s as usize]),
            Property::sometimes("bad", |m: &Self, s: &u16| m.bad[*s as usize]),
        ]
    }
}

impl Fairness for RandomGraph {
    fn fair_class(&self, s: &u16, a: &u16) -> Option<u64> {
        self.edges[*s as usize][*a as usize].1
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn random_graph(rng: &mut Rng, n: usize, out: (u64, u64), classes: u64, goal: u64) -> RandomGraph {
    let edges = (0..n)
        .map(|_| {
            (0..out.0 + rng.below(out.1 - out.0 + 1))
                .map(|_| {
                    let t = if rng.chance(8) {
                        DISABLED
                    } else {
                        rng.below(n as u64) as u16
                    };
                    let c = if rng.chance(30) {
                        None
                    } else {
                        Some(rng.below(classes))
                    };
                    (t, c)
                })
                .collect()
        })
        .collect();
    RandomGraph {
        inits: (0..1 + rng.below(2))
            .map(|_| rng.below(n as u64) as u16)
            .collect(),
        edges,
        goal: (0..n).map(|_| rng.chance(goal)).collect(),
        bad: (0..n).map(|_| rng.chance(8)).collect(),
        inside: (0..n).map(|_| !rng.chance(8)).collect(),
    }
}

/// What brute force says about `eventually goal`.
struct Oracle {
    violated: bool,
    /// BFS distance (inside G¬P) from an initial state to the nearest violating state.
    nearest: Option<usize>,
    /// Shortest distance to a bad state.
    bad_distance: Option<usize>,
}

fn enabled_fair(m: &RandomGraph, v: usize) -> Vec<u64> {
    m.edges[v]
        .iter()
        .filter(|(t, _)| *t != DISABLED)
        .filter_map(|(_, c)| *c)
        .collect()
}

fn is_stuck(m: &RandomGraph, v: usize, fairness: bool) -> bool {
    if fairness {
        enabled_fair(m, v).is_empty()
    } else {
        m.edges[v].iter().all(|(t, _)| *t == DISABLED)
    }
}

/// BFS from the in-boundary initial states through nodes accepted by `through`.
fn bfs(m: &RandomGraph, through: impl Fn(usize) -> bool) -> Vec<Option<usize>> {
    let n = m.edges.len();
    let mut dist = vec![None; n];
    let mut q = VecDeque::new();
    for &i in &m.inits {
        let i = i as usize;
        if m.inside[i] && through(i) && dist[i].is_none() {
            dist[i] = Some(0);
            q.push_back(i);
        }
    }
    while let Some(u) = q.pop_front() {
        for &(t, _) in &m.edges[u] {
            let t = t as usize;
            if t != DISABLED as usize && m.inside[t] && through(t) && dist[t].is_none() {
                dist[t] = Some(dist[u].unwrap_or(0) + 1);
                q.push_back(t);
            }
        }
    }
    dist
}

fn oracle(m: &RandomGraph, fairness: bool) -> Oracle {
    let n = m.edges.len();
    let reach = bfs(m, |_| true);
    let bad_distance = (0..n).filter(|&v| m.bad[v]).filter_map(|v| reach[v]).min();
    let in_g = bfs(m, |v| !m.goal[v]);
    let g: Vec<usize> = (0..n).filter(|&v| in_g[v].is_some()).collect();
    let mut target = vec![false; n];
    for &v in &g {
        if is_stuck(m, v, fairness) {
            target[v] = true;
        }
    }
    // Every subset of G¬P.
    for mask in 1u32..(1 << g.len()) {
        let set: Vec<usize> = (0..g.len())
            .filter(|i| mask >> i & 1 == 1)
            .map(|i| g[i])
            .collect();
        let member = |v: usize| set.contains(&v);
        let inner: Vec<(usize, usize, Option<u64>)> = set
            .iter()
            .flat_map(|&u| m.edges[u].iter().map(move |&(t, c)| (u, t as usize, c)))
            .filter(|&(_, t, _)| t != DISABLED as usize && member(t))
            .collect();
        if inner.is_empty() {
            continue;
        }
        // Strongly connected: every member reaches every member along inner edges.
        let strongly = set.iter().all(|&s| {
            let mut seen = vec![s];
            let mut stack = vec![s];
            while let Some(u) = stack.pop() {
                for &(a, b, _) in &inner {
                    if a == u && !seen.contains(&b) {
                        seen.push(b);
                        stack.push(b);
                    }
                }
            }
            set.iter().all(|v| seen.contains(v))
        });
        if !strongly {
            continue;
        }
        let fair = !fairness || {
            let always: Vec<u64> = enabled_fair(m, set[0])
                .into_iter()
                .filter(|c| set.iter().all(|&v| enabled_fair(m, v).contains(c)))
                .collect();
            always
                .iter()
                .all(|c| inner.iter().any(|&(_, _, ic)| ic == Some(*c)))
        };
        if fair {
            for &v in &set {
                target[v] = true;
            }
        }
    }
    let nearest = g
        .iter()
        .filter(|&&v| target[v])
        .filter_map(|&v| in_g[v])
        .min();
    Oracle {
        violated: nearest.is_some(),
        nearest,
        bad_distance,
    }
}

/// Checks a reported liveness counterexample against the model directly.
fn validate_lasso(m: &RandomGraph, t: &Trace<RandomGraph>, fairness: bool) {
    assert!(m.inits.contains(&t.init));
    let mut cur = t.init;
    assert!(!m.goal[cur as usize]);
    for &(a, s) in &t.steps {
        assert_eq!(m.next_state(&cur, a), Some(s));
        assert!(m.inside[s as usize] && !m.goal[s as usize]);
        cur = s;
    }
    match t.loop_start {
        None => assert!(
            is_stuck(m, cur as usize, fairness),
            "path ends in a stuck state"
        ),
        Some(i) => {
            assert!(i < t.steps.len());
            assert_eq!(cur, *t.state_before(i), "cycle closes");
            if fairness {
                let states: Vec<usize> = (i..t.steps.len())
                    .map(|k| *t.state_before(k) as usize)
                    .collect();
                let taken: Vec<u64> = (i..t.steps.len())
                    .filter_map(|k| m.fair_class(t.state_before(k), &t.steps[k].0))
                    .collect();
                for c in enabled_fair(m, states[0]) {
                    if states.iter().all(|&v| enabled_fair(m, v).contains(&c)) {
                        assert!(taken.contains(&c), "class {c} starved in {t:?}");
                    }
                }
            }
        }
    }
}

fn compare(m: &RandomGraph, r: &Report<RandomGraph>, fairness: bool) {
    let o = oracle(m, fairness);
    assert!(r.complete && r.exhausted);
    let live = r.property("goal").expect("goal");
    assert_eq!(live.holds, !o.violated, "liveness verdict for {m:?}");
    if let Some(t) = &live.counterexample {
        validate_lasso(m, t, fairness);
        let prefix = t.loop_start.unwrap_or(t.steps.len());
        assert_eq!(Some(prefix), o.nearest, "shortest prefix for {m:?}");
    } else {
        assert!(live.holds);
    }
    let safe = r.property("not-bad").expect("not-bad");
    assert_eq!(safe.holds, o.bad_distance.is_none());
    assert_eq!(safe.counterexample.as_ref().map(Trace::len), o.bad_distance);
    let some = r.property("bad").expect("bad");
    assert_eq!(some.holds, o.bad_distance.is_some());
    assert_eq!(some.counterexample.as_ref().map(Trace::len), o.bad_distance);
}

#[test]
fn small_random_graphs_match_brute_force() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut violated = [0usize; 2];
    let mut lassos = 0;
    for round in 0..4000 {
        let m = random_graph(&mut rng, 2 + (round % 9), (0, 3), 3, 20);
        for (k, fairness) in [true, false].into_iter().enumerate() {
            let r = check(
                &m,
                &Options {
                    threads: 1 + round % 2,
                    fairness,
                    ..Options::default()
                },
            );
            compare(&m, &r, fairness);
            let live = &r.properties[0];
            if !live.holds {
                violated[k] += 1;
                if live
                    .counterexample
                    .as_ref()
                    .is_some_and(|t| t.loop_start.is_some())
                {
                    lassos += 1;
                }
            }
        }
    }
    // The generator must produce both outcomes, or the comparison proves little.
    assert!(violated[0] > 300 && violated[0] < 3700, "{violated:?}");
    assert!(
        violated[1] > violated[0],
        "fairness removes violations: {violated:?}"
    );
    assert!(lassos > 300, "{lassos}");
}

#[test]
fn large_random_graphs_agree_across_threads() {
    let mut rng = Rng(0x0dd_ba11_c0ff_ee00);
    let mut lassos = 0;
    for _ in 0..6 {
        let m = random_graph(&mut rng, 20_000, (1, 4), 6, 1);
        for fairness in [true, false] {
            let one = check(
                &m,
                &Options {
                    threads: 1,
                    fairness,
                    ..Options::default()
                },
            );
            let two = check(
                &m,
                &Options {
                    threads: 2,
                    fairness,
                    ..Options::default()
                },
            );
            assert_eq!(one.unique_states, two.unique_states);
            assert_eq!(one.edges, two.edges);
            assert_eq!(one.scc_count, two.scc_count);
            assert_eq!(
                format!("{:?}", one.properties),
                format!("{:?}", two.properties)
            );
            for p in &one.properties {
                if p.name == "goal" {
                    if let Some(t) = &p.counterexample {
                        validate_lasso(&m, t, fairness);
                        lassos += usize::from(t.loop_start.is_some());
                    }
                }
            }
        }
    }
    assert!(
        lassos >= 3,
        "only {lassos} lassos: the generator proves little"
    );
}
