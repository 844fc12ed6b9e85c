//! Running a role from a configuration: a long-lived meta or replica server, or a one-shot
//! client call. (The CLI in `main.rs` only parses arguments and prints.)
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::runtime::{Exit, Host};
use crate::storage::{Store, StoreOptions};
use crate::transport::{id_of, raw_of, Transport, CLIENT_ID_BASE};
use anyhow::{bail, Context, Result};
use petrel_core::client::Phase;
use petrel_core::{ClientOp, Gpid, Msg, Node, NodeState, NodeStorage, OpResult, PartitionConfig};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Meta,
    Replica,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Meta => "meta",
            Role::Replica => "replica",
        })
    }
}

/// Held for the life of the process: a second `petrel` on the same data directory would
/// interleave two histories in one log. The OS releases it when the process dies, even by
/// `kill -9`.
pub struct DirLock {
    _file: File,
}

pub fn lock_data_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("data directory {} is in use by another petrel process", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Run a meta or replica server until `shutdown` completes; with `metrics`, serve
/// Prometheus metrics on that address.
pub async fn run_node(role: Role, cfg: &Config, metrics: Option<SocketAddr>, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (id, listen, data) = cfg.node_parts()?;
    let actor = match role {
        Role::Meta => Node::Meta(cfg.meta_cfg()?),
        Role::Replica => Node::Replica(cfg.replica_cfg()?),
    };
    let _lock = lock_data_dir(&data)?;
    let tls = cfg.tls()?;
    let opts = StoreOptions { compact_min_bytes: cfg.storage.compact_min_bytes };
    let (store, stored, recovery) = Store::<NodeStorage>::open(&data.join("storage"), opts)
        .with_context(|| format!("cannot open the storage in {}", data.display()))?;
    tracing::info!(records = recovery.records, truncated_bytes = recovery.truncated_bytes, skipped_corrupt = recovery.skipped_corrupt, "storage opened");
    let events = if cfg.eventlog.enabled {
        Some(EventLog::open(&data, cfg.eventlog.max_bytes).with_context(|| format!("cannot open the event log in {}", data.display()))?)
    } else {
        None
    };
    let (book, settings, cluster) = (cfg.book(), cfg.settings(), cfg.cluster.clone());
    let mut host = Host::start(actor, id_of(id), Some((store, stored)), events, |incarnation, tx| {
        Transport::bind_node(listen, id, &cluster, incarnation, book, &tls, settings, tx)
    })
    .await?;
    if role == Role::Replica {
        // The replica-to-meta link is the meta server's failure detector.
        host.transport.watch(cfg.topology.meta);
    }
    if let Some(at) = metrics {
        let m = Metrics::new(if role == Role::Meta { "meta" } else { "replica" }, id, &cfg.cluster);
        let bound = m.serve(at).await?;
        host.set_metrics(m);
        tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
    }
    let addr = host.transport.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%role, id, cluster = %cfg.cluster, %addr, incarnation = host.state().incarnation(), "ready");
    let result = host.run(shutdown, |_| false).await;
    host.stop().await;
    tracing::info!(%role, id, saves = host.saves, events = host.handled, "stopped");
    result.map(|_| ())
}

/// A random client id in the client range (not security-relevant: it only names replies).
pub fn random_client_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    CLIENT_ID_BASE + h.finish() % (1 << 62)
}

/// What a one-shot client call returned.
#[derive(Debug)]
pub struct ClientOutcome {
    /// The client actor finished (every operation returned or it gave up).
    pub done: bool,
    pub results: Vec<OpResult>,
    /// What the client was waiting for when it stopped (for a deadline message).
    pub waiting_for: String,
    /// The last transport error per peer (why a peer could not be reached).
    pub errors: Vec<(u64, String)>,
}

fn client_transport(cfg: &Config, me: u64, tx: tokio::sync::mpsc::Sender<(stateright::actor::Id, Msg)>) -> Result<Transport> {
    let tls = cfg.tls()?;
    Transport::bind_client(me, &cfg.cluster, cfg.book(), &tls, cfg.settings(), tx)
}

/// Host the core's client actor for `ops` until it is done or the deadline passes.
pub async fn run_client(cfg: &Config, ops: Vec<ClientOp>) -> Result<ClientOutcome> {
    let me = random_client_id();
    let actor = Node::Client(cfg.client_cfg(ops)?);
    let mut host = Host::start(actor, id_of(me), None, None, |_, tx| client_transport(cfg, me, tx)).await?;
    let deadline = tokio::time::sleep(cfg.client_deadline());
    let exit = host.run(deadline, |s| matches!(s, NodeState::Client(c) if c.done())).await?;
    let (results, waiting_for) = match host.state() {
        NodeState::Client(c) => (
            c.results.clone(),
            match &c.phase {
                Phase::Querying | Phase::Backoff => {
                    format!("the meta server (node {}) to name a usable primary of the partition", cfg.topology.meta)
                }
                Phase::Sent { target, .. } => format!("node {} to answer the request", raw_of(*target)),
                Phase::Done => "nothing".to_string(),
            },
        ),
        _ => (Vec::new(), String::new()),
    };
    let errors = host.transport.errors();
    host.stop().await;
    Ok(ClientOutcome { done: exit == Exit::Done, results, waiting_for, errors })
}

/// Why a one-shot request to the meta server got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("cannot reach the meta server (node {meta}): {why}")]
    Unreachable { meta: u64, why: String },
    #[error("no answer from the meta server (node {meta}) within {deadline:?}{why}")]
    Deadline { meta: u64, deadline: Duration, why: String },
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// Send one message to this cluster's meta server as a client and return the first
/// message from it that `answer` accepts (no actor involved: an operator's request has no
/// retry logic of its own; it is answered or the deadline passes).
pub async fn ask_meta(cfg: &Config, msg: Msg, deadline: Duration, answer: impl Fn(&Msg) -> bool) -> Result<Msg, AskError> {
    let me = random_client_id();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let t = client_transport(cfg, me, tx)?;
    let raw = cfg.topology.meta;
    let meta = id_of(raw);
    t.send(meta, msg);
    let why = |t: &Transport| t.errors().into_iter().map(|(_, e)| e).collect::<Vec<_>>().join("; ");
    let result = tokio::time::timeout(deadline, async {
        while let Some((src, msg)) = rx.recv().await {
            match msg {
                m if src == meta && answer(&m) => return Ok(m),
                Msg::PeerDown { .. } if src == meta => return Err(AskError::Unreachable { meta: raw, why: why(&t) }),
                _ => {}
            }
        }
        Err(AskError::Unreachable { meta: raw, why: "transport closed".into() })
    })
    .await;
    t.shutdown().await;
    match result {
        Ok(r) => r,
        Err(_) => {
            let w = why(&t);
            Err(AskError::Deadline { meta: raw, deadline, why: if w.is_empty() { String::new() } else { format!(": {w}") } })
        }
    }
}

/// Ask the meta server for a partition's configuration (read-only; no actor involved).
pub async fn query_config(cfg: &Config, gpid: Gpid, deadline: Duration) -> Result<(Option<PartitionConfig>, Option<u32>)> {
    let reply = ask_meta(cfg, Msg::QueryConfig { gpid }, deadline, |m| matches!(m, Msg::QueryConfigReply { gpid: g, .. } if *g == gpid)).await?;
    match reply {
        Msg::QueryConfigReply { config, incarnation, .. } => Ok((config, incarnation)),
        other => bail!("unexpected answer {}", other.kind()),
    }
}

/// What `petrel bench` measured.
#[derive(Debug)]
pub struct BenchResult {
    pub ok: usize,
    pub failed: usize,
    /// Clients that did not finish before the deadline.
    pub unfinished: usize,
    pub elapsed: Duration,
}

/// `clients` concurrent core client actors in this process, each writing `ops` values in
/// sequence to the configured partition (a closed loop: one request in flight per client).
pub async fn run_bench(cfg: &Config, clients: usize, ops: usize) -> Result<BenchResult> {
    // The client's operation index is a u8 in the core.
    let ops = ops.clamp(1, 250);
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let cfg = cfg.clone();
        let values: Vec<ClientOp> = (0..ops).map(|i| ClientOp::put(format!("bench-{c}-{i}").as_str(), bench_value(c, i))).collect();
        tasks.push(tokio::spawn(async move { run_client(&cfg, values).await }));
    }
    let mut r = BenchResult { ok: 0, failed: 0, unfinished: 0, elapsed: Duration::ZERO };
    for t in tasks {
        match t.await {
            Ok(Ok(out)) => {
                r.ok += out.results.iter().filter(|x| matches!(x, OpResult::WriteOk)).count();
                r.failed += out.results.iter().filter(|x| matches!(x, OpResult::Failed(_))).count();
                if !out.done {
                    r.unfinished += 1;
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => bail!("a bench client task failed: {e}"),
        }
    }
    r.elapsed = start.elapsed();
    Ok(r)
}

/// Client `c`'s `i`-th value.
fn bench_value(c: usize, i: usize) -> petrel_core::Value {
    petrel_core::Value::from(format!("value-{c}-{i}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_has_one_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_data_dir(dir.path()).expect("first");
        let err = lock_data_dir(dir.path()).err().expect("second owner refused");
        assert!(err.to_string().contains("in use by another petrel process"), "{err}");
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[test]
    fn client_ids_are_in_the_client_range() {
        for _ in 0..100 {
            let id = random_client_id();
            assert!((CLIENT_ID_BASE..CLIENT_ID_BASE + (1 << 62)).contains(&id));
        }
        assert!((0..5).map(|_| bench_value(1, 2)).all(|v| v == bench_value(1, 2)));
    }
}
