//! Petrel's node: the driver that runs the core's actors for real.
//!
//! The protocol lives in `petrel-core` as pure state machines; this crate adds only what a
//! process needs around them — a wire codec, certificates, mutual-TLS QUIC transport,
//! durable storage, timers and an event log — and no protocol logic. See node/README.md.
pub mod certs;
pub mod codec;
pub mod delta;
pub mod storage;
pub mod config;
pub mod eventlog;
pub mod runtime;
pub mod transport;
pub mod launch;
pub mod client;
pub mod bench;
pub mod metrics;
pub mod admin;
pub mod up;
