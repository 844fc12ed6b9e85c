//! petrel-checks: the checking engine (safety with shortest counterexamples, liveness
//! under weak fairness with lasso counterexamples), Petrel's glue to it, and the
//! counterexample viewer.
pub mod engine;
pub mod petrel;
pub mod trace;
pub mod validate;
pub mod view;
