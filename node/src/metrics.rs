//! Prometheus metrics of one node: gauges read from the actor's state after every turn of
//! the event loop, counters and a latency histogram observed on the messages the loop
//! handles and sends. The node only *reads* here; nothing a metric sees feeds back into a
//! decision.
//!
//! Served as Prometheus text exposition (format 0.0.4) by a small HTTP/1.0 responder on
//! tokio (`GET /metrics`). Hand-rolled on purpose: a scraper needs one GET with a
//! `Content-Length`; hyper/axum would add dozens of crates and a minute of cold build on
//! this machine for that, and the `metrics`/`prometheus-client` crates would still need
//! their labels and text built the same way. The responder reads at most 8 KiB of request
//! within 5 s and serves at most 16 connections at once.
//!
//! What the numbers mean (see also node/README.md):
//!
//! * client requests: counted and timed at the replica from the event loop taking a
//!   `Write`/`Read` off its queue to the matching `WriteReply`/`ReadReply` (same client,
//!   same request id) being handed to QUIC — after the fsync that backs it. A request
//!   whose reply never leaves (the replica restarts, the client's retry is answered
//!   instead) is forgotten after two minutes.
//! * duplication lag: per duplication on a primary, how long the oldest committed but not
//!   yet confirmed mutation has been waiting, counted from the turn in which this node saw
//!   it commit (or, for decrees committed before this node became primary or started
//!   tracking, from then). 0 when nothing is pending.
//! * learning (a `PotentialSecondary`): the core transfers a learner's whole state in one
//!   `Learn` message, so "bytes to transfer" is that message's encoded size, "bytes read"
//!   is what the learner has applied of it (all of it once handled: a message is applied
//!   in one step), and "seconds since the last sync I/O" is the time since the last
//!   `Learn` arrived.
use crate::transport::raw_of;
use petrel_core::dup::{DupStatus, FailMode};
use petrel_core::replica::Status;
use petrel_core::{Decree, ErrorCode, Gpid, Msg, NodeState, ReqId};
use stateright::actor::Id;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Latency histogram buckets (seconds).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Requests waiting for their reply, at most (beyond this, new ones are not timed).
const MAX_PENDING: usize = 65_536;
/// A request without a reply for this long is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(120);
/// Commit-time records kept per partition for the lag gauge.
const MAX_COMMIT_MARKS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    Write,
    Read,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Read => "read",
        }
    }
}

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Per-partition commit times (a primary with duplications), for the shipping lag.
struct CommitMarks {
    /// (last decree of a range that committed in one turn, when this node saw it).
    marks: VecDeque<(Decree, Instant)>,
    seen: Decree,
    since: Instant,
}

impl CommitMarks {
    /// When `decree` committed, as far as this node saw.
    fn committed_at(&self, decree: Decree) -> Instant {
        self.marks
            .iter()
            .find(|(upto, _)| *upto >= decree)
            .map_or(self.since, |(_, t)| *t)
    }
}

/// What the learner side saw of learning, per partition.
struct LearnSeen {
    last_bytes: u64,
    applied_bytes: u64,
    at: Instant,
    rounds: u64,
}

struct PartSnap {
    gpid: Gpid,
    status: Status,
    ballot: u32,
    committed: Decree,
    prepared: Decree,
    snapshot: Decree,
    log_entries: usize,
    recovering: bool,
    learners: Vec<(u64, bool)>,
    dups: Vec<DupSnap>,
}

struct DupSnap {
    dupid: u8,
    status: DupStatus,
    remote_table: u8,
    confirmed: Decree,
    shipped: Decree,
    pending: Decree,
    lag: f64,
    has_target: bool,
}

enum Snap {
    None,
    Meta(petrel_core::meta::MetaState),
    Replica {
        incarnation: u32,
        broken: bool,
        lease_held: bool,
        parts: Vec<PartSnap>,
    },
}

struct Inner {
    role: &'static str,
    id: u64,
    cluster: String,
    started: Instant,
    handled: u64,
    saves: u64,
    snap: Snap,
    pending: HashMap<(u64, Gpid, ReqId, Op), Instant>,
    requests: BTreeMap<(Op, &'static str), u64>,
    latency: BTreeMap<Op, Histogram>,
    commits: BTreeMap<Gpid, CommitMarks>,
    learn: BTreeMap<Gpid, LearnSeen>,
    learn_sent: BTreeMap<Gpid, u64>,
    last_expiry: Instant,
    /// The transport's counts of dropped and refused messages.
    transport: Option<Arc<crate::transport::Stats>>,
}

/// One node's metrics (shared between the event loop and the HTTP responder).
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Inactive => "inactive",
        Status::PotentialSecondary => "potential_secondary",
        Status::Secondary => "secondary",
        Status::Primary => "primary",
    }
}

const STATUSES: [Status; 4] = [
    Status::Inactive,
    Status::PotentialSecondary,
    Status::Secondary,
    Status::Primary,
];
const DUP_STATUSES: [DupStatus; 6] = [
    DupStatus::Init,
    DupStatus::Prepare,
    DupStatus::App,
    DupStatus::Log,
    DupStatus::Pause,
    DupStatus::Removed,
];

pub fn dup_status_name(s: DupStatus) -> &'static str {
    s.name()
}

fn error_name(e: &ErrorCode) -> &'static str {
    match e {
        ErrorCode::NotPrimary => "not_primary",
        ErrorCode::UnknownPartition => "unknown_partition",
        ErrorCode::Recovering => "recovering",
        ErrorCode::InvalidVersion => "invalid_version",
        ErrorCode::PeerDown => "peer_down",
        ErrorCode::Timeout => "timeout",
    }
}

fn encoded_len(msg: &Msg) -> u64 {
    postcard::to_stdvec(msg).map_or(0, |v| v.len() as u64)
}

impl Metrics {
    pub fn new(role: &'static str, id: u64, cluster: &str) -> Arc<Metrics> {
        let now = Instant::now();
        Arc::new(Metrics {
            inner: Mutex::new(Inner {
                role,
                id,
                cluster: cluster.to_string(),
                started: now,
                handled: 0,
                saves: 0,
                snap: Snap::None,
                pending: HashMap::new(),
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                commits: BTreeMap::new(),
                learn: BTreeMap::new(),
                learn_sent: BTreeMap::new(),
                last_expiry: now,
                transport: None,
            }),
        })
    }

    /// Expose the transport's dropped/refused counters from now on.
    pub fn set_transport_stats(&self, stats: Arc<crate::transport::Stats>) {
        self.lock().transport = Some(stats);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The event loop took `msg` from `src` off its queue (before the actor handles it).
    pub fn on_receive(&self, src: Id, msg: &Msg) {
        let (key, op) = match msg {
            Msg::Write { gpid, req, .. } => ((raw_of(src), *gpid, *req), Op::Write),
            Msg::Read { gpid, req, .. } => ((raw_of(src), *gpid, *req), Op::Read),
            Msg::Learn { config, .. } => {
                let bytes = encoded_len(msg);
                let mut m = self.lock();
                let l = m.learn.entry(config.gpid).or_insert(LearnSeen {
                    last_bytes: 0,
                    applied_bytes: 0,
                    at: Instant::now(),
                    rounds: 0,
                });
                l.last_bytes = bytes;
                l.applied_bytes = 0;
                l.at = Instant::now();
                l.rounds += 1;
                return;
            }
            _ => return,
        };
        let mut m = self.lock();
        if m.pending.len() < MAX_PENDING {
            m.pending.insert((key.0, key.1, key.2, op), Instant::now());
        }
    }

    /// The event loop hands `msg` for `dst` to the transport (after the turn's fsync).
    pub fn on_send(&self, dst: Id, msg: &Msg) {
        let (gpid, req, op, result) = match msg {
            Msg::WriteReply { gpid, req, result } => (
                *gpid,
                *req,
                Op::Write,
                result.as_ref().err().map_or("ok", error_name),
            ),
            Msg::ReadReply { gpid, req, result } => (
                *gpid,
                *req,
                Op::Read,
                result.as_ref().err().map_or("ok", error_name),
            ),
            Msg::Learn { config, .. } => {
                let bytes = encoded_len(msg);
                // A Learn over the frame limit is not sent (the transport drops it, counts it
                // in petrel_transport_dropped_total and reports the learner down): it must
                // not count as bytes sent.
                if bytes as usize <= crate::codec::MAX_FRAME {
                    *self.lock().learn_sent.entry(config.gpid).or_insert(0) += bytes;
                }
                return;
            }
            _ => return,
        };
        let mut m = self.lock();
        *m.requests.entry((op, result)).or_insert(0) += 1;
        if let Some(at) = m.pending.remove(&(raw_of(dst), gpid, req, op)) {
            m.latency
                .entry(op)
                .or_default()
                .observe(at.elapsed().as_secs_f64());
        }
    }

    /// After a turn: read the gauges from the actor's state.
    pub fn on_turn(&self, state: &NodeState, handled: u64, saves: u64) {
        let now = Instant::now();
        let mut m = self.lock();
        m.handled = handled;
        m.saves = saves;
        if now.duration_since(m.last_expiry) > Duration::from_secs(1) {
            m.last_expiry = now;
            m.pending
                .retain(|_, at| now.duration_since(*at) < PENDING_TTL);
        }
        match state {
            NodeState::Meta(s) => m.snap = Snap::Meta(s.clone()),
            NodeState::Client(_) => m.snap = Snap::None,
            NodeState::Replica(r) => {
                let inner = &mut *m;
                let mut parts = Vec::with_capacity(r.parts.len());
                for (gpid, p) in &r.parts {
                    // Commit times, for primaries that duplicate.
                    let duplicating = p.status == Status::Primary && !p.dups.is_empty();
                    if duplicating {
                        let marks = inner.commits.entry(*gpid).or_insert(CommitMarks {
                            marks: VecDeque::new(),
                            seen: p.committed,
                            since: now,
                        });
                        if p.committed < marks.seen {
                            *marks = CommitMarks {
                                marks: VecDeque::new(),
                                seen: p.committed,
                                since: now,
                            };
                        } else if p.committed > marks.seen {
                            marks.marks.push_back((p.committed, now));
                            marks.seen = p.committed;
                            if marks.marks.len() > MAX_COMMIT_MARKS {
                                // Keep the newest; the oldest pending then count from `since`.
                                marks.marks.pop_front();
                            }
                        }
                        let min_confirmed = p
                            .dups
                            .values()
                            .map(|d| d.confirmed)
                            .min()
                            .unwrap_or(p.committed);
                        while marks
                            .marks
                            .front()
                            .is_some_and(|(upto, _)| *upto <= min_confirmed)
                        {
                            if let Some((_, t)) = marks.marks.pop_front() {
                                marks.since = t;
                            }
                        }
                    } else {
                        inner.commits.remove(gpid);
                    }
                    let marks = inner.commits.get(gpid);
                    let dups = p
                        .dups
                        .iter()
                        .map(|(id, d)| {
                            let pending = p.committed.saturating_sub(d.confirmed);
                            let lag = match (pending, marks) {
                                (0, _) | (_, None) => 0.0,
                                (_, Some(mk)) => now
                                    .duration_since(mk.committed_at(d.confirmed.saturating_add(1)))
                                    .as_secs_f64(),
                            };
                            DupSnap {
                                dupid: *id,
                                status: d.entry.status,
                                remote_table: d.entry.remote_table,
                                confirmed: d.confirmed,
                                shipped: d.shipped,
                                pending,
                                lag,
                                has_target: d.target.is_some(),
                            }
                        })
                        .collect();
                    if p.status == Status::PotentialSecondary {
                        if let Some(l) = inner.learn.get_mut(gpid) {
                            // The Learn was handled in the turn that just ended: applied.
                            l.applied_bytes = l.last_bytes;
                        }
                    }
                    parts.push(PartSnap {
                        gpid: *gpid,
                        status: p.status,
                        ballot: p.config.ballot,
                        committed: p.committed,
                        prepared: p.last_decree(),
                        snapshot: p.snapshot.decree,
                        log_entries: p.log.len(),
                        recovering: p.recovering,
                        learners: p
                            .learners
                            .iter()
                            .map(|(id, caught)| (raw_of(*id), *caught))
                            .collect(),
                        dups,
                    });
                }
                inner.commits.retain(|g, _| {
                    r.parts
                        .get(g)
                        .is_some_and(|p| p.status == Status::Primary && !p.dups.is_empty())
                });
                inner.snap = Snap::Replica {
                    incarnation: r.incarnation,
                    broken: r.broken.is_some(),
                    lease_held: r.lease.held,
                    parts,
                };
            }
        }
    }

    /// The Prometheus text exposition of everything above.
    pub fn render(&self) -> String {
        let m = self.lock();
        let now = Instant::now();
        let mut w = Writer::default();
        w.family(
            "petrel_node_info",
            "The node: role, id, cluster (value 1).",
            "gauge",
        );
        w.sample(
            &[
                ("role", m.role.to_string()),
                ("id", m.id.to_string()),
                ("cluster", m.cluster.clone()),
            ],
            1.0,
        );
        w.family(
            "petrel_uptime_seconds",
            "Seconds since the node's metrics started.",
            "gauge",
        );
        w.sample(&[], now.duration_since(m.started).as_secs_f64());
        w.family(
            "petrel_events_handled_total",
            "Events (messages, timers) the actor handled.",
            "counter",
        );
        w.sample(&[], m.handled as f64);
        w.family(
            "petrel_saves_total",
            "Durable saves (one fsync each; one per turn at most).",
            "counter",
        );
        w.sample(&[], m.saves as f64);
        if let Some(t) = &m.transport {
            w.family(
                "petrel_transport_dropped_total",
                "Messages this node could not send, by reason (oversized: over the frame limit; unreachable: the peer could not be dialed; no_route: no connection to a client or unknown peer; overloaded: the peer did not drain its queue). Each also logs a warning, and oversized/unreachable reach the actor as PeerDown.",
                "counter",
            );
            for (reason, n) in t.dropped() {
                w.sample(&[("reason", reason.to_string())], n as f64);
            }
            w.family(
                "petrel_transport_refused_total",
                "Messages received and refused, by reason (forbidden: the sender's certificate does not allow that message; too_large: a key or value over [limits]).",
                "counter",
            );
            for (reason, n) in t.refused() {
                w.sample(&[("reason", reason.to_string())], n as f64);
            }
        }
        match &m.snap {
            Snap::None => {}
            Snap::Meta(s) => render_meta(&mut w, s),
            Snap::Replica {
                incarnation,
                broken,
                lease_held,
                parts,
            } => {
                w.family(
                    "petrel_incarnation",
                    "This replica server's life (durable boot count).",
                    "gauge",
                );
                w.sample(&[], f64::from(*incarnation));
                w.family(
                    "petrel_replica_broken",
                    "1 if an internal invariant broke and the replica stopped acting.",
                    "gauge",
                );
                w.sample(&[], if *broken { 1.0 } else { 0.0 });
                w.family(
                    "petrel_replica_lease_held",
                    "1 while this replica holds its lease from the meta server (without it, it serves nothing as a primary).",
                    "gauge",
                );
                w.sample(&[], if *lease_held { 1.0 } else { 0.0 });
                render_parts(&mut w, parts, &m.learn, &m.learn_sent, now);
                render_requests(&mut w, &m.requests, &m.latency);
            }
        }
        w.out
    }

    /// Serve `GET /metrics` on `addr` until the process ends. Returns the bound address.
    pub async fn serve(self: &Arc<Self>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr} (TCP): {e}"))?;
        let bound = listener.local_addr()?;
        let me = self.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream); // too many scrapers at once
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), respond(&me, stream)).await;
                    drop(permit);
                });
            }
        });
        Ok(bound)
    }
}

async fn respond(m: &Metrics, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 8192 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            m.render(),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "petrel node: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let head = format!("HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

fn render_meta(w: &mut Writer, s: &petrel_core::meta::MetaState) {
    let pl = |g: &Gpid| {
        vec![
            ("table", g.table.to_string()),
            ("partition", g.partition.to_string()),
        ]
    };
    w.family(
        "petrel_meta_partitions",
        "Partitions the meta server knows (own and follower tables).",
        "gauge",
    );
    w.sample(&[], s.configs.len() as f64);
    w.family(
        "petrel_meta_partition_ballot",
        "Committed configuration ballot per partition.",
        "gauge",
    );
    for c in s.configs.values() {
        w.sample(&pl(&c.gpid), f64::from(c.ballot));
    }
    w.family(
        "petrel_meta_partition_has_primary",
        "1 if the partition's configuration names a primary that is alive.",
        "gauge",
    );
    for c in s.configs.values() {
        let ok = c.primary.is_some_and(|p| s.alive.contains_key(&p));
        w.sample(&pl(&c.gpid), if ok { 1.0 } else { 0.0 });
    }
    w.family(
        "petrel_meta_partition_members",
        "Members (primary + secondaries) in the configuration.",
        "gauge",
    );
    for c in s.configs.values() {
        w.sample(&pl(&c.gpid), c.member_count() as f64);
    }
    w.family(
        "petrel_meta_partition_max_replicas",
        "The partition's target replica count.",
        "gauge",
    );
    for c in s.configs.values() {
        w.sample(&pl(&c.gpid), f64::from(c.max_replica_count));
    }
    w.family(
        "petrel_meta_alive_replicas",
        "Replica servers the meta server believes alive.",
        "gauge",
    );
    w.sample(&[], s.alive.len() as f64);
    w.family(
        "petrel_meta_replica_incarnation",
        "The registered life of each alive replica server.",
        "gauge",
    );
    for (id, inc) in &s.alive {
        w.sample(&[("replica", raw_of(*id).to_string())], f64::from(*inc));
    }
    w.family(
        "petrel_meta_follower_tables",
        "Tables of this cluster that follow another cluster's table.",
        "gauge",
    );
    w.sample(&[], s.followers.len() as f64);
    w.family(
        "petrel_meta_dup_status",
        "Duplication status (1 for the current one).",
        "gauge",
    );
    for d in s.dups.values() {
        for st in DUP_STATUSES {
            let l = [
                ("dupid", d.dupid.to_string()),
                ("table", d.table.to_string()),
                ("status", dup_status_name(st).to_string()),
            ];
            w.sample(&l, if d.status == st { 1.0 } else { 0.0 });
        }
    }
    w.family(
        "petrel_meta_dup_confirmed_decree",
        "Per partition: the follower holds every source mutation up to this decree (persisted).",
        "gauge",
    );
    for d in s.dups.values() {
        for (p, c) in &d.confirmed {
            w.sample(
                &[
                    ("dupid", d.dupid.to_string()),
                    ("table", d.table.to_string()),
                    ("partition", p.to_string()),
                ],
                f64::from(*c),
            );
        }
    }
    w.family(
        "petrel_meta_dup_stalled",
        "1 if the duplication cannot progress (the reason is in petrel_meta_dup_info).",
        "gauge",
    );
    for d in s.dups.values() {
        w.sample(
            &[("dupid", d.dupid.to_string())],
            if d.stall.is_some() { 1.0 } else { 0.0 },
        );
    }
    w.family(
        "petrel_meta_dup_create_attempts",
        "Create-follower requests sent without an answer.",
        "gauge",
    );
    for d in s.dups.values() {
        w.sample(
            &[("dupid", d.dupid.to_string())],
            f64::from(d.create_attempts),
        );
    }
    w.family("petrel_meta_dup_fail_mode", "A duplication's fail mode (1 for the current one): slow retries a refused batch, skip gives it up.", "gauge");
    for d in s.dups.values() {
        for mode in [FailMode::Slow, FailMode::Skip] {
            w.sample(
                &[
                    ("dupid", d.dupid.to_string()),
                    ("mode", mode.name().to_string()),
                ],
                if d.fail_mode == mode { 1.0 } else { 0.0 },
            );
        }
    }
    w.family(
        "petrel_meta_dup_skipped_mutations_total",
        "Source mutations given up under fail mode skip (the follower refused them).",
        "counter",
    );
    for d in s.dups.values() {
        w.sample(&[("dupid", d.dupid.to_string())], f64::from(d.skipped));
    }
    w.family(
        "petrel_meta_dup_refusing_partitions",
        "Partitions whose follower refuses shipped mutations.",
        "gauge",
    );
    for d in s.dups.values() {
        w.sample(&[("dupid", d.dupid.to_string())], d.refusing.len() as f64);
    }
    w.family(
        "petrel_meta_dup_info",
        "A duplication's fixed facts and stall reason (value 1).",
        "gauge",
    );
    for d in s.dups.values() {
        w.sample(
            &[
                ("dupid", d.dupid.to_string()),
                ("table", d.table.to_string()),
                ("remote_meta", raw_of(d.remote_meta).to_string()),
                ("remote_table", d.remote_table.to_string()),
                ("stall", d.stall.clone().unwrap_or_default()),
            ],
            1.0,
        );
    }
}

/// A gauge family: name, help, how to read it.
type Gauge<T> = (&'static str, &'static str, fn(T) -> f64);
type LearnGauge = (&'static str, &'static str, fn(&LearnSeen, Instant) -> f64);

fn render_parts(
    w: &mut Writer,
    parts: &[PartSnap],
    learn: &BTreeMap<Gpid, LearnSeen>,
    sent: &BTreeMap<Gpid, u64>,
    now: Instant,
) {
    let pl = |g: &Gpid| {
        vec![
            ("table", g.table.to_string()),
            ("partition", g.partition.to_string()),
        ]
    };
    w.family(
        "petrel_partition_role",
        "This replica's role for the partition (1 for the current one).",
        "gauge",
    );
    for p in parts {
        for st in STATUSES {
            let mut l = pl(&p.gpid);
            l.push(("role", status_name(st).to_string()));
            w.sample(&l, if p.status == st { 1.0 } else { 0.0 });
        }
    }
    let gauges: [Gauge<&PartSnap>; 6] = [
        (
            "petrel_partition_ballot",
            "The newest configuration ballot this replica knows.",
            |p| f64::from(p.ballot),
        ),
        (
            "petrel_partition_committed_decree",
            "Last committed decree.",
            |p| f64::from(p.committed),
        ),
        (
            "petrel_partition_prepared_decree",
            "Last prepared (logged) decree.",
            |p| f64::from(p.prepared),
        ),
        (
            "petrel_partition_snapshot_decree",
            "Decree up to which the log is collected into the snapshot.",
            |p| f64::from(p.snapshot),
        ),
        (
            "petrel_partition_log_entries",
            "Log entries kept after the snapshot.",
            |p| p.log_entries as f64,
        ),
        (
            "petrel_partition_recovering",
            "1 while learning (a recovering replica serves no reads).",
            |p| if p.recovering { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, f) in gauges {
        w.family(name, help, "gauge");
        for p in parts {
            w.sample(&pl(&p.gpid), f(p));
        }
    }
    // The primary's view of its learners.
    w.family(
        "petrel_primary_learner_caught_up",
        "A primary's learner: 1 once caught up (its ACK is then needed to commit).",
        "gauge",
    );
    for p in parts {
        for (id, caught) in &p.learners {
            let mut l = pl(&p.gpid);
            l.push(("learner", id.to_string()));
            w.sample(&l, if *caught { 1.0 } else { 0.0 });
        }
    }
    w.family(
        "petrel_learn_sent_bytes_total",
        "Bytes of Learn messages this replica sent as primary (encoded).",
        "counter",
    );
    for (g, b) in sent {
        w.sample(&pl(g), *b as f64);
    }
    // The learner's view (PotentialSecondary only).
    let learning: Vec<(&PartSnap, &LearnSeen)> = parts
        .iter()
        .filter(|p| p.status == Status::PotentialSecondary)
        .filter_map(|p| learn.get(&p.gpid).map(|l| (p, l)))
        .collect();
    let lg: [LearnGauge; 5] = [
        (
            "petrel_learn_total_bytes",
            "Learner: bytes of the state to transfer (the last Learn message, encoded).",
            |l, _| l.last_bytes as f64,
        ),
        (
            "petrel_learn_read_bytes",
            "Learner: bytes of it received and applied.",
            |l, _| l.applied_bytes as f64,
        ),
        (
            "petrel_learn_left_bytes",
            "Learner: bytes still to apply.",
            |l, _| l.last_bytes.saturating_sub(l.applied_bytes) as f64,
        ),
        (
            "petrel_learn_percent",
            "Learner: percent of the state applied.",
            |l, _| {
                if l.last_bytes == 0 {
                    0.0
                } else {
                    100.0 * l.applied_bytes as f64 / l.last_bytes as f64
                }
            },
        ),
        (
            "petrel_learn_seconds_since_io",
            "Learner: seconds since the last Learn message arrived.",
            |l, now| now.duration_since(l.at).as_secs_f64(),
        ),
    ];
    for (name, help, f) in lg {
        w.family(name, help, "gauge");
        for (p, l) in &learning {
            w.sample(&pl(&p.gpid), f(l, now));
        }
    }
    w.family(
        "petrel_learn_rounds_total",
        "Learn messages this replica received as a learner.",
        "counter",
    );
    for (g, l) in learn {
        w.sample(&pl(g), l.rounds as f64);
    }
    // Duplications (primaries only: the duplicators run there).
    let dl = |p: &PartSnap, d: &DupSnap| {
        let mut l = pl(&p.gpid);
        l.push(("dupid", d.dupid.to_string()));
        l
    };
    w.family(
        "petrel_dup_status",
        "A primary's duplicator status (1 for the current one).",
        "gauge",
    );
    for p in parts {
        for d in &p.dups {
            for st in DUP_STATUSES {
                let mut l = dl(p, d);
                l.push(("status", dup_status_name(st).to_string()));
                w.sample(&l, if d.status == st { 1.0 } else { 0.0 });
            }
        }
    }
    let dg: [Gauge<&DupSnap>; 6] = [
        (
            "petrel_dup_confirmed_decree",
            "The follower committed every mutation up to this decree.",
            |d| f64::from(d.confirmed),
        ),
        (
            "petrel_dup_shipped_decree",
            "The last decree shipped to the follower.",
            |d| f64::from(d.shipped),
        ),
        (
            "petrel_dup_pending_mutations",
            "Committed here, not yet confirmed by the follower (committed - confirmed).",
            |d| f64::from(d.pending),
        ),
        (
            "petrel_dup_shipping_lag_seconds",
            "How long the oldest pending mutation has waited since it committed (0: none pending).",
            |d| d.lag,
        ),
        (
            "petrel_dup_follower_known",
            "1 if the duplicator knows the follower primary to send to.",
            |d| if d.has_target { 1.0 } else { 0.0 },
        ),
        (
            "petrel_dup_remote_table",
            "The follower table this duplicator feeds.",
            |d| f64::from(d.remote_table),
        ),
    ];
    for (name, help, f) in dg {
        w.family(name, help, "gauge");
        for p in parts {
            for d in &p.dups {
                w.sample(&dl(p, d), f(d));
            }
        }
    }
}

fn render_requests(
    w: &mut Writer,
    requests: &BTreeMap<(Op, &'static str), u64>,
    latency: &BTreeMap<Op, Histogram>,
) {
    w.family(
        "petrel_client_requests_total",
        "Client requests answered by this replica, by operation and result.",
        "counter",
    );
    for ((op, result), n) in requests {
        w.sample(
            &[
                ("op", op.name().to_string()),
                ("result", result.to_string()),
            ],
            *n as f64,
        );
    }
    w.family(
        "petrel_client_request_seconds",
        "From the event loop taking a client request to its reply leaving (after the fsync).",
        "histogram",
    );
    for (op, h) in latency {
        for (i, b) in BUCKETS.iter().enumerate() {
            w.sample_named(
                "petrel_client_request_seconds_bucket",
                &[("op", op.name().to_string()), ("le", format_float(*b))],
                h.counts[i] as f64,
            );
        }
        w.sample_named(
            "petrel_client_request_seconds_bucket",
            &[("op", op.name().to_string()), ("le", "+Inf".to_string())],
            h.count as f64,
        );
        w.sample_named(
            "petrel_client_request_seconds_sum",
            &[("op", op.name().to_string())],
            h.sum,
        );
        w.sample_named(
            "petrel_client_request_seconds_count",
            &[("op", op.name().to_string())],
            h.count as f64,
        );
    }
}

fn format_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Prometheus text: `# HELP`/`# TYPE` once per family, then its samples.
#[derive(Default)]
struct Writer {
    out: String,
    family: String,
}

impl Writer {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.family = name.to_string();
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, labels: &[(&str, String)], value: f64) {
        let name = std::mem::take(&mut self.family);
        self.sample_named(&name, labels, value);
        self.family = name;
    }

    fn sample_named(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_float(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::id_of;
    use petrel_core::Node;
    use stateright::actor::{Actor, Out};
    use std::borrow::Cow;

    /// Replica 1 of a one-replica cluster, primary of table 1 (built through the config
    /// file, the one place that spells out the core's configuration structs).
    fn replica_state() -> (Node, NodeState) {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = crate::up::write_cluster(dir.path(), &crate::up::Plan::new("alpha", 1))
            .expect("layout");
        let cfg = crate::config::Config::load(&layout.nodes[1].config)
            .expect("config")
            .replica_cfg()
            .expect("replica cfg");
        let meta = id_of(layout.nodes[0].id);
        let node = Node::Replica(cfg);
        let mut out = Out::new();
        let state = node.on_start(id_of(1), &None, &mut out);
        // Its lease: one beacon, acknowledged by the meta server.
        let mut cow = Cow::Owned(state);
        node.on_timeout(id_of(1), &mut cow, &petrel_core::Timer::Beacon, &mut out);
        node.on_msg(
            id_of(1),
            &mut cow,
            meta,
            Msg::BeaconAck {
                incarnation: 1,
                seq: 1,
                alive: true,
            },
            &mut out,
        );
        (node, cow.into_owned())
    }

    #[test]
    fn a_write_is_counted_timed_and_its_decree_shows() {
        let (node, mut state) = replica_state();
        let m = Metrics::new("replica", 1, "alpha");
        let client = id_of((1u64 << 32) + 5);
        let gpid = Gpid {
            table: 1,
            partition: 0,
        };
        let msg = Msg::Write {
            gpid,
            req: 1,
            key: "k".into(),
            value: Some("7".into()),
        };
        m.on_receive(client, &msg);
        let mut out = Out::new();
        let mut cow = Cow::Borrowed(&state);
        node.on_msg(id_of(1), &mut cow, client, msg, &mut out);
        state = cow.into_owned();
        for c in out {
            if let stateright::actor::Command::Send(dst, msg) = c {
                m.on_send(dst, &msg);
            }
        }
        m.on_turn(&state, 1, 1);
        let text = m.render();
        for needle in [
            "petrel_client_requests_total{op=\"write\",result=\"ok\"} 1.0",
            "petrel_client_request_seconds_count{op=\"write\"} 1.0",
            "petrel_client_request_seconds_bucket{op=\"write\",le=\"+Inf\"} 1.0",
            "petrel_partition_committed_decree{table=\"1\",partition=\"0\"} 1.0",
            "petrel_partition_role{table=\"1\",partition=\"0\",role=\"primary\"} 1.0",
            "petrel_node_info{role=\"replica\",id=\"1\",cluster=\"alpha\"} 1.0",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
        // Every sample line parses as `name{labels} number`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn labels_are_escaped() {
        let mut w = Writer::default();
        w.family("x", "help", "gauge");
        w.sample(&[("stall", "a \"quoted\"\nreason\\".to_string())], 1.0);
        assert!(
            w.out.contains(r#"x{stall="a \"quoted\"\nreason\\"} 1.0"#),
            "{}",
            w.out
        );
    }

    #[tokio::test]
    async fn served_over_http() {
        let m = Metrics::new("meta", 0, "alpha");
        let addr = m
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut body = String::new();
            s.read_to_string(&mut body).await.expect("read");
            body
        };
        let r = get("/metrics").await;
        assert!(
            r.starts_with("HTTP/1.0 200 OK") && r.contains("petrel_node_info{role=\"meta\""),
            "{r}"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.0 404"));
    }
}
