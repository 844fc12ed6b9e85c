//! Petrel's node: the driver that runs the core's actors for real.
//!
//! The protocol lives in `petrel-core` as pure state machines; this crate adds only what a
//! process needs around them — a wire codec, certificates, mutual-TLS QUIC transport,
//! durable storage, timers and an event log — and no protocol logic. See node/README.md.
pub mod admin;
pub mod bench;
pub mod campaign;
pub mod certs;
pub mod client;
pub mod codec;
pub mod config;
pub mod delta;
pub mod etcd;
pub mod eventlog;
pub mod launch;
pub mod metrics;
pub mod runtime;
pub mod storage;
pub mod transport;
pub mod up;
