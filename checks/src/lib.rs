//! petrel-checks: the checking engine (safety with shortest counterexamples, liveness
//! under weak fairness with lasso counterexamples), the `petrel-check` front end and the
//! counterexample viewer.
pub mod engine;
pub mod view;
