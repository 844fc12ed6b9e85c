//! Throughput measurement on toy models of ~1M states (ignored by default; run with
//! `cargo test --release -p petrel-checks --test engine_throughput -- --ignored --nocapture`).

use petrel_checks::engine::{check, Fairness, Options};
use stateright::{Checker, Model, Property};
use std::time::Instant;

/// Four counters in `0..32` (32⁴ = 1,048,576 states), each can go up or down: 8 actions.
#[derive(Clone)]
struct Hypercube {
    liveness: bool,
}

impl Model for Hypercube {
    type State = [u8; 4];
    type Action = (u8, bool);
    fn init_states(&self) -> Vec<[u8; 4]> {
        vec![[0; 4]]
    }
    fn actions(&self, _: &[u8; 4], a: &mut Vec<(u8, bool)>) {
        for i in 0..4 {
            a.push((i, true));
            a.push((i, false));
        }
    }
    fn next_state(&self, s: &[u8; 4], (i, up): (u8, bool)) -> Option<[u8; 4]> {
        let mut n = *s;
        let v = &mut n[i as usize];
        if up && *v < 31 {
            *v += 1;
        } else if !up && *v > 0 {
            *v -= 1;
        } else {
            return None;
        }
        Some(n)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![Property::always("sum-bounded", |_, s: &[u8; 4]| {
            s.iter().map(|&v| v as u32).sum::<u32>() <= 124
        })];
        if self.liveness {
            p.push(Property::eventually("reaches-corner", |_, s: &[u8; 4]| {
                *s == [31; 4]
            }));
        }
        p
    }
}

impl Fairness for Hypercube {
    fn fair_class(&self, _: &[u8; 4], a: &(u8, bool)) -> Option<u64> {
        Some(a.0 as u64 * 2 + a.1 as u64)
    }
}

/// Same graph, but the state is heap-allocated and 64 bytes wide (closer to real models,
/// where cloning and hashing a state costs something).
#[derive(Clone)]
struct HeapCube;

impl Model for HeapCube {
    type State = Vec<u32>;
    type Action = (u8, bool);
    fn init_states(&self) -> Vec<Vec<u32>> {
        vec![vec![0; 16]]
    }
    fn actions(&self, _: &Vec<u32>, a: &mut Vec<(u8, bool)>) {
        for i in 0..4 {
            a.push((i, true));
            a.push((i, false));
        }
    }
    fn next_state(&self, s: &Vec<u32>, (i, up): (u8, bool)) -> Option<Vec<u32>> {
        let v = s[i as usize];
        let nv = match (up, v) {
            (true, v) if v < 31 => v + 1,
            (false, v) if v > 0 => v - 1,
            _ => return None,
        };
        let mut n = s.clone();
        n[i as usize] = nv;
        n[4 + i as usize] = nv * 7;
        Some(n)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("fine", |_, s: &Vec<u32>| s[0] < 32)]
    }
}

impl Fairness for HeapCube {
    fn fair_class(&self, _: &Vec<u32>, a: &(u8, bool)) -> Option<u64> {
        Some(a.0 as u64 * 2 + a.1 as u64)
    }
}

fn measure<M>(label: &str, m: &M, threads: usize)
where
    M: Fairness + Sync,
    M::State: Clone + std::hash::Hash + Send + Sync + std::fmt::Debug + 'static,
    M::Action: Clone + Send + Sync + std::fmt::Debug,
{
    let r = check(
        m,
        &Options {
            threads,
            ..Options::default()
        },
    );
    assert!(r.complete && r.exhausted);
    assert_eq!(r.unique_states, 1 << 20);
    println!(
        "{label:<28} threads={threads}  {:>8} states  {:>9} edges  {:6.3} s  {:>10.0} states/s  \
         {:5.1} B/state  {:4.1} B/edge  sccs={}",
        r.unique_states,
        r.edges,
        r.seconds,
        r.unique_states as f64 / r.seconds,
        r.bytes_per_state,
        r.bytes_per_edge,
        r.scc_count
    );
}

#[test]
#[ignore = "benchmark: run explicitly with --release --ignored --nocapture"]
fn throughput() {
    for threads in [1, 2] {
        measure("hypercube safety", &Hypercube { liveness: false }, threads);
        measure(
            "hypercube safety+liveness",
            &Hypercube { liveness: true },
            threads,
        );
        measure("heap-state safety", &HeapCube, threads);
    }
    for threads in [1, 2] {
        let t0 = Instant::now();
        let c = Hypercube { liveness: false }
            .checker()
            .threads(threads)
            .spawn_bfs()
            .join();
        let s = t0.elapsed().as_secs_f64();
        println!(
            "{:<28} threads={threads}  {:>8} states  {:6.3} s  {:>10.0} states/s",
            "stateright spawn_bfs",
            c.unique_state_count(),
            s,
            c.unique_state_count() as f64 / s
        );
    }
}
