//! Limits stop exploration with `complete: false` and say why, with any thread count; a run
//! cut short never looks like a pass.

use petrel_checks::engine::{check, Fairness, Limits, Options};
use stateright::{Model, Property};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two unbounded-ish counters (`u32`): far more states than any test explores.
#[derive(Clone)]
struct Grid {
    bound: u32,
}

impl Model for Grid {
    type State = (u32, u32);
    type Action = u8;
    fn init_states(&self) -> Vec<(u32, u32)> {
        vec![(0, 0)]
    }
    fn actions(&self, _: &(u32, u32), a: &mut Vec<u8>) {
        a.extend([0, 1]);
    }
    fn next_state(&self, &(x, y): &(u32, u32), a: u8) -> Option<(u32, u32)> {
        let n = if a == 0 { (x + 1, y) } else { (x, y + 1) };
        (n.0 < self.bound && n.1 < self.bound).then_some(n)
    }
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("fine", |_, _| true),
            Property::eventually("corner", |m: &Grid, s: &(u32, u32)| {
                *s == (m.bound - 1, m.bound - 1)
            }),
        ]
    }
}

impl Fairness for Grid {
    fn fair_class(&self, _: &(u32, u32), a: &u8) -> Option<u64> {
        Some(*a as u64)
    }
}

fn with_limits(threads: usize, limits: Limits) -> Options {
    Options {
        threads,
        limits,
        ..Options::default()
    }
}

#[test]
fn state_limit_is_incomplete_and_exact() {
    for threads in [1, 2] {
        let r = check(
            &Grid { bound: 1000 },
            &with_limits(
                threads,
                Limits {
                    max_states: Some(5000),
                    ..Limits::default()
                },
            ),
        );
        assert!(!r.complete && !r.exhausted);
        assert_eq!(r.stop_reason.as_deref(), Some("state limit 5000"));
        assert_eq!(r.unique_states, 5000);
        // Nothing was falsified, but nothing is conclusive either.
        for p in &r.properties {
            assert!(p.holds && !p.conclusive, "{}", p.name);
        }
    }
    // A limit the model never reaches leaves the run complete.
    let r = check(
        &Grid { bound: 30 },
        &with_limits(
            2,
            Limits {
                max_states: Some(900),
                ..Limits::default()
            },
        ),
    );
    assert!(r.complete && r.exhausted, "{:?}", r.stop_reason);
    assert_eq!(r.unique_states, 900);
    assert!(r.properties.iter().all(|p| p.holds && p.conclusive));
}

#[test]
fn depth_limit_is_incomplete_unless_nothing_lies_beyond() {
    for threads in [1, 2] {
        let r = check(
            &Grid { bound: 1000 },
            &with_limits(
                threads,
                Limits {
                    max_depth: Some(40),
                    ..Limits::default()
                },
            ),
        );
        assert!(!r.complete);
        assert_eq!(r.stop_reason.as_deref(), Some("depth limit 40"));
        assert_eq!(r.max_depth, 40);
        assert_eq!(r.unique_states, 41 * 42 / 2);
    }
    // Diameter of a 10×10 grid is 18: a limit of 18 cuts nothing.
    let r = check(
        &Grid { bound: 10 },
        &with_limits(
            1,
            Limits {
                max_depth: Some(18),
                ..Limits::default()
            },
        ),
    );
    assert!(r.complete && r.exhausted, "{:?}", r.stop_reason);
    assert_eq!(r.max_depth, 18);
    let r = check(
        &Grid { bound: 10 },
        &with_limits(
            1,
            Limits {
                max_depth: Some(17),
                ..Limits::default()
            },
        ),
    );
    assert_eq!(r.stop_reason.as_deref(), Some("depth limit 17"));
}

#[test]
fn timeout_works_with_one_thread() {
    for threads in [1, 2] {
        let t0 = Instant::now();
        let r = check(
            &Grid { bound: 1 << 30 },
            &with_limits(
                threads,
                Limits {
                    timeout: Some(Duration::from_millis(300)),
                    // Safety net: if the timeout were ignored the run ends here and the
                    // assertion on `stop_reason` fails instead of the test hanging.
                    max_states: Some(5_000_000),
                    ..Limits::default()
                },
            ),
        );
        let took = t0.elapsed();
        assert!(!r.complete);
        assert_eq!(r.stop_reason.as_deref(), Some("timeout 300ms"));
        assert!(took < Duration::from_secs(3), "stopped after {took:?}");
        assert!(r.unique_states > 0);
    }
}

#[test]
fn progress_is_reported_from_the_coordinator() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let main_thread = std::thread::current().id();
    let r = check(
        &Grid { bound: 1 << 30 },
        &Options {
            threads: 2,
            limits: Limits {
                timeout: Some(Duration::from_millis(800)),
                max_states: Some(5_000_000),
                ..Limits::default()
            },
            progress: Some(Box::new(move |p| {
                assert_eq!(std::thread::current().id(), main_thread);
                assert_eq!(p.phase, "explore");
                seen.fetch_add(1, Ordering::Relaxed);
            })),
            ..Options::default()
        },
    );
    assert_eq!(r.stop_reason.as_deref(), Some("timeout 800ms"));
    let n = calls.load(Ordering::Relaxed);
    // ~4 per second plus the start and end reports.
    assert!((3..=8).contains(&n), "{n} progress calls in 0.8 s");
}
