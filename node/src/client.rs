//! The client library: `put`, `get` and `del` on the keys of a table, each call carried
//! out by the core's client actor (seed S5: fail fast on an error reply or a broken
//! connection, refresh the configuration from the meta server, retry within a budget).
//!
//! Nothing here decides anything about the protocol. The library learns how many
//! partitions the table has from the meta server, picks a key's partition with the core's
//! [`petrel_core::partition_of`], hosts one core client actor per call until it is done or
//! the call's deadline passes, and reports what the actor returned.
//!
//! ```no_run
//! # async fn demo(cfg: &petrel_node::config::Config) -> Result<(), petrel_node::client::ClientError> {
//! use petrel_node::client::Client;
//! let client = Client::connect(cfg).await?;           // asks the meta server for the table
//! client.put("k", "7").await?;
//! assert_eq!(client.get("k").await?.map(|v| v.to_text()), Some("7".to_string()));
//! client.del("k").await?;
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! **What a call costs.** A [`Client`] keeps one QUIC connection per node it talks to
//! (dialed on first use, kept alive) and every call reuses them. Each call is still a new
//! core client actor, carried as a *session* on the shared connections
//! (`Frame::From`/`To`/`End`, see `ClientEndpoint` in `transport.rs`). So a call is two
//! round trips: the core client asks the meta server for the partition's configuration,
//! then sends the operation to the primary.
//!
//! **Client ids.** Replicas deduplicate writes by (client id, request number) and keep one
//! entry per id for good (part of every whole-state save). A call takes an id from the
//! client's pool and continues its numbering (`ClientCfg::first_req`), so the dedup tables
//! hold one entry per *concurrent* call, not one per call. An id goes back to the pool
//! only after a definite answer: after an error a request of it may still be in flight,
//! and a later, higher-numbered write of the same id would make the replica drop it.
//!
//! **Outcomes.** `Ok` is definite. For `put`/`del`, an error leaves the outcome unknown: the
//! write may have taken effect before the connection broke or the deadline passed (a retry
//! with the same value is harmless). [`ClientError::Deadline`] says what the actor was
//! waiting for; [`ClientError::transport_errors`] why nodes could not be reached.
use crate::config::Config;
use crate::runtime::Host;
pub use crate::transport::random_client_id;
use crate::transport::{id_of, raw_of, ClientEndpoint, Transport};
use anyhow::Context;
use petrel_core::client::Phase;
use petrel_core::{
    partition_of, ClientOp, ErrorCode, Gpid, Key, Msg, Node, NodeState, OpResult, PartitionConfig,
    ReqId, Value,
};
use std::collections::HashMap;
use std::time::Duration;

/// Why a request to the meta server got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("cannot reach the meta server (node {meta}): {why}")]
    Unreachable { meta: u64, why: String },
    #[error("no answer from the meta server (node {meta}) within {deadline:?}{why}")]
    Deadline {
        meta: u64,
        deadline: Duration,
        why: String,
    },
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// Send one message to this cluster's meta server as a client and return the first
/// message from it that `answer` accepts (no actor involved: an operator's request has no
/// retry logic of its own; it is answered or the deadline passes). Opens and closes its
/// own endpoint; [`Client`] asks over its shared one.
pub async fn ask_meta(
    cfg: &Config,
    msg: Msg,
    deadline: Duration,
    answer: impl Fn(&Msg) -> bool,
) -> Result<Msg, AskError> {
    let ep = ClientEndpoint::bind(&cfg.cluster, cfg.book(), &cfg.tls()?, cfg.settings())?;
    let r = ask_meta_on(&ep, cfg.topology.meta, msg, deadline, answer).await;
    ep.close().await;
    r
}

async fn ask_meta_on(
    ep: &ClientEndpoint,
    raw: u64,
    msg: Msg,
    deadline: Duration,
    answer: impl Fn(&Msg) -> bool,
) -> Result<Msg, AskError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let t = ep.transport(ep.fresh_id().map_err(anyhow::Error::from)?, tx)?;
    let meta = id_of(raw);
    t.send(meta, msg);
    let why = |t: &Transport| {
        t.errors()
            .into_iter()
            .map(|(_, e)| e)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let result = tokio::time::timeout(deadline, async {
        while let Some((src, msg)) = rx.recv().await {
            match msg {
                m if src == meta && answer(&m) => return Ok(m),
                Msg::PeerDown { .. } if src == meta => {
                    return Err(AskError::Unreachable {
                        meta: raw,
                        why: why(&t),
                    })
                }
                _ => {}
            }
        }
        Err(AskError::Unreachable {
            meta: raw,
            why: "transport closed".into(),
        })
    })
    .await;
    t.shutdown().await;
    match result {
        Ok(r) => r,
        Err(_) => {
            let w = why(&t);
            Err(AskError::Deadline {
                meta: raw,
                deadline,
                why: if w.is_empty() {
                    String::new()
                } else {
                    format!(": {w}")
                },
            })
        }
    }
}

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The core client gave up after its retry budget (`[client] max_attempts` dead nodes
    /// or request timeouts in a row).
    #[error("the operation failed: {code:?} (the client gave up after its retry budget)")]
    Failed {
        code: ErrorCode,
        transport: Vec<String>,
    },
    /// The call's deadline passed first.
    #[error(
        "no result within the deadline of {deadline:?}; the client was waiting for {waiting_for}"
    )]
    Deadline {
        deadline: Duration,
        waiting_for: String,
        transport: Vec<String>,
    },
    /// The meta server has no such table.
    #[error("the meta server (node {meta}) knows no table {table}")]
    NoTable { table: u8, meta: u64 },
    /// The meta server could not be asked for the table.
    #[error(transparent)]
    Meta(#[from] AskError),
    /// The key or value is over `[limits]`: refused before sending, with the limit named.
    #[error(transparent)]
    TooLarge(#[from] crate::transport::policy::TooLarge),
    /// Configuration, certificates, sockets.
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

impl ClientError {
    /// The last transport error per node the call talked to (why it could not reach it).
    pub fn transport_errors(&self) -> &[String] {
        match self {
            ClientError::Failed { transport, .. } | ClientError::Deadline { transport, .. } => {
                transport
            }
            _ => &[],
        }
    }

    /// No answer in time (a deadline, or the meta server unreachable): the cluster may be
    /// fine a moment later. The other errors are definite answers or operator errors.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Deadline { .. }
                | ClientError::Meta(AskError::Deadline { .. } | AskError::Unreachable { .. })
        )
    }
}

/// A connection to one table of a cluster. Calls take `&self` and may run concurrently
/// (share it in an `Arc` across tasks); each has its own deadline.
pub struct Client {
    cfg: Config,
    endpoint: ClientEndpoint,
    table: u8,
    partitions: u8,
    deadline: Duration,
    /// Idle client ids with the number of their next request (see the module's notes).
    ids: std::sync::Mutex<Vec<(u64, ReqId)>>,
    /// The route of each partition its last call ended with (configuration and primary
    /// life): the next call starts at that primary instead of asking the meta server, and
    /// a stale route costs one redirect (the core client's rules, checked in the model).
    routes: std::sync::Mutex<HashMap<Gpid, (PartitionConfig, u32)>>,
    /// Where invocations and responses are recorded, if anywhere (see [`History`]).
    history: Option<std::sync::Arc<History>>,
}

impl Client {
    /// Connect to the config's table (`[client] table`, else the topology's first).
    pub async fn connect(cfg: &Config) -> Result<Client, ClientError> {
        Client::connect_table(cfg, cfg.client_table()?).await
    }

    /// Connect to `table`: ask the meta server how many partitions it has (so tables
    /// created at run time with `petrel admin table create` work). Bounded by the config's
    /// deadline.
    pub async fn connect_table(cfg: &Config, table: u8) -> Result<Client, ClientError> {
        let tls = cfg.tls()?;
        let endpoint = ClientEndpoint::bind(&cfg.cluster, cfg.book(), &tls, cfg.settings())?;
        let deadline = cfg.client_deadline();
        let meta = cfg.topology.meta;
        let status = ask_meta_on(&endpoint, meta, Msg::QueryCluster, deadline, |m| {
            matches!(m, Msg::ClusterStatus { .. })
        })
        .await;
        let partitions = match status {
            Ok(Msg::ClusterStatus { configs, .. }) => configs
                .iter()
                .filter(|c| c.gpid.table == table)
                .map(|c| c.gpid.partition)
                .max(),
            Ok(other) => {
                return Err(anyhow::anyhow!(
                    "unexpected answer {} from the meta server",
                    other.kind()
                )
                .into())
            }
            Err(e) => {
                endpoint.close().await;
                return Err(e.into());
            }
        };
        let Some(last) = partitions else {
            endpoint.close().await;
            return Err(ClientError::NoTable { table, meta });
        };
        // Partitions are numbered 0..P (P ≤ 255, so the last index is at most 254).
        let partitions = last
            .checked_add(1)
            .context("the meta server names partition 255; a table has at most 255")?;
        Ok(Client {
            cfg: cfg.clone(),
            endpoint,
            table,
            partitions,
            deadline,
            ids: Default::default(),
            routes: Default::default(),
            history: History::from_env(),
        })
    }

    pub fn table(&self) -> u8 {
        self.table
    }

    /// The table's partition count, as the meta server reported it at connect.
    pub fn partitions(&self) -> u8 {
        self.partitions
    }

    /// The partition that holds `key`.
    pub fn gpid_of(&self, key: &[u8]) -> Gpid {
        Gpid {
            table: self.table,
            partition: partition_of(key, self.partitions),
        }
    }

    /// The deadline of `put`/`get`/`del` (from `[client] deadline_ms`, default 15 s).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Set `key` to `value`.
    pub async fn put(
        &self,
        key: impl Into<Key>,
        value: impl Into<Value>,
    ) -> Result<(), ClientError> {
        self.call(ClientOp::put(key, value), self.deadline)
            .await
            .map(|_| ())
    }

    /// `key`'s value, `None` if it is absent.
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<Value>, ClientError> {
        match self.call(ClientOp::get(key), self.deadline).await? {
            OpResult::ReadOk(v) => Ok(v),
            other => Err(anyhow::anyhow!("a read returned {other:?}").into()),
        }
    }

    /// Delete `key` (deleting an absent key succeeds).
    pub async fn del(&self, key: impl Into<Key>) -> Result<(), ClientError> {
        self.call(ClientOp::del(key), self.deadline)
            .await
            .map(|_| ())
    }

    /// Run one operation on its key's partition with this deadline: `WriteOk` or
    /// `ReadOk`, never `Failed` (that is [`ClientError::Failed`]).
    pub async fn call(&self, op: ClientOp, deadline: Duration) -> Result<OpResult, ClientError> {
        let Some(history) = &self.history else {
            return self.call_unrecorded(op, deadline).await;
        };
        let call = history.invoke(&op, self.cfg.topology.meta, self.table);
        let r = self.call_unrecorded(op, deadline).await;
        history.complete(call, &r);
        r
    }

    /// Record this client's calls from now on (see [`History`]); several clients, and
    /// several processes, may share one file.
    pub fn record_history(&mut self, history: std::sync::Arc<History>) {
        self.history = Some(history);
    }

    async fn call_unrecorded(
        &self,
        op: ClientOp,
        deadline: Duration,
    ) -> Result<OpResult, ClientError> {
        let key = match &op {
            ClientOp::Put(k, _) | ClientOp::Get(k) | ClientOp::Del(k) => k,
        };
        // A key or value over the limit is refused here, before any traffic, naming the
        // limit (a node would refuse it too; see `transport::Limits`).
        let value = match &op {
            ClientOp::Put(_, v) => Some(v.as_slice()),
            _ => None,
        };
        self.cfg.limits().check(key.as_slice(), value)?;
        let gpid = self.gpid_of(key.as_slice());
        let pooled = self.ids.lock().map(|mut ids| ids.pop()).ok().flatten();
        let (me, first_req) = match pooled {
            Some(x) => x,
            None => (random_client_id().map_err(anyhow::Error::from)?, 1),
        };
        let mut cfg = self.cfg.client_cfg_for(gpid, vec![op]);
        cfg.first_req = first_req;
        cfg.route = self.routes.lock().ok().and_then(|r| r.get(&gpid).cloned());
        let actor = Node::Client(cfg);
        let ep = self.endpoint.clone();
        let mut host =
            Host::start(actor, id_of(me), None, None, |_, tx| ep.transport(me, tx)).await?;
        let ran = host
            .run(
                tokio::time::sleep(deadline),
                |s| matches!(s, NodeState::Client(c) if c.done()),
            )
            .await;
        let (result, waiting_for) = match host.state() {
            NodeState::Client(c) => {
                // Only a call that was answered leaves its route: one that failed or ran
                // out of time may end on a dead primary, and would send the next calls
                // there to wait out their timeouts.
                if let Ok(mut routes) = self.routes.lock() {
                    let answered =
                        matches!(c.results.first(), Some(r) if !matches!(r, OpResult::Failed(_)));
                    match (&c.config, c.incarnation) {
                        (Some(config), Some(life)) if answered => {
                            routes.insert(gpid, (config.clone(), life))
                        }
                        _ => routes.remove(&gpid),
                    };
                }
                (c.results.first().cloned(), waiting_for(&self.cfg, &c.phase))
            }
            _ => (None, String::new()),
        };
        let transport: Vec<String> = host
            .transport
            .errors()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        host.stop().await;
        ran?;
        match result {
            Some(OpResult::Failed(code)) => Err(ClientError::Failed { code, transport }),
            Some(r) => {
                if let (Some(next), Ok(mut ids)) = (first_req.checked_add(1), self.ids.lock()) {
                    ids.push((me, next));
                }
                Ok(r)
            }
            None => Err(ClientError::Deadline {
                deadline,
                waiting_for,
                transport,
            }),
        }
    }

    /// Client ids waiting for the next call (at most the highest concurrency so far).
    pub fn idle_ids(&self) -> usize {
        self.ids.lock().map(|ids| ids.len()).unwrap_or(0)
    }

    /// The meta server's configuration of `gpid` and the life of the primary it believes
    /// alive (read-only; no actor involved).
    pub async fn config_of(
        &self,
        gpid: Gpid,
    ) -> Result<(Option<PartitionConfig>, Option<u32>), ClientError> {
        let reply = ask_meta_on(
            &self.endpoint,
            self.cfg.topology.meta,
            Msg::QueryConfig { gpid },
            self.deadline,
            |m| matches!(m, Msg::QueryConfigReply { gpid: g, .. } if *g == gpid),
        )
        .await?;
        match reply {
            Msg::QueryConfigReply {
                config,
                incarnation,
                ..
            } => Ok((config, incarnation)),
            other => Err(anyhow::anyhow!(
                "unexpected answer {} from the meta server",
                other.kind()
            )
            .into()),
        }
    }

    /// Close the endpoint (waits up to 1 s for the close to reach the nodes; dropping the
    /// client instead lets their idle timeout notice).
    pub async fn close(self) {
        self.endpoint.close().await;
    }
}

/// A client history for `petrel-check validate`: one JSON line per invocation and one per
/// response, appended to a file that several clients and processes may share (each line
/// is one `write` on a file opened for appending, so lines do not interleave):
/// ```json
/// {"invoke":{"call":"4711-3","pid":4711,"us":1733140000123456,"meta":0,"table":1,"op":{"Put":["k","7"]}}}
/// {"ok":{"call":"4711-3","us":1733140000125001,"result":"WriteOk"}}
/// {"info":{"call":"4711-4","us":1733140015125001,"error":"no result within …"}}
/// ```
/// `us` is wall-clock microseconds (a per-process anchor plus a monotonic clock, so a
/// step of the system clock does not reorder one process's calls). `ok` is a definite
/// result; `info` is any error, whose effect is unknown (a `put` may have taken effect:
/// the checker lets it happen at any time after its invocation, or never).
///
/// The library records when [`Client::record_history`] is called, or when the environment
/// variable [`HISTORY_ENV`] names a file at connect (so `petrel client` and `petrel bench`
/// processes record too).
pub struct History {
    file: std::sync::Mutex<std::fs::File>,
    pid: u32,
    anchor_us: u128,
    anchor: std::time::Instant,
}

/// The environment variable naming a history file every `Client` appends to.
pub const HISTORY_ENV: &str = "PETREL_CLIENT_HISTORY";

impl History {
    pub fn open(path: &std::path::Path) -> std::io::Result<std::sync::Arc<History>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let anchor_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Ok(std::sync::Arc::new(History {
            file: std::sync::Mutex::new(file),
            pid: std::process::id(),
            anchor_us,
            anchor: std::time::Instant::now(),
        }))
    }

    fn from_env() -> Option<std::sync::Arc<History>> {
        let path = std::env::var_os(HISTORY_ENV)?;
        History::open(std::path::Path::new(&path))
            .map_err(|e| {
                tracing::warn!(
                    "cannot open the client history {}: {e}; not recording",
                    path.to_string_lossy()
                )
            })
            .ok()
    }

    fn now_us(&self) -> u128 {
        self.anchor_us + self.anchor.elapsed().as_micros()
    }

    /// `meta` and `table` name the register space: keys of different tables or clusters
    /// are different objects (a follower table is a copy, not the same object).
    fn invoke(&self, op: &ClientOp, meta: u64, table: u8) -> String {
        // Numbered per process, not per history: several clients of one process may
        // record into one file, and a call id must name one call.
        static NEXT_CALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = format!(
            "{}-{}",
            self.pid,
            NEXT_CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let us = self.now_us() as u64;
        self.write(&serde_json::json!({"invoke": {"call": call, "pid": self.pid, "us": us, "meta": meta, "table": table, "op": op}}));
        call
    }

    fn complete(&self, call: String, r: &Result<OpResult, ClientError>) {
        let us = self.now_us() as u64;
        let line = match r {
            Ok(result) => serde_json::json!({"ok": {"call": call, "us": us, "result": result}}),
            Err(e) => serde_json::json!({"info": {"call": call, "us": us, "error": e.to_string()}}),
        };
        self.write(&line);
    }

    /// A lost line makes the history incomplete, which the checker reports (an `invoke`
    /// without its response counts as unknown); it never stops a call.
    fn write(&self, line: &serde_json::Value) {
        use std::io::Write;
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        if let Ok(mut f) = self.file.lock() {
            if let Err(e) = f.write_all(&bytes) {
                tracing::warn!("client history write failed: {e}");
            }
        }
    }
}

/// What a client actor that did not finish was waiting for, for the deadline message.
fn waiting_for(cfg: &Config, phase: &Phase) -> String {
    match phase {
        Phase::Querying | Phase::Backoff => {
            format!(
                "the meta server (node {}) to name a usable primary of the partition",
                cfg.topology.meta
            )
        }
        Phase::Sent { target, .. } => format!("node {} to answer the request", raw_of(*target)),
        Phase::Done => "nothing".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CLIENT_ID_BASE;

    #[test]
    fn client_ids_are_in_the_client_range() {
        for _ in 0..100 {
            let id = random_client_id().expect("the OS random source");
            assert!((CLIENT_ID_BASE..petrel_core::auth::OPERATOR_ID_BASE).contains(&id));
        }
    }
}
