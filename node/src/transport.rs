//! QUIC transport with mutual TLS: how one actor's `Send`s reach another process, and how
//! a broken link becomes the core's `Msg::PeerDown`.
//!
//! **Identity.** Both ends present certificates of a trusted cluster CA (the node's own
//! plus configured remote-cluster CAs, for cross-cluster duplication). A dialer asks TLS
//! to verify the server against the name the address book expects (`n<id>.<cluster>.petrel`,
//! see `certs.rs`). An acceptor maps the client certificate's SAN to an [`Identity`] and
//! requires the peer's `Hello` to claim exactly that identity; a node id must be in the
//! address book *for that cluster*, a client must be of this node's cluster. Anything else
//! is refused: a `warn!` log with the reason, and the connection is closed with the reason
//! as its close message, so the other side can print it.
//!
//! **Links.** One connection per peer pair, opened lazily on the first send and reused;
//! accepted connections are registered too, so replies (e.g. to clients, which are in no
//! address book) go back over them. Each side opens one unidirectional stream whose first
//! frame is its `Hello` (`codec.rs`); further streams a peer opens must start with the same
//! `Hello`. If both sides dial at once there are briefly two connections: both are kept,
//! the newest carries sends.
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
//! **Overload.** Sends never block the actor. Each connection's queue is bounded in bytes
//! (`max_queued_bytes`); a peer that does not drain it is disconnected (and so reported
//! down) rather than letting memory grow without bound.
use crate::certs::{cert_identities, node_name, Identity};
use crate::codec::{self, Frame};
use anyhow::{bail, Context};
use petrel_core::Msg;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use stateright::actor::Id;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Ids at or above this are clients (random per process); below are address-book nodes.
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
}

pub fn id_of(raw: u64) -> Id {
    // Ids are 64-bit; `usize` is 64-bit on every platform this node targets.
    Id::from(raw as usize)
}

pub fn raw_of(id: Id) -> u64 {
    usize::from(id) as u64
}

/// Where a node of the address book listens, and which cluster it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub cluster: String,
    pub addr: SocketAddr,
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            max_frame: codec::MAX_FRAME,
            max_queued_bytes: 64 << 20,
        }
    }
}

/// Certificates and key of this process.
pub struct TlsMaterial {
    pub roots: Vec<CertificateDer<'static>>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Load PEM files: this cluster's CA, remote clusters' CAs, this process's chain + key.
    pub fn load(ca: &Path, remote_cas: &[PathBuf], cert: &Path, key: &Path) -> anyhow::Result<TlsMaterial> {
        let mut roots = Vec::new();
        for path in std::iter::once(ca).chain(remote_cas.iter().map(PathBuf::as_path)) {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read CA certificate file {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
            if certs.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
            roots.extend(certs);
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read certificate file {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read private key {}", key.display()))?;
        Ok(TlsMaterial { roots, chain, key })
    }

    /// The identities this process's own certificate names.
    pub fn identities(&self) -> Vec<Identity> {
        self.chain.first().map(|c| cert_identities(c)).unwrap_or_default()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(tls: &TlsMaterial) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in &tls.roots {
        roots.add(c.clone()).context("a CA certificate was refused")?;
    }
    Ok(Arc::new(roots))
}

fn quic_transport(s: &Settings) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(quinn::IdleTimeout::try_from(s.idle_timeout).context("idle timeout out of range")?));
    t.keep_alive_interval(Some(s.keep_alive));
    // Frames travel on unidirectional streams only.
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(16));
    Ok(Arc::new(t))
}

/// The dialing side's QUIC + TLS configuration (public for tools and tests that speak
/// the wire protocol directly).
pub fn client_config(tls: &TlsMaterial, s: &Settings) -> anyhow::Result<quinn::ClientConfig> {
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 unavailable")?
        .with_root_certificates(root_store(tls)?)
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())
        .context("the certificate and key do not form a valid client identity")?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(c).context("QUIC client TLS config")?));
    cfg.transport_config(quic_transport(s)?);
    Ok(cfg)
}

fn server_config(tls: &TlsMaterial, s: &Settings) -> anyhow::Result<quinn::ServerConfig> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(root_store(tls)?, provider())
        .build()
        .context("client certificate verifier")?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 unavailable")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .context("the certificate and key do not form a valid server identity")?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(c).context("QUIC server TLS config")?));
    cfg.transport_config(quic_transport(s)?);
    Ok(cfg)
}

/// One registered connection to a peer.
struct Link {
    stable_id: usize,
    incarnation: u32,
    conn: Connection,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Peers {
    /// Live registered connections per peer, oldest first (the last one carries sends).
    links: HashMap<u64, Vec<Link>>,
    /// Frames waiting for a dial in progress.
    dialing: HashMap<u64, Vec<Vec<u8>>>,
    /// The last incarnation each peer announced.
    known: HashMap<u64, u32>,
    /// The last failure per peer, for operators (the client prints these).
    errors: BTreeMap<u64, String>,
    /// Node side: the client sessions heard of (`Frame::From`), and the connection that
    /// carries each (replies to a session go back over it as `Frame::To`).
    routes: HashMap<u64, Route>,
    /// Node side: live sessions per connection (by stable id), bounded.
    route_counts: HashMap<usize, usize>,
}

/// Which connection carries a client session.
#[derive(Clone, Copy, Debug)]
struct Route {
    /// The connection's peer (the client process's own id).
    peer: u64,
    stable_id: usize,
}

/// Live client sessions one connection may carry; a client beyond it is disconnected (it
/// would make the node's route table grow without bound).
pub const MAX_SESSIONS_PER_CONNECTION: usize = 16_384;

struct Inner {
    endpoint: Endpoint,
    client_cfg: quinn::ClientConfig,
    me: u64,
    cluster: String,
    hello: Vec<u8>,
    book: BTreeMap<u64, PeerAddr>,
    settings: Settings,
    inbound: mpsc::Sender<(Id, Msg)>,
    peers: Mutex<Peers>,
    stopping: AtomicBool,
    /// Client side: the inbound queue of each live session of this process.
    sessions: Mutex<HashMap<u64, mpsc::Sender<(Id, Msg)>>>,
}

/// A handle on this process's QUIC endpoint (cheap to clone).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    /// A client session riding on a shared connection set (see [`ClientEndpoint`]):
    /// its sends go out as `Frame::From`, its shutdown ends only the session.
    session: Option<Arc<Session>>,
}

/// One client session: a core client actor's identity on a [`ClientEndpoint`]'s
/// connections. Ended (routes forgotten on both sides) by `shutdown` or when dropped.
struct Session {
    id: u64,
    inner: Arc<Inner>,
    /// The nodes this session sent to: told `End` when it is over, and their transport
    /// errors are the ones the session reports.
    used: Mutex<std::collections::BTreeSet<u64>>,
    ended: AtomicBool,
}

impl Session {
    fn end(&self) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        lock(&self.inner.sessions).remove(&self.id);
        let used: Vec<u64> = lock(&self.used).iter().copied().collect();
        let Ok(frame) = codec::encode(&Frame::End { session: self.id }) else { return };
        let base = Transport { inner: self.inner.clone(), session: None };
        let peers = base.peers();
        for peer in used {
            // Only over a live connection: no dial just to say goodbye.
            if let Some(link) = peers.links.get(&peer).and_then(|v| v.last()) {
                base.push(link, frame.clone(), peer);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
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

/// Whether a peer is a client (restricted messages) or a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Node,
    Client,
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
        check_identity(tls, me, cluster)?;
        let client_cfg = client_config(tls, &settings)?;
        let mut endpoint = Endpoint::server(server_config(tls, &settings)?, listen)
            .with_context(|| format!("cannot listen on {listen} (UDP)"))?;
        endpoint.set_default_client_config(client_cfg.clone());
        let t = Transport::new(endpoint, client_cfg, me, cluster, incarnation, book, settings, inbound)?;
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
        let hello = codec::encode(&Frame::Hello { cluster: cluster.to_string(), id: me, incarnation })?;
        Ok(Transport {
            inner: Arc::new(Inner {
                endpoint,
                client_cfg,
                me,
                cluster: cluster.to_string(),
                hello,
                book,
                settings,
                inbound,
                peers: Mutex::new(Peers::default()),
                stopping: AtomicBool::new(false),
                sessions: Mutex::new(HashMap::new()),
            }),
            session: None,
        })
    }

    /// This transport without its session, for the tasks it spawns (connections and
    /// their readers belong to the process, not to one session).
    fn base(&self) -> Transport {
        Transport { inner: self.inner.clone(), session: None }
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

    /// Queue `msg` for `dst`. Never blocks; a message that cannot be delivered is dropped
    /// (the actor learns of it through `PeerDown`, like a message lost with a crash).
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
                if peers.links.contains_key(&d) { None } else { peers.routes.get(&d).copied() }
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
                tracing::error!(peer = d, kind, "dropping a message that cannot be sent: {e}");
                return;
            }
        };
        let mut peers = self.peers();
        if let Some(r) = route {
            match peers.links.get(&r.peer).and_then(|v| v.iter().find(|l| l.stable_id == r.stable_id)) {
                Some(link) => self.push(link, frame, r.peer),
                None => tracing::debug!(session = d, kind, "the client session's connection is gone: message dropped"),
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
            tracing::debug!(peer = d, kind, "no connection to a peer outside the address book (gone?): message dropped");
        }
    }

    fn push(&self, link: &Link, frame: Vec<u8>, peer: u64) {
        let len = frame.len();
        let queued = link.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.inner.settings.max_queued_bytes {
            tracing::warn!(peer, queued, "peer is not draining its queue; disconnecting it");
            link.conn.close(VarInt::from_u32(close::OVERLOADED), b"send queue overflow");
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
                    let idle = peers.links.get(&peer).is_none_or(|v| v.is_empty()) && !peers.dialing.contains_key(&peer);
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

    fn spawn_dial(&self, peer: u64) {
        let t = self.base();
        tokio::spawn(async move { t.dial(peer).await });
    }

    async fn dial(&self, peer: u64) {
        let result = self.try_dial(peer).await;
        match result {
            Ok((conn, hello, send, recv)) => self.register(conn, Kind::Node, hello, send, recv),
            Err(reason) => {
                let addr = self.inner.book.get(&peer).map(|p| p.addr.to_string()).unwrap_or_default();
                let mut peers = self.peers();
                peers.errors.insert(peer, format!("node {peer} at {addr}: {reason}"));
                let queued = peers.dialing.remove(&peer).unwrap_or_default();
                if let Some(link) = peers.links.get(&peer).and_then(|v| v.last()) {
                    // The peer dialed us meanwhile: use that connection.
                    for f in queued {
                        self.push(link, f, peer);
                    }
                    return;
                }
                if queued.is_empty() {
                    tracing::debug!(peer, %addr, "dial failed: {reason}");
                    return;
                }
                let life = peers.known.get(&peer).copied().unwrap_or(0);
                drop(peers);
                tracing::warn!(peer, %addr, dropped = queued.len(), "cannot reach peer: {reason}");
                self.deliver_peer_down(peer, life);
            }
        }
    }

    async fn try_dial(&self, peer: u64) -> Result<(Connection, Hello, SendStream, RecvStream), String> {
        let Some(p) = self.inner.book.get(&peer) else { return Err("not in the address book".into()) };
        let name = node_name(&p.cluster, peer);
        let connecting =
            self.inner.endpoint.connect_with(self.inner.client_cfg.clone(), p.addr, &name).map_err(|e| format!("cannot dial: {e}"))?;
        let conn = match tokio::time::timeout(self.inner.settings.handshake_timeout, connecting).await {
            Err(_) => return Err("TLS handshake timed out".into()),
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {}", describe(&e))),
            Ok(Ok(c)) => c,
        };
        let (hello, send, recv) = match self.exchange_hello(&conn).await {
            Ok(x) => x,
            Err(reason) => {
                conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                return Err(reason);
            }
        };
        if hello.id != peer || hello.cluster != p.cluster {
            let reason = format!(
                "refused: dialed node {peer} of cluster {}, but its Hello claims node {} of cluster {}",
                p.cluster, hello.id, hello.cluster
            );
            conn.close(VarInt::from_u32(close::REFUSED), reason.as_bytes());
            return Err(reason);
        }
        Ok((conn, hello, send, recv))
    }

    /// Send our `Hello` on a new stream and read the peer's from the first stream it opens.
    async fn exchange_hello(&self, conn: &Connection) -> Result<(Hello, SendStream, RecvStream), String> {
        let limit = self.inner.settings.handshake_timeout;
        let mut send = conn.open_uni().await.map_err(|e| format!("cannot open a stream: {}", describe(&e)))?;
        send.write_all(&self.inner.hello).await.map_err(|e| format!("cannot send Hello: {e}"))?;
        let mut recv = match tokio::time::timeout(limit, conn.accept_uni()).await {
            Err(_) => return Err("no Hello within the handshake timeout".into()),
            Ok(Err(e)) => return Err(format!("connection lost before Hello: {}", describe(&e))),
            Ok(Ok(r)) => r,
        };
        let hello = read_hello(&mut recv, limit, self.inner.settings.max_frame).await?;
        Ok((hello, send, recv))
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let t = self.base();
            tokio::spawn(async move { t.handle_incoming(incoming).await });
        }
    }

    async fn handle_incoming(&self, incoming: quinn::Incoming) {
        let remote = incoming.remote_address();
        let conn = match tokio::time::timeout(self.inner.settings.handshake_timeout, incoming).await {
            Err(_) => {
                tracing::warn!(%remote, "incoming connection: TLS handshake timed out");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(%remote, "incoming connection refused: TLS handshake failed: {}", describe(&e));
                return;
            }
            Ok(Ok(c)) => c,
        };
        let cert_ids = peer_identities(&conn);
        let (hello, send, recv) = match self.exchange_hello(&conn).await {
            Ok(x) => x,
            Err(reason) => {
                tracing::warn!(%remote, "incoming connection closed: {reason}");
                conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                return;
            }
        };
        match self.check_accepted(&hello, &cert_ids) {
            Ok(kind) => self.register(conn, kind, hello, send, recv),
            Err(reason) => {
                tracing::warn!(%remote, claimed_id = hello.id, claimed_cluster = %hello.cluster, "refused peer: {reason}");
                conn.close(VarInt::from_u32(close::REFUSED), format!("refused: {reason}").as_bytes());
            }
        }
    }

    /// The acceptor's identity check: the `Hello` must claim what the certificate names,
    /// and that identity must belong here.
    fn check_accepted(&self, hello: &Hello, cert_ids: &[Identity]) -> Result<Kind, String> {
        let claimed = if hello.id >= CLIENT_ID_BASE {
            Identity::Client { cluster: hello.cluster.clone() }
        } else {
            Identity::Node { cluster: hello.cluster.clone(), id: hello.id }
        };
        if !cert_ids.contains(&claimed) {
            let names = if cert_ids.is_empty() {
                "no Petrel identity".to_string()
            } else {
                cert_ids.iter().map(|i| format!("{i} ({})", i.dns_name())).collect::<Vec<_>>().join(", ")
            };
            return Err(format!("its Hello claims to be {claimed}, but its certificate names {names}"));
        }
        if hello.id == self.inner.me {
            return Err("it claims this node's own id".into());
        }
        match &claimed {
            Identity::Node { cluster, id } => match self.inner.book.get(id) {
                None => Err(format!("node {id} of cluster {cluster} is not in this node's address book")),
                Some(p) if &p.cluster != cluster => Err(format!(
                    "it holds a certificate of cluster {cluster}, but node {id} belongs to cluster {} in the address book",
                    p.cluster
                )),
                Some(_) => Ok(Kind::Node),
            },
            Identity::Client { cluster } if *cluster != self.inner.cluster => {
                Err(format!("a client of cluster {cluster} may not use cluster {}", self.inner.cluster))
            }
            Identity::Client { .. } => Ok(Kind::Client),
        }
    }

    /// Make a checked connection live: writer, readers, and the watcher that turns its end
    /// into `PeerDown`.
    fn register(&self, conn: Connection, kind: Kind, hello: Hello, send: SendStream, recv: RecvStream) {
        let peer = hello.id;
        if self.inner.stopping.load(Ordering::Relaxed) {
            // A dial that completed after shutdown (a shared endpoint stays open).
            conn.close(VarInt::from_u32(close::SHUTDOWN), b"shutdown");
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let link = Link { stable_id: conn.stable_id(), incarnation: hello.incarnation, conn: conn.clone(), tx, queued: queued.clone() };
        {
            let mut peers = self.peers();
            let waiting = peers.dialing.remove(&peer).unwrap_or_default();
            for f in waiting {
                self.push(&link, f, peer);
            }
            // Only nodes are remembered: client ids are random per call and would pile up.
            if peer < CLIENT_ID_BASE {
                peers.known.insert(peer, hello.incarnation);
                peers.errors.remove(&peer);
            }
            peers.links.entry(peer).or_default().push(link);
        }
        if kind == Kind::Node {
            tracing::info!(peer, cluster = %hello.cluster, incarnation = hello.incarnation, remote = %conn.remote_address(), "connected");
        } else {
            tracing::debug!(peer, remote = %conn.remote_address(), "client connected");
        }
        tokio::spawn(writer(send, rx, queued, conn.clone()));
        let t = self.base();
        let (c, h) = (conn.clone(), hello.clone());
        tokio::spawn(async move { t.reader(c, kind, h, recv).await });
        let t = self.base();
        let (c, h) = (conn.clone(), hello.clone());
        tokio::spawn(async move { t.more_streams(c, kind, h).await });
        let t = self.base();
        tokio::spawn(async move { t.watch_close(conn, hello).await });
    }

    /// Further streams a peer opens must start with the connection's `Hello`.
    async fn more_streams(&self, conn: Connection, kind: Kind, hello: Hello) {
        while let Ok(mut recv) = conn.accept_uni().await {
            let limit = self.inner.settings.handshake_timeout;
            match read_hello(&mut recv, limit, self.inner.settings.max_frame).await {
                Ok(h) if h.id == hello.id && h.cluster == hello.cluster && h.incarnation == hello.incarnation => {
                    let t = self.base();
                    let (c, h) = (conn.clone(), hello.clone());
                    tokio::spawn(async move { t.reader(c, kind, h, recv).await });
                }
                Ok(h) => {
                    let reason = format!("a new stream's Hello ({} of {}) differs from the connection's", h.id, h.cluster);
                    tracing::error!(peer = hello.id, "{reason}; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                    return;
                }
                Err(reason) => {
                    tracing::error!(peer = hello.id, "bad stream: {reason}; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                    return;
                }
            }
        }
    }

    async fn reader(&self, conn: Connection, kind: Kind, hello: Hello, mut recv: RecvStream) {
        let peer = hello.id;
        loop {
            match codec::read_frame(&mut recv, self.inner.settings.max_frame).await {
                Ok(Some(Frame::Msg(msg))) => {
                    if !allowed(kind, &msg) {
                        tracing::warn!(peer, kind = msg.kind(), "dropping a message this peer may not send");
                        continue;
                    }
                    if self.inner.inbound.send((id_of(peer), msg)).await.is_err() {
                        return; // the actor is gone: shutting down
                    }
                }
                Ok(Some(Frame::Hello { .. })) => {
                    tracing::error!(peer, "second Hello on a stream; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), b"unexpected Hello");
                    return;
                }
                // A client session's message (this is a node, the peer a client).
                Ok(Some(Frame::From { session, msg })) if kind == Kind::Client && session >= CLIENT_ID_BASE => {
                    if !allowed(kind, &msg) {
                        tracing::warn!(peer, session, kind = msg.kind(), "dropping a message this peer may not send");
                        continue;
                    }
                    if let Err(reason) = self.add_route(session, peer, conn.stable_id()) {
                        tracing::warn!(peer, "{reason}; disconnecting it");
                        conn.close(VarInt::from_u32(close::OVERLOADED), reason.as_bytes());
                        return;
                    }
                    if self.inner.inbound.send((id_of(session), msg)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Frame::End { session })) if kind == Kind::Client => self.end_route(session, conn.stable_id()),
                // A node's answer to one of this client process's sessions.
                Ok(Some(Frame::To { session, msg })) if kind == Kind::Node && self.inner.me >= CLIENT_ID_BASE => {
                    if !allowed(kind, &msg) {
                        tracing::warn!(peer, kind = msg.kind(), "dropping a message this peer may not send");
                        continue;
                    }
                    let tx = lock(&self.inner.sessions).get(&session).cloned();
                    // Never block the connection's reader on one session (the others share
                    // it): a session that is gone or not draining loses the message, as on
                    // a lossy network; its request timeout covers it.
                    if tx.is_none_or(|tx| tx.try_send((id_of(peer), msg)).is_err()) {
                        tracing::debug!(peer, session, "message for a session that is over or full: dropped");
                    }
                }
                Ok(Some(other)) => {
                    let what = match other {
                        Frame::From { .. } => "a session frame from a node, or for a session id outside the client range",
                        Frame::To { .. } => "a session answer sent to a node",
                        _ => "a session end from a node",
                    };
                    tracing::error!(peer, "unexpected frame: {what}; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), format!("unexpected frame: {what}").as_bytes());
                    return;
                }
                Ok(None) => return,
                Err(codec::ReadError::Io(e)) => {
                    // The connection or stream went away; `watch_close` reports it.
                    tracing::debug!(peer, "stream ended: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(peer, "bad frame from peer: {e}; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), e.to_string().as_bytes());
                    return;
                }
            }
        }
    }

    /// Node side: `session` is carried by connection `stable_id` of client `peer`.
    fn add_route(&self, session: u64, peer: u64, stable_id: usize) -> Result<(), String> {
        let mut peers = self.peers();
        let previous = peers.routes.get(&session).copied();
        if previous.is_some_and(|r| r.stable_id == stable_id) {
            return Ok(());
        }
        if peers.route_counts.get(&stable_id).copied().unwrap_or(0) >= MAX_SESSIONS_PER_CONNECTION {
            return Err(format!("client opened more than {MAX_SESSIONS_PER_CONNECTION} sessions on one connection"));
        }
        // A session that moved to a new connection (the client re-dialed).
        if let Some(old) = previous {
            if let Some(n) = peers.route_counts.get_mut(&old.stable_id) {
                *n = n.saturating_sub(1);
            }
        }
        *peers.route_counts.entry(stable_id).or_default() += 1;
        peers.routes.insert(session, Route { peer, stable_id });
        Ok(())
    }

    fn end_route(&self, session: u64, stable_id: usize) {
        let mut peers = self.peers();
        if peers.routes.get(&session).is_some_and(|r| r.stable_id == stable_id) {
            peers.routes.remove(&session);
            if let Some(n) = peers.route_counts.get_mut(&stable_id) {
                *n = n.saturating_sub(1);
            }
        }
    }

    async fn watch_close(&self, conn: Connection, hello: Hello) {
        let reason = conn.closed().await;
        let peer = hello.id;
        let stable = conn.stable_id();
        let still_up = {
            let mut peers = self.peers();
            // Its sessions are gone with it (the core ignores a client's PeerDown, so
            // none is delivered per session).
            if peers.route_counts.remove(&stable).is_some() {
                peers.routes.retain(|_, r| r.stable_id != stable);
            }
            if let Some(v) = peers.links.get_mut(&peer) {
                v.retain(|l| l.stable_id != stable);
                let up = v.iter().any(|l| l.incarnation == hello.incarnation);
                if v.is_empty() {
                    peers.links.remove(&peer);
                }
                up
            } else {
                false
            }
        };
        if self.inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        let why = describe(&reason);
        if still_up {
            tracing::info!(peer, "one of two connections to the peer closed ({why}); the other stays");
            return;
        }
        if peer < CLIENT_ID_BASE {
            tracing::warn!(peer, incarnation = hello.incarnation, "connection lost: {why}");
            let addr = self.inner.book.get(&peer).map(|p| p.addr.to_string()).unwrap_or_default();
            self.peers().errors.insert(peer, format!("node {peer} at {addr}: connection lost: {why}"));
        } else {
            tracing::debug!(peer, "client connection closed: {why}");
        }
        self.deliver_peer_down(peer, hello.incarnation);
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
        self.inner.endpoint.close(VarInt::from_u32(close::SHUTDOWN), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

/// This process must hold the certificate of the identity it announces, or every peer
/// would refuse it: better a clear error at start.
fn check_identity(tls: &TlsMaterial, me: u64, cluster: &str) -> anyhow::Result<()> {
    let mine = if me >= CLIENT_ID_BASE {
        Identity::Client { cluster: cluster.to_string() }
    } else {
        Identity::Node { cluster: cluster.to_string(), id: me }
    };
    let ids = tls.identities();
    if !ids.contains(&mine) {
        let names: Vec<String> = ids.iter().map(|i| i.dns_name()).collect();
        bail!(
            "this process is {mine} but its certificate names {}: peers would refuse it",
            if names.is_empty() { "no Petrel identity".to_string() } else { names.join(", ") }
        );
    }
    Ok(())
}

/// A client process's connections to a cluster, shared by many client sessions.
///
/// Why sessions: the core client actor numbers its requests from 1, and a replica
/// deduplicates writes by (client id, request number), so every actor — every call of the
/// client library — needs a client id of its own. A connection's `Hello` names one id, so
/// without sessions every call would open its own connections (two TLS handshakes per
/// call, which dominate the cost of a write on a small machine). Instead each call is a
/// session on the process's connections: its messages travel as `Frame::From { session }`,
/// the node routes its answers back as `Frame::To { session }`, and `Frame::End` makes it
/// forget the route. Any client certificate of the cluster may use any client id, with or
/// without sessions (client ids only name replies), so sessions grant nothing new.
#[derive(Clone)]
pub struct ClientEndpoint {
    base: Transport,
}

impl ClientEndpoint {
    /// Open the socket (on loopback for a loopback cluster) for clients of `cluster`.
    /// Connections are dialed on the first send to a node and kept (QUIC keep-alives)
    /// until [`ClientEndpoint::close`].
    pub fn bind(cluster: &str, book: BTreeMap<u64, PeerAddr>, tls: &TlsMaterial, settings: Settings) -> anyhow::Result<ClientEndpoint> {
        let me = random_client_id();
        check_identity(tls, me, cluster)?;
        // Bind where the peers are: loopback for a loopback cluster, else any address.
        let v6 = book.values().next().is_some_and(|p| p.addr.is_ipv6());
        let loopback = book.values().all(|p| p.addr.ip().is_loopback());
        let ip: IpAddr = match (v6, loopback) {
            (false, true) => Ipv4Addr::LOCALHOST.into(),
            (true, true) => Ipv6Addr::LOCALHOST.into(),
            (false, false) => Ipv4Addr::UNSPECIFIED.into(),
            (true, false) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let client_cfg = client_config(tls, &settings)?;
        let mut endpoint = Endpoint::client(SocketAddr::new(ip, 0)).context("cannot open a UDP socket")?;
        endpoint.set_default_client_config(client_cfg.clone());
        // Messages for the process's own id (none are sent: nodes answer sessions) and
        // PeerDowns, which every session also gets: drained.
        let (tx, mut rx) = mpsc::channel(64);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let base = Transport::new(endpoint, client_cfg, me, cluster, 1, book, settings, tx)?;
        Ok(ClientEndpoint { base })
    }

    /// A transport for session `id` (at least [`CLIENT_ID_BASE`]), delivering what nodes
    /// send it to `inbound`. Its `shutdown` (or drop) ends the session.
    pub fn transport(&self, id: u64, inbound: mpsc::Sender<(Id, Msg)>) -> anyhow::Result<Transport> {
        if id < CLIENT_ID_BASE {
            bail!("client id {id} is in the node range");
        }
        let inner = self.base.inner.clone();
        lock(&inner.sessions).insert(id, inbound);
        let session = Session { id, inner: inner.clone(), used: Mutex::new(Default::default()), ended: AtomicBool::new(false) };
        Ok(Transport { inner, session: Some(Arc::new(session)) })
    }

    /// Live sessions (calls in progress), for tests and diagnostics.
    pub fn sessions(&self) -> usize {
        lock(&self.base.inner.sessions).len()
    }

    /// Close every connection and wait briefly (≤ 1 s) for the close to leave.
    pub async fn close(&self) {
        self.base.shutdown().await;
    }
}

/// A random client id in the client range (not security-relevant: it only names replies
/// and, with the request number, a write for deduplication).
pub fn random_client_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    CLIENT_ID_BASE + h.finish() % (1 << 62)
}

/// What a client may ask of a node. Everything else (and `PeerDown`, which only the
/// driver may produce) is dropped.
fn allowed(kind: Kind, msg: &Msg) -> bool {
    match msg {
        Msg::PeerDown { .. } => false,
        _ if kind == Kind::Node => true,
        // Reads and writes, and the operator's requests to the meta server (`petrel admin`):
        // any client certificate of the cluster may administer it.
        Msg::QueryConfig { .. }
        | Msg::Write { .. }
        | Msg::Read { .. }
        | Msg::ModifyDup { .. }
        | Msg::SetFailMode { .. }
        | Msg::CreateTable { .. }
        | Msg::AddDup { .. }
        | Msg::QueryCluster => true,
        _ => false,
    }
}

async fn read_hello(recv: &mut RecvStream, limit: Duration, max: usize) -> Result<Hello, String> {
    match tokio::time::timeout(limit, codec::read_frame(recv, max)).await {
        Err(_) => Err("no Hello within the handshake timeout".into()),
        Ok(Err(e)) => Err(format!("bad Hello: {e}")),
        Ok(Ok(None)) => Err("stream ended before its Hello".into()),
        Ok(Ok(Some(Frame::Hello { cluster, id, incarnation }))) => Ok(Hello { cluster, id, incarnation }),
        Ok(Ok(Some(_))) => Err("first frame of a stream is not a Hello".into()),
    }
}

async fn writer(mut send: SendStream, mut rx: mpsc::UnboundedReceiver<Vec<u8>>, queued: Arc<AtomicUsize>, conn: Connection) {
    while let Some(frame) = rx.recv().await {
        let len = frame.len();
        let r = send.write_all(&frame).await;
        queued.fetch_sub(len, Ordering::Relaxed);
        if let Err(e) = r {
            tracing::debug!(peer = %conn.remote_address(), "write failed: {e}");
            conn.close(VarInt::from_u32(close::PROTOCOL), b"write failed");
            return;
        }
    }
    let _ = send.finish();
}

/// The Petrel identities of the peer's end-entity certificate.
fn peer_identities(conn: &Connection) -> Vec<Identity> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|c| cert_identities(c)))
        .unwrap_or_default()
}

/// A connection error as an operator should read it (the peer's close reason verbatim).
pub fn describe(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            match c.error_code.into_inner() as u32 {
                close::SHUTDOWN => format!("peer shut down ({reason})"),
                close::REFUSED => format!("peer refused this node: {reason}"),
                close::PROTOCOL => format!("closed for a protocol error: {reason}"),
                close::OVERLOADED => format!("closed as overloaded: {reason}"),
                code => format!("closed by peer (code {code}): {reason}"),
            }
        }
        quinn::ConnectionError::LocallyClosed => "closed locally".into(),
        quinn::ConnectionError::TimedOut => "timed out (no answer within the idle timeout)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;

    fn settings() -> Settings {
        Settings {
            idle_timeout: Duration::from_millis(1000),
            keep_alive: Duration::from_millis(200),
            handshake_timeout: Duration::from_millis(500),
            ..Settings::default()
        }
    }

    async fn recv(rx: &mut mpsc::Receiver<(Id, Msg)>) -> (u64, Msg) {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((src, msg))) => (raw_of(src), msg),
            other => panic!("nothing received: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_and_peer_down_carry_the_announced_life() {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::issue("alpha", &[0, 1], 0, dir.path()).expect("certs");
        let tls = |id: u64| {
            let (c, k) = certs::node_cert_paths(dir.path(), id);
            TlsMaterial::load(&dir.path().join("ca.pem"), &[], &c, &k).expect("tls")
        };
        let ports = crate::up::free_udp_ports(3).expect("ports");
        let addr = |i: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i]));
        let book: BTreeMap<u64, PeerAddr> =
            (0..3).map(|i| (i as u64, PeerAddr { cluster: "alpha".into(), addr: addr(i) })).collect();
        let (tx_a, mut rx_a) = mpsc::channel(16);
        let (tx_b, mut rx_b) = mpsc::channel(16);
        let a = Transport::bind_node(addr(0), 0, "alpha", 1, book.clone(), &tls(0), settings(), tx_a).expect("a");
        let b = Transport::bind_node(addr(1), 1, "alpha", 7, book.clone(), &tls(1), settings(), tx_b).expect("b");

        // A dials B lazily; B answers over the accepted connection.
        a.send(id_of(1), Msg::Register { incarnation: 1 });
        assert_eq!(recv(&mut rx_b).await, (0, Msg::Register { incarnation: 1 }));
        b.send(id_of(0), Msg::Register { incarnation: 7 });
        assert_eq!(recv(&mut rx_a).await, (1, Msg::Register { incarnation: 7 }));

        // B goes away: A hears PeerDown for the life B announced.
        b.shutdown().await;
        drop(b);
        assert_eq!(recv(&mut rx_a).await, (1, Msg::PeerDown { incarnation: 7 }));
        // A later send to B fails to dial: PeerDown again with the last life heard.
        a.send(id_of(1), Msg::Register { incarnation: 1 });
        assert_eq!(recv(&mut rx_a).await, (1, Msg::PeerDown { incarnation: 7 }));
        // A node never heard from: PeerDown with 0 (no life), and the error is recorded.
        a.send(id_of(2), Msg::Register { incarnation: 1 });
        assert_eq!(recv(&mut rx_a).await, (2, Msg::PeerDown { incarnation: 0 }));
        assert!(a.errors().iter().any(|(p, e)| *p == 2 && e.contains("node 2")), "{:?}", a.errors());
        // Outside the address book: dropped without a notice.
        a.send(id_of(99), Msg::Register { incarnation: 1 });
        assert!(tokio::time::timeout(Duration::from_millis(300), rx_a.recv()).await.is_err());
        a.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_sessions_share_one_connection_and_get_their_own_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::issue("alpha", &[0], 1, dir.path()).expect("certs");
        let ca = dir.path().join("ca.pem");
        let (nc, nk) = certs::node_cert_paths(dir.path(), 0);
        let (cc, ck) = certs::client_cert_paths(dir.path(), 0);
        let port = crate::up::free_udp_ports(1).expect("port")[0];
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let book: BTreeMap<u64, PeerAddr> = BTreeMap::from([(0, PeerAddr { cluster: "alpha".into(), addr })]);
        let (tx_node, mut rx_node) = mpsc::channel(16);
        let node_tls = TlsMaterial::load(&ca, &[], &nc, &nk).expect("node tls");
        let node = Transport::bind_node(addr, 0, "alpha", 1, book.clone(), &node_tls, settings(), tx_node).expect("node");
        let client_tls = TlsMaterial::load(&ca, &[], &cc, &ck).expect("client tls");
        let ep = ClientEndpoint::bind("alpha", book, &client_tls, settings()).expect("endpoint");

        let (s1, s2) = (CLIENT_ID_BASE + 1, CLIENT_ID_BASE + 2);
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        let t1 = ep.transport(s1, tx1).expect("session 1");
        let t2 = ep.transport(s2, tx2).expect("session 2");
        assert_eq!(ep.sessions(), 2);
        let gpid = petrel_core::Gpid { table: 1, partition: 0 };
        t1.send(id_of(0), Msg::QueryConfig { gpid });
        t2.send(id_of(0), Msg::QueryCluster);
        // The node sees each session as its own client...
        let mut got = vec![recv(&mut rx_node).await, recv(&mut rx_node).await];
        got.sort_by_key(|(src, _)| *src);
        assert_eq!(got, vec![(s1, Msg::QueryConfig { gpid }), (s2, Msg::QueryCluster)]);
        // ...over one connection, and its answers reach only the session they name.
        assert_eq!(node.peers().links.len(), 1, "one client connection");
        let reply = |n| Msg::QueryConfigReply { gpid, config: None, incarnation: Some(n) };
        node.send(id_of(s2), reply(2));
        node.send(id_of(s1), reply(1));
        assert_eq!(recv(&mut rx1).await, (0, reply(1)));
        assert_eq!(recv(&mut rx2).await, (0, reply(2)));
        // A session that ended is forgotten on both sides: a late answer goes nowhere.
        t1.shutdown().await;
        assert_eq!(ep.sessions(), 1);
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while node.peers().routes.contains_key(&s1) {
            assert!(tokio::time::Instant::now() < until, "the node kept the ended session's route");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        node.send(id_of(s1), reply(3));
        node.send(id_of(s2), reply(4));
        assert_eq!(recv(&mut rx2).await, (0, reply(4)));
        assert!(rx1.try_recv().is_err());
        // A dropped session ends too; the node's PeerDown reaches the live sessions.
        drop(t2);
        assert_eq!(ep.sessions(), 0);
        let (tx3, mut rx3) = mpsc::channel(16);
        let t3 = ep.transport(CLIENT_ID_BASE + 3, tx3).expect("session 3");
        t3.send(id_of(0), Msg::QueryCluster);
        assert_eq!(recv(&mut rx_node).await, (CLIENT_ID_BASE + 3, Msg::QueryCluster));
        node.shutdown().await;
        assert_eq!(recv(&mut rx3).await, (0, Msg::PeerDown { incarnation: 1 }));
        ep.close().await;
    }

    #[test]
    fn clients_may_send_reads_writes_and_operator_requests_only() {
        let gpid = petrel_core::Gpid { table: 1, partition: 0 };
        let allowed_for_clients = [
            Msg::QueryConfig { gpid },
            Msg::Write { gpid, req: 1, key: "k".into(), value: Some("v".into()) },
            Msg::Write { gpid, req: 2, key: "k".into(), value: None },
            Msg::Read { gpid, req: 1, key: "k".into() },
            Msg::CreateTable { table: 2, partitions: 1, replica_count: 1 },
            Msg::AddDup { table: 1, remote_meta: id_of(100), remote_table: 1, remote_replica_count: 1, full: true },
            Msg::ModifyDup { dupid: 1, status: petrel_core::dup::DupStatus::Pause },
            Msg::SetFailMode { dupid: 1, mode: petrel_core::dup::FailMode::Skip },
            Msg::QueryCluster,
        ];
        for m in &allowed_for_clients {
            assert!(allowed(Kind::Client, m) && allowed(Kind::Node, m), "{m:?}");
        }
        for m in [Msg::Register { incarnation: 1 }, Msg::QueryFollower { table: 1 }, Msg::DupReport { gpid, dupid: 1, progress: petrel_core::DupProgress::Checkpoint(1) }] {
            assert!(!allowed(Kind::Client, &m) && allowed(Kind::Node, &m), "{m:?}");
        }
        assert!(!allowed(Kind::Node, &Msg::PeerDown { incarnation: 1 }) && !allowed(Kind::Client, &Msg::PeerDown { incarnation: 1 }));
    }

    #[tokio::test]
    async fn a_process_must_hold_its_own_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::issue("alpha", &[1], 0, dir.path()).expect("certs");
        let (c, k) = certs::node_cert_paths(dir.path(), 1);
        let tls = TlsMaterial::load(&dir.path().join("ca.pem"), &[], &c, &k).expect("tls");
        let (tx, _rx) = mpsc::channel(1);
        let err = Transport::bind_node("127.0.0.1:0".parse().expect("addr"), 2, "alpha", 1, BTreeMap::new(), &tls, settings(), tx)
            .err()
            .expect("node 2 with node 1's certificate");
        assert!(err.to_string().contains("n1.alpha.petrel"), "{err}");
    }
}
