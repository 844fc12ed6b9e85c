//! Each listed mutant must be caught by its property with a counterexample, and each clean
//! scenario must pass completely. (Mutants not listed here are not yet caught by the
//! CI-sized scenarios; `petrel-check mutants` reports them as NO and exits 1.)
use petrel_checks::engine::{self, Options};
use petrel_core::Bugs;
use petrel_spec::properties::id_of;
use petrel_spec::{mutant, scenario, scenarios, PetrelModel};

fn opts() -> Options {
    Options { threads: 2, stop_when_decided: true, ..Options::default() }
}

#[test]
fn caught_mutants_have_counterexamples() {
    for name in ["s4-recovering-not-cleared", "s5-client-no-refresh", "s5-client-ignores-peer-down", "commit-without-all-acks", "fd-skip-lease", "forget-to-persist-ballot"] {
        let m = mutant(name).expect("mutant exists");
        let sc = scenario(m.scenario).expect("scenario exists");
        let r = engine::check(&PetrelModel::new(&sc, Bugs::none().with(m.bug)), &opts());
        let p = r.properties.iter().find(|p| id_of(p.name) == m.caught_by).expect("property exists");
        assert!(!p.holds, "{name}: {} should be violated", m.caught_by);
        assert!(p.counterexample.as_ref().is_some_and(|t| !t.is_empty()), "{name}: no counterexample");
    }
}

#[test]
fn clean_scenarios_pass_complete() {
    for sc in scenarios() {
        let r = engine::check(&PetrelModel::new(&sc, Bugs::none()), &Options { stop_when_decided: false, ..opts() });
        assert!(r.complete, "{}: incomplete", sc.name);
        for p in &r.properties {
            assert!(p.holds, "{}: {} violated", sc.name, p.name);
        }
    }
}
