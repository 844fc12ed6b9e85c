//! Petrel's executable specification.
//!
//! A [`Scenario`] names a deployment (clusters, replicas, clients and their operations)
//! and a fault budget; [`PetrelModel`] turns it into a stateright `Model` whose actors are
//! the unchanged `petrel-core` actors and whose *environment* (crashes, recoveries, message
//! loss, failure notifications, the failure detector's timing assumption) is stated here.
//! The properties, each with a stable ID, are in [`properties`]; SPEC.md explains them.
pub mod kv;
pub mod model;
pub mod mutants;
pub mod properties;
pub mod scenario;

pub use model::{Action, Aux, PetrelModel, State};
pub use mutants::{mutant, mutants, Mutant};
pub use scenario::{scenario, scenarios, Scenario};
