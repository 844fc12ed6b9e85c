//! QUIC transport with mutual TLS: how one actor's `Send`s reach another process, and how
//! a broken link becomes the core's `Msg::PeerDown`.
//!
//! The transport *authenticates*; it does not decide the protocol. Its parts:
//! `tls.rs` (configurations, this process's and the peer's certificate), `link.rs`
//! (dialing, accepting, one registered connection per peer life, readers, `PeerDown`),
//! `session.rs` (client sessions and client ids), `policy.rs` (the one place that says
//! who may send what, and the size limits — to move into the core).
//!
//! **Identity.** Both ends present certificates of a trusted cluster CA (the node's own
//! plus configured remote-cluster CAs, for cross-cluster duplication; each CA is
//! name-constrained to its own cluster's names). A dialer asks TLS to verify the server
//! against the name the address book expects (`<role>.n<id>.<cluster>.petrel`, see
//! `certs.rs`). An acceptor takes the identity the peer's `Hello` claims, with the role
//! the address book gives that id, and asks webpki whether the verified certificate is
//! valid for that name; a client-range id is an operator if its certificate is valid for
//! `operator.<cluster>.petrel`, else a client if valid for `client.<cluster>.petrel`. A
//! node id must be in the address book *for that cluster*, a client of this node's cluster.
//! Anything else is refused: a `warn!` log with the reason, and the connection is closed
//! with the reason as its close message, so the other side can print it.
//!
//! **Links.** One connection per peer pair, opened lazily on the first send and reused;
//! accepted connections are registered too, so replies (e.g. to clients, which are in no
//! address book) go back over them. Each side opens one unidirectional stream whose first
//! frame is its `Hello` (`codec.rs`); further streams a peer opens must start with the same
//! `Hello`. If both sides dial at once there are briefly two connections: both are kept,
//! the newest carries sends. A node dials every node of its cluster when it starts
//! ([`Transport::announce`]); a `Hello` of a *newer life* than a registered connection's
//! closes that connection and reports its life down at once (the process behind it is
//! gone), so nothing more is sent into it.
//!
//! **Failures.** A malformed, oversized or unexpected frame closes the connection with an
//! error log; nothing a peer sends can panic the node. When a registered connection ends
//! (closed, reset, idle timeout: `idle_timeout` with `keep_alive` pings), the actor receives
//! `PeerDown { incarnation }` from that peer, with the incarnation its `Hello` announced —
//! unless another live connection to the same life of that peer remains. A failed dial
//! (unreachable, handshake refused, no `Hello`) drops the messages queued for that peer and
//! delivers `PeerDown` with the *last incarnation this node heard that peer announce, or 0
//! if it never heard one*. 0 is no life (lives start at 1), so a core that fences by
//! incarnation ignores such a notice and falls back on its own timers: a driver must not
//! invent which life it failed to reach. A failed dial with nothing queued (a `watch`
//! reconnect) delivers nothing: no message was lost.
//!
//! **Nothing is dropped silently.** A message that cannot leave (over the frame limit,
//! no route, unreachable peer, overloaded peer) is logged and counted in [`Stats`]; an
//! oversized or unreachable one also reaches the sender's actor as `PeerDown` of the life
//! it was meant for, so the core's retry paths run.
//!
//! **Overload.** Sends never block the actor. Each connection's queue is bounded in bytes
//! (`max_queued_bytes`); a peer that does not drain it is disconnected (and so reported
mod link;
pub mod policy;
mod session;
mod tls;

use anyhow::Context;
pub use link::describe;
pub use policy::{allowed, Kind, Limits};
pub use session::{random_client_id, ClientEndpoint, MAX_SESSIONS_PER_CONNECTION};
pub use tls::{client_config, TlsMaterial};

use crate::certs::{Identity, NodeRole};
use crate::codec::{self, Frame};
use link::{Link, Peers};
use petrel_core::Msg;
use quinn::{Endpoint, VarInt};
use session::Session;
use stateright::actor::Id;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Ids at or above this are clients (random per call); below are address-book nodes.
pub const CLIENT_ID_BASE: u64 = 1 << 32;
/// TLS application protocol: a peer speaking anything else fails the handshake.
pub const ALPN: &[u8] = b"petrel/1";

/// Application close codes (the reason text travels with them).
pub mod close {
    pub const SHUTDOWN: u32 = 0;
    /// A malformed, oversized or unexpected frame.
    pub const PROTOCOL: u32 = 1;
    /// The peer's identity was refused.
    pub const REFUSED: u32 = 2;
    /// The peer did not drain its send queue.
    pub const OVERLOADED: u32 = 3;
    /// The peer sent a message its certificate does not allow, or a key or value over
    /// the limits.
    pub const FORBIDDEN: u32 = 4;
    /// The peer's process restarted: a connection of its new life replaces this one.
    pub const SUPERSEDED: u32 = 5;
}

pub fn id_of(raw: u64) -> Id {
    // Ids are 64-bit; `usize` is 64-bit on every platform this node targets.
    Id::from(raw as usize)
}

pub fn raw_of(id: Id) -> u64 {
    usize::from(id) as u64
}

/// Where a node of the address book listens, which cluster it belongs to and what it is
/// (its certificate must be valid for `<role>.n<id>.<cluster>.petrel`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub cluster: String,
    pub addr: SocketAddr,
    pub role: NodeRole,
}

/// Transport tunables (see `config.rs` for the defaults and the operator's names).
#[derive(Clone, Debug)]
pub struct Settings {
    /// A connection silent this long is dead (the QUIC idle timeout): the failure
    /// detector's grace.
    pub idle_timeout: Duration,
    /// Ping interval keeping live connections from idling out.
    pub keep_alive: Duration,
    /// Time allowed for the TLS handshake and the `Hello` exchange.
    pub handshake_timeout: Duration,
    pub max_frame: usize,
    /// Bytes queued for one connection before the peer counts as overloaded.
    pub max_queued_bytes: usize,
    /// The largest key and value a peer's write may carry.
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            max_frame: codec::MAX_FRAME,
            max_queued_bytes: 64 << 20,
            limits: Limits::default(),
        }
    }
}

/// Messages the transport did not deliver, by reason, for metrics
/// (`petrel_transport_dropped_total{reason}`): none is dropped without a count and a log
/// line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Over the frame limit: could not be encoded (`oversized`).
    pub oversized: AtomicU64,
    /// Queued for a peer that could not be dialed (`unreachable`).
    pub unreachable: AtomicU64,
    /// For a peer outside the address book with no connection, or a client session whose
    /// connection is gone (`no_route`).
    pub no_route: AtomicU64,
    /// The peer did not drain its queue and was disconnected (`overloaded`).
    pub overloaded: AtomicU64,
    /// Received, and refused by the policy: a message kind the sender's certificate does
    /// not allow (`forbidden`), a key or value over the limits (`too_large`).
    pub forbidden: AtomicU64,
    pub too_large: AtomicU64,
}

impl Stats {
    /// A message refused by the core's authorization table (see `Host`).
    pub fn count_forbidden(&self) {
        Stats::count(&self.forbidden, 1);
    }

    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// (reason, count) of dropped sends, then of refused receipts.
    pub fn dropped(&self) -> [(&'static str, u64); 4] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("oversized", get(&self.oversized)),
            ("unreachable", get(&self.unreachable)),
            ("no_route", get(&self.no_route)),
            ("overloaded", get(&self.overloaded)),
        ]
    }

    pub fn refused(&self) -> [(&'static str, u64); 2] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("forbidden", get(&self.forbidden)),
            ("too_large", get(&self.too_large)),
        ]
    }
}

struct Inner {
    endpoint: Endpoint,
    client_cfg: quinn::ClientConfig,
    me: u64,
    cluster: String,
    /// This life's `Hello` and the life it announces (replaced when the node starts a
    /// new life in-process).
    hello: Mutex<(u32, Vec<u8>)>,
    book: BTreeMap<u64, PeerAddr>,
    settings: Settings,
    inbound: mpsc::Sender<(Id, Msg)>,
    peers: Mutex<Peers>,
    stopping: AtomicBool,
    /// Client side: the inbound queue of each live session of this process.
    sessions: Mutex<HashMap<u64, mpsc::Sender<(Id, Msg)>>>,
    stats: Arc<Stats>,
}

/// A handle on this process's QUIC endpoint (cheap to clone).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    /// A client session riding on a shared connection set (see [`ClientEndpoint`]):
    /// its sends go out as `Frame::From`, its shutdown ends only the session.
    session: Option<Arc<Session>>,
}

/// A poisoned lock only means another task panicked mid-update; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a peer's `Hello` said.
#[derive(Clone, Debug)]
struct Hello {
    cluster: String,
    id: u64,
    incarnation: u32,
}

impl Transport {
    /// A node: listen on `listen` (accepting mutual-TLS connections) and dial peers from
    /// the same endpoint. Delivers inbound messages (and `PeerDown`s) to `inbound`.
    #[allow(clippy::too_many_arguments)]
    pub fn bind_node(
        listen: SocketAddr,
        me: u64,
        cluster: &str,
        incarnation: u32,
        book: BTreeMap<u64, PeerAddr>,
        tls: &TlsMaterial,
        settings: Settings,
        inbound: mpsc::Sender<(Id, Msg)>,
    ) -> anyhow::Result<Transport> {
        let role = book.get(&me).map_or(NodeRole::Replica, |p| p.role);
        tls::check_identity(
            tls,
            &Identity::Node {
                cluster: cluster.to_string(),
                id: me,
                role,
            },
        )?;
        let client_cfg = client_config(tls, &settings)?;
        let socket = std::net::UdpSocket::bind(listen)
            .with_context(|| format!("cannot listen on {listen} (UDP)"))?;
        let mut endpoint = Endpoint::new(
            tls::endpoint_config(tls),
            Some(tls::server_config(tls, &settings)?),
            socket,
            quinn::default_runtime().context("no async runtime for QUIC")?,
        )
        .with_context(|| format!("cannot listen on {listen} (UDP)"))?;
        endpoint.set_default_client_config(client_cfg.clone());
        let t = Transport::new(
            endpoint,
            client_cfg,
            me,
            cluster,
            incarnation,
            book,
            settings,
            inbound,
        )?;
        let accept = t.base();
        tokio::spawn(async move { accept.accept_loop().await });
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoint: Endpoint,
        client_cfg: quinn::ClientConfig,
        me: u64,
        cluster: &str,
        incarnation: u32,
        book: BTreeMap<u64, PeerAddr>,
        settings: Settings,
        inbound: mpsc::Sender<(Id, Msg)>,
    ) -> anyhow::Result<Transport> {
        let hello = codec::encode(&Frame::Hello {
            cluster: cluster.to_string(),
            id: me,
            incarnation,
        })?;
        Ok(Transport {
            inner: Arc::new(Inner {
                endpoint,
                client_cfg,
                me,
                cluster: cluster.to_string(),
                hello: Mutex::new((incarnation, hello)),
                book,
                settings,
                inbound,
                peers: Mutex::new(Peers {
                    own_life: incarnation,
                    ..Peers::default()
                }),
                stopping: AtomicBool::new(false),
                sessions: Mutex::new(HashMap::new()),
                stats: Arc::new(Stats::default()),
            }),
            session: None,
        })
    }

    /// This transport without its session, for the tasks it spawns (connections and
    /// their readers belong to the process, not to one session).
    fn base(&self) -> Transport {
        Transport {
            inner: self.inner.clone(),
            session: None,
        }
    }

    /// What this transport dropped or refused, by reason (shared with the metrics).
    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    fn peers(&self) -> MutexGuard<'_, Peers> {
        lock(&self.inner.peers)
    }

    /// The last transport error per peer (newest state), for operator messages; for a
    /// session, of the nodes it sent to.
    pub fn errors(&self) -> Vec<(u64, String)> {
        let used = self.session.as_ref().map(|s| lock(&s.used).clone());
        self.peers()
            .errors
            .iter()
            .filter(|(k, _)| used.as_ref().is_none_or(|u| u.contains(k)))
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// The address book entry of a node.
    pub fn addr_of(&self, id: u64) -> Option<&PeerAddr> {
        self.inner.book.get(&id)
    }

    /// Queue `msg` for `dst`. Never blocks. A message that cannot be delivered is never
    /// dropped silently: it is logged, counted (`Stats`), and the actor learns of it
    /// through `PeerDown`, like a message lost with a crash — so the core's retry paths
    /// run. In particular a message over the frame limit (a `Learn` of a partition over
    /// 16 MiB) reaches the sender as `PeerDown` of the life it was meant for.
    pub fn send(&self, dst: Id, msg: Msg) {
        let d = raw_of(dst);
        if d == self.inner.me && self.session.is_none() {
            let tx = self.inner.inbound.clone();
            tokio::spawn(async move {
                let _ = tx.send((dst, msg)).await;
            });
            return;
        }
        let kind = msg.kind();
        // A node answering a client session: over the connection that carries it.
        let route = match &self.session {
            None => {
                let peers = self.peers();
                if peers.links.contains_key(&d) {
                    None
                } else {
                    peers.routes.get(&d).copied()
                }
            }
            Some(_) => None,
        };
        let frame = match &self.session {
            Some(s) => {
                lock(&s.used).insert(d);
                Frame::From { session: s.id, msg }
            }
            None if route.is_some() => Frame::To { session: d, msg },
            None => Frame::Msg(msg),
        };
        let frame = match codec::encode(&frame) {
            Ok(f) => f,
            Err(e) => {
                Stats::count(&self.inner.stats.oversized, 1);
                let life = {
                    let peers = self.peers();
                    let live = peers
                        .links
                        .get(&d)
                        .and_then(|v| v.last())
                        .map(|l| l.incarnation);
                    live.or_else(|| peers.known.get(&d).copied()).unwrap_or(0)
                };
                tracing::warn!(
                    peer = d,
                    kind,
                    life,
                    "message dropped, reported to the actor as PeerDown: {e}"
                );
                self.undeliverable(d, life);
                return;
            }
        };
        let mut peers = self.peers();
        if let Some(r) = route {
            match peers
                .links
                .get(&r.peer)
                .and_then(|v| v.iter().find(|l| l.stable_id == r.stable_id))
            {
                Some(link) => self.push(link, frame, r.peer),
                None => {
                    Stats::count(&self.inner.stats.no_route, 1);
                    tracing::debug!(
                        session = d,
                        kind,
                        "the client session's connection is gone: message dropped"
                    );
                }
            }
            return;
        }
        if let Some(link) = peers.links.get(&d).and_then(|v| v.last()) {
            self.push(link, frame, d);
            return;
        }
        if let Some(q) = peers.dialing.get_mut(&d) {
            q.push(frame);
            return;
        }
        if self.inner.book.contains_key(&d) {
            peers.dialing.insert(d, vec![frame]);
            drop(peers);
            self.spawn_dial(d);
        } else {
            Stats::count(&self.inner.stats.no_route, 1);
            tracing::debug!(
                peer = d,
                kind,
                "no connection to a peer outside the address book (gone?): message dropped"
            );
        }
    }

    /// A message for `peer` will not leave: tell whoever sent it. A node's actor gets
    /// `PeerDown` of the life the message was for; a client session only its own (not
    /// every session of the process: the others' messages were not lost).
    fn undeliverable(&self, peer: u64, life: u32) {
        let target = match &self.session {
            Some(s) => lock(&self.inner.sessions).get(&s.id).cloned(),
            None => Some(self.inner.inbound.clone()),
        };
        if let Some(tx) = target {
            tokio::spawn(async move {
                let _ = tx
                    .send((id_of(peer), Msg::PeerDown { incarnation: life }))
                    .await;
            });
        }
    }

    fn push(&self, link: &Link, frame: Vec<u8>, peer: u64) {
        let len = frame.len();
        let queued = link.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.inner.settings.max_queued_bytes {
            Stats::count(&self.inner.stats.overloaded, 1);
            tracing::warn!(
                peer,
                queued,
                "peer is not draining its queue; disconnecting it"
            );
            link.conn
                .close(VarInt::from_u32(close::OVERLOADED), b"send queue overflow");
            return;
        }
        if link.tx.send(frame).is_err() {
            link.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Keep a connection to `peer` open (re-dialing after `keep_alive` when it is gone), so
    /// the failure of either side is noticed without traffic. A replica watches its meta
    /// server: that link is the meta server's failure detector.
    pub fn watch(&self, peer: u64) {
        let t = self.base();
        tokio::spawn(async move {
            while !t.inner.stopping.load(Ordering::Relaxed) {
                let start = {
                    let mut peers = t.peers();
                    let idle = peers.links.get(&peer).is_none_or(|v| v.is_empty())
                        && !peers.dialing.contains_key(&peer);
                    if idle {
                        peers.dialing.insert(peer, Vec::new());
                    }
                    idle
                };
                if start {
                    t.dial(peer).await;
                }
                tokio::time::sleep(t.inner.settings.keep_alive).await;
            }
        });
    }

    /// This node started a new life without restarting (the meta server assigned a fresh
    /// node its first life, or declared the previous one dead): new connections announce
    /// it; the connections of the old life close, so peers report that life down and
    /// nothing meant for it reaches the new one; every node of the cluster hears the new
    /// `Hello` at once.
    pub fn set_incarnation(&self, incarnation: u32) -> anyhow::Result<()> {
        let hello = codec::encode(&Frame::Hello {
            cluster: self.inner.cluster.clone(),
            id: self.inner.me,
            incarnation,
        })?;
        // Forget the old life's connections before anything is sent again: a message of
        // the new life (its `Register`) pushed into a connection about to close is lost,
        // and its next beacon, unregistered, is answered "dead" — a new life every beacon
        // (found by a fault campaign: seed 7, b's meta server paused). The new life is
        // recorded with the drain, *before* the new `Hello` is used: a handshake that sent
        // the old `Hello` and registers after this is refused (`register`), else a peer
        // would close it on hearing the new life, and what this life sent into it would be
        // lost with no `PeerDown` (found by a fault campaign: seed 18, a's meta paused, a
        // primary's `Learn` for a learner lost, the partition left at one replica). Frames
        // still waiting for a dial were sent by the old life: they die with it.
        let old: Vec<quinn::Connection> = {
            let mut peers = self.peers();
            peers.own_life = incarnation;
            for q in peers.dialing.values_mut() {
                q.clear();
            }
            peers
                .links
                .drain()
                .flat_map(|(_, v)| v)
                .map(|l| l.conn)
                .collect()
        };
        *lock(&self.inner.hello) = (incarnation, hello);
        for c in old {
            c.close(
                VarInt::from_u32(close::SHUTDOWN),
                b"this node started a new life",
            );
        }
        self.announce();
        Ok(())
    }

    /// Dial every node of this node's own cluster once, so that each hears this life's
    /// `Hello` at start. A peer still holding a connection of this node's previous life
    /// (a restart within its idle timeout) then replaces it at once and reports the old
    /// life down (`link.rs`), instead of sending into the dead connection until it idles
    /// out. A peer that is down costs one failed dial and no `PeerDown` (nothing queued).
    pub fn announce(&self) {
        let own: Vec<u64> = self
            .inner
            .book
            .iter()
            .filter(|(id, p)| **id != self.inner.me && p.cluster == self.inner.cluster)
            .map(|(id, _)| *id)
            .collect();
        for peer in own {
            let start = {
                let mut peers = self.peers();
                let idle = peers.links.get(&peer).is_none_or(|v| v.is_empty())
                    && !peers.dialing.contains_key(&peer);
                if idle {
                    peers.dialing.insert(peer, Vec::new());
                }
                idle
            };
            if start {
                self.spawn_dial(peer);
            }
        }
    }

    /// Tell the actor — and on a client, every live session (each may be waiting on
    /// that node) — that `peer` went down.
    fn deliver_peer_down(&self, peer: u64, incarnation: u32) {
        let mut targets = vec![self.inner.inbound.clone()];
        targets.extend(lock(&self.inner.sessions).values().cloned());
        tokio::spawn(async move {
            for tx in targets {
                let _ = tx.send((id_of(peer), Msg::PeerDown { incarnation })).await;
            }
        });
    }

    /// Close every connection (peers see a clean close at once) and wait briefly for the
    /// close to be sent.
    ///
    /// A client session's shutdown ends only the session: the nodes it used forget its
    /// route, the connections stay for the next call.
    pub async fn shutdown(&self) {
        if let Some(s) = &self.session {
            s.end();
            return;
        }
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner
            .endpoint
            .close(VarInt::from_u32(close::SHUTDOWN), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

#[cfg(test)]
mod tests;
