//! Client sessions: many core client actors (one per library call) over one client
//! process's connections, and the node's routes back to them.
use super::link::Route;
use super::tls::client_side_identity;
use super::{
    client_config, codec, lock, Frame, Inner, PeerAddr, Settings, TlsMaterial, Transport,
    CLIENT_ID_BASE,
};
use crate::certs::Identity;
use anyhow::{bail, Context};
use petrel_core::auth::OPERATOR_ID_BASE;
use petrel_core::Msg;
use quinn::Endpoint;
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Live client sessions one connection may carry; a client beyond it is disconnected (it
/// would make the node's route table grow without bound).
pub const MAX_SESSIONS_PER_CONNECTION: usize = 16_384;

/// One client session: a core client actor's identity on a [`ClientEndpoint`]'s
/// connections. Ended (routes forgotten on both sides) by `shutdown` or when dropped.
pub(super) struct Session {
    pub(super) id: u64,
    inner: Arc<Inner>,
    /// The nodes this session sent to: told `End` when it is over, and their transport
    /// errors are the ones the session reports.
    pub(super) used: Mutex<std::collections::BTreeSet<u64>>,
    ended: AtomicBool,
}

impl Session {
    pub(super) fn end(&self) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        lock(&self.inner.sessions).remove(&self.id);
        let used: Vec<u64> = lock(&self.used).iter().copied().collect();
        let Ok(frame) = codec::encode(&Frame::End { session: self.id }) else {
            return;
        };
        let base = Transport {
            inner: self.inner.clone(),
            session: None,
        };
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

impl Transport {
    /// Node side: `session` is carried by connection `stable_id` of client `peer`.
    pub(super) fn add_route(
        &self,
        session: u64,
        peer: u64,
        stable_id: usize,
    ) -> Result<(), String> {
        let mut peers = self.peers();
        let previous = peers.routes.get(&session).copied();
        if previous.is_some_and(|r| r.stable_id == stable_id) {
            return Ok(());
        }
        if peers.route_counts.get(&stable_id).copied().unwrap_or(0) >= MAX_SESSIONS_PER_CONNECTION {
            return Err(format!(
                "client opened more than {MAX_SESSIONS_PER_CONNECTION} sessions on one connection"
            ));
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

    pub(super) fn end_route(&self, session: u64, stable_id: usize) {
        let mut peers = self.peers();
        if peers
            .routes
            .get(&session)
            .is_some_and(|r| r.stable_id == stable_id)
        {
            peers.routes.remove(&session);
            if let Some(n) = peers.route_counts.get_mut(&stable_id) {
                *n = n.saturating_sub(1);
            }
        }
    }
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
    /// What this process's certificate makes it: a client or an operator.
    identity: Identity,
}

impl ClientEndpoint {
    /// Open the socket (on loopback for a loopback cluster) for clients of `cluster`.
    /// Connections are dialed on the first send to a node and kept (QUIC keep-alives)
    /// until [`ClientEndpoint::close`].
    pub fn bind(
        cluster: &str,
        book: BTreeMap<u64, PeerAddr>,
        tls: &TlsMaterial,
        settings: Settings,
    ) -> anyhow::Result<ClientEndpoint> {
        let identity = client_side_identity(tls, cluster)?;
        let me = random_id(matches!(identity, Identity::Operator { .. }))?;
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
        let mut endpoint =
            Endpoint::client(SocketAddr::new(ip, 0)).context("cannot open a UDP socket")?;
        endpoint.set_default_client_config(client_cfg.clone());
        // Messages for the process's own id (none are sent: nodes answer sessions) and
        // PeerDowns, which every session also gets: drained.
        let (tx, mut rx) = mpsc::channel(64);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let base = Transport::new(endpoint, client_cfg, me, cluster, 1, book, settings, tx)?;
        Ok(ClientEndpoint { base, identity })
    }

    /// Whether this process holds an operator certificate (`operator.<cluster>.petrel`):
    /// only then do the meta server's operator requests pass the transport.
    pub fn is_operator(&self) -> bool {
        matches!(self.identity, Identity::Operator { .. })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A fresh session id of this endpoint's role: an operator's (from
    /// `auth::OPERATOR_ID_BASE` on, which the core lets administer the cluster) for an
    /// operator certificate, else a client's.
    pub fn fresh_id(&self) -> std::io::Result<u64> {
        random_id(matches!(self.identity, Identity::Operator { .. }))
    }

    /// A transport for session `id` (at least [`CLIENT_ID_BASE`]), delivering what nodes
    /// send it to `inbound`. Its `shutdown` (or drop) ends the session.
    pub fn transport(
        &self,
        id: u64,
        inbound: mpsc::Sender<(Id, Msg)>,
    ) -> anyhow::Result<Transport> {
        if id < CLIENT_ID_BASE {
            bail!("client id {id} is in the node range");
        }
        let inner = self.base.inner.clone();
        {
            // Two live calls with one id would share a dedup entry and steal each other's
            // answers: refuse (ids are random, so this is a bug or a 2^-62 coincidence).
            let mut sessions = lock(&inner.sessions);
            if sessions.contains_key(&id) {
                bail!("client id {id} is already in use by a live call of this process");
            }
            sessions.insert(id, inbound);
        }
        let session = Session {
            id,
            inner: inner.clone(),
            used: Mutex::new(Default::default()),
            ended: AtomicBool::new(false),
        };
        Ok(Transport {
            inner,
            session: Some(Arc::new(session)),
        })
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

/// A fresh client id in the client range, from the operating system's random source.
///
/// Security-relevant: replicas deduplicate writes by (client id, request number), so a
/// party that could guess a live client's id could have that client's next writes
/// dropped as duplicates by writing first with a higher request number. 48 random bits
/// make a guess or an accidental collision between processes negligible, and a process
/// refuses to run two live calls with one id (`ClientEndpoint::transport`).
pub fn random_client_id() -> std::io::Result<u64> {
    random_id(false)
}

/// A random id in the client range [2^32, 2^48) (48 random bits less a sliver), or in the
/// operator range [2^48, 2^48 + 2^62).
fn random_id(operator: bool) -> std::io::Result<u64> {
    let r = getrandom::u64()
        .map_err(|e| std::io::Error::other(format!("the OS random source failed: {e}")))?;
    Ok(if operator {
        OPERATOR_ID_BASE + r % (1 << 62)
    } else {
        CLIENT_ID_BASE + r % (OPERATOR_ID_BASE - CLIENT_ID_BASE)
    })
}
