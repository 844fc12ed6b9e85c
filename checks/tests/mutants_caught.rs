//! The mutant catalogue is consistent, and the fast S5 mutants are caught with a
//! counterexample while the clean scenario passes. The full matrix (every mutant, every
//! clean scenario) is `petrel-check mutants`, which the test script runs.
use petrel_checks::engine::{self, Options};
use petrel_core::Bugs;
use petrel_spec::properties::id_of;
use petrel_spec::{mutants, scenario, PetrelModel};
use stateright::Model;

fn opts() -> Options {
    Options {
        threads: 2,
        stop_when_decided: false,
        ..Options::default()
    }
}

#[test]
fn catalogue_names_real_scenarios_and_properties() {
    let mut covered = std::collections::BTreeSet::new();
    for m in mutants() {
        let sc = scenario(m.scenario)
            .unwrap_or_else(|| panic!("{}: unknown scenario {}", m.name, m.scenario));
        let model = PetrelModel::new(&sc, Bugs::none());
        assert!(
            model
                .properties()
                .iter()
                .any(|p| id_of(p.name) == m.caught_by),
            "{}: no property {}",
            m.name,
            m.caught_by
        );
        covered.insert(m.caught_by);
    }
    // Every property must be bitten by some mutant.
    let all = PetrelModel::new(
        &scenario("client-primary-crash").expect("scenario"),
        Bugs::none(),
    );
    for p in all.properties() {
        assert!(
            covered.contains(id_of(p.name)),
            "no mutant violates {}",
            p.name
        );
    }
}

#[test]
fn s5_mutants_caught_and_clean_passes() {
    let sc = scenario("client-primary-crash").expect("scenario");
    for m in mutants().into_iter().filter(|m| m.scenario == sc.name) {
        let r = engine::check(&PetrelModel::new(&sc, Bugs::none().with(m.bug)), &opts());
        let p = r
            .properties
            .iter()
            .find(|p| id_of(p.name) == m.caught_by)
            .expect("property exists");
        assert!(!p.holds, "{}: {} should be violated", m.name, m.caught_by);
        assert!(
            p.counterexample.as_ref().is_some_and(|t| !t.is_empty()),
            "{}: no counterexample",
            m.name
        );
    }
    let r = engine::check(&PetrelModel::new(&sc, Bugs::none()), &opts());
    assert!(r.complete);
    assert!(r.properties.iter().all(|p| p.holds));
}
