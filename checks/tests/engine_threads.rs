//! Node ids follow discovery order (a sequential BFS) whatever the thread count, so on real
//! Petrel models every verdict, state count, edge count and counterexample — safety paths and
//! liveness lassos alike — is the same with 1, 2 and 3 threads, with and without a state
//! limit.
use petrel_checks::engine::{self, Limits, Options, Report};
use petrel_core::Bugs;
use petrel_spec::{mutant, scenario, PetrelModel};

fn summary(model: &PetrelModel, r: &Report<PetrelModel>) -> String {
    let mut out = format!(
        "complete {} unique {} total {} edges {} sccs {} depth {}\n",
        r.complete, r.unique_states, r.total_states, r.edges, r.scc_count, r.max_depth
    );
    for p in &r.properties {
        out += &format!("{} holds {} conclusive {}", p.name, p.holds, p.conclusive);
        if let Some(t) = &p.counterexample {
            out += &format!(" loop {:?}:", t.loop_start);
            for (a, s) in &t.steps {
                out += &format!(
                    " [{}] {:?}",
                    stateright::Model::format_action(model, a),
                    engine_fp(s)
                );
            }
        }
        out += "\n";
    }
    out
}

/// A cheap, deterministic digest of a state for comparing traces.
fn engine_fp(s: &petrel_spec::model::State) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn run(model: &PetrelModel, threads: usize, max_states: Option<usize>) -> String {
    let opts = Options {
        threads,
        stop_when_decided: false,
        limits: Limits {
            max_states,
            ..Limits::default()
        },
        ..Options::default()
    };
    summary(model, &engine::check(model, &opts))
}

#[test]
fn same_graph_and_counterexamples_with_1_2_and_3_threads() {
    // Small models (lassos, stuck states): whole runs.
    for name in [
        "s1-min-checkpoint-reset",
        "s5-client-no-refresh",
        "s5-client-ignores-peer-down",
    ] {
        let m = mutant(name).expect("mutant");
        let model = PetrelModel::new(
            &scenario(m.scenario).expect("scenario"),
            Bugs::none().with(m.bug),
        );
        let one = run(&model, 1, None);
        assert!(
            one.contains("holds false"),
            "{name}: nothing violated:\n{one}"
        );
        for threads in [2, 3] {
            assert_eq!(
                one,
                run(&model, threads, None),
                "{name}: 1 vs {threads} threads"
            );
        }
    }
    // A big one, cut by a state limit: levels of thousands of states take the parallel path,
    // and the limit keeps exactly the same first states (discovery order) for any count.
    let m = mutant("learn-skips-checkpoint").expect("mutant");
    let model = PetrelModel::new(
        &scenario(m.scenario).expect("scenario"),
        Bugs::none().with(m.bug),
    );
    // (Total states and edges are left out: the run stops at the end of the batch in which
    // the limit was hit, and batch sizes adapt to timing.)
    let without_totals = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    let one = run(&model, 1, Some(30_000));
    assert!(one.starts_with("complete false unique 30000 "), "{one}");
    assert!(
        one.contains("holds false"),
        "the limit should leave room for a violation:\n{one}"
    );
    for threads in [2, 3] {
        let other = run(&model, threads, Some(30_000));
        assert!(other.starts_with("complete false unique 30000 "), "{other}");
        assert_eq!(
            without_totals(&one),
            without_totals(&other),
            "limit: 1 vs {threads} threads"
        );
    }
}
