//! Links: dialing, accepting (the identity check), one registered connection per peer
//! life, the readers that deliver frames, and `PeerDown` when a connection ends.
use super::policy::{allowed, Kind};
use super::tls::peer_cert;
use super::{close, id_of, lock, Hello, Transport, CLIENT_ID_BASE};
use crate::certs::{cert_is_valid_for, Identity};
use petrel_core::auth::OPERATOR_ID_BASE;
use rustls::pki_types::CertificateDer;

/// Why a received message was refused.
#[derive(Debug)]
enum Refused {
    Forbidden(String),
    TooLarge(String),
}
use crate::codec::{self, Frame};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One registered connection to a peer.
pub(super) struct Link {
    pub(super) stable_id: usize,
    pub(super) incarnation: u32,
    pub(super) conn: Connection,
    pub(super) tx: mpsc::UnboundedSender<Vec<u8>>,
    pub(super) queued: Arc<AtomicUsize>,
}

#[derive(Default)]
pub(super) struct Peers {
    /// Live registered connections per peer, oldest first (the last one carries sends).
    pub(super) links: HashMap<u64, Vec<Link>>,
    /// Frames waiting for a dial in progress.
    pub(super) dialing: HashMap<u64, Vec<Vec<u8>>>,
    /// The last incarnation each peer announced.
    pub(super) known: HashMap<u64, u32>,
    /// This node's own life, as its connections announce it (`Transport::set_incarnation`).
    pub(super) own_life: u32,
    /// The last failure per peer, for operators (the client prints these).
    pub(super) errors: BTreeMap<u64, String>,
    /// Node side: the client sessions heard of (`Frame::From`), and the connection that
    /// carries each (replies to a session go back over it as `Frame::To`).
    pub(super) routes: HashMap<u64, Route>,
    /// Node side: live sessions per connection (by stable id), bounded.
    pub(super) route_counts: HashMap<usize, usize>,
}

/// Which connection carries a client session.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route {
    /// The connection's peer (the client process's own id).
    pub(super) peer: u64,
    pub(super) stable_id: usize,
}

impl Transport {
    pub(super) fn spawn_dial(&self, peer: u64) {
        let t = self.base();
        tokio::spawn(async move { t.dial(peer).await });
    }

    pub(super) async fn dial(&self, peer: u64) {
        let result = self.try_dial(peer).await;
        match result {
            Ok((conn, own, hello, send, recv)) => {
                self.register(conn, Kind::Node, own, true, hello, send, recv)
            }
            Err(reason) => {
                let addr = self
                    .inner
                    .book
                    .get(&peer)
                    .map(|p| p.addr.to_string())
                    .unwrap_or_default();
                let mut peers = self.peers();
                peers
                    .errors
                    .insert(peer, format!("node {peer} at {addr}: {reason}"));
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
                super::Stats::count(&self.inner.stats.unreachable, queued.len() as u64);
                tracing::warn!(peer, %addr, dropped = queued.len(), "cannot reach peer: {reason}");
                self.deliver_peer_down(peer, life);
            }
        }
    }

    async fn try_dial(
        &self,
        peer: u64,
    ) -> Result<(Connection, u32, Hello, SendStream, RecvStream), String> {
        let Some(p) = self.inner.book.get(&peer) else {
            return Err("not in the address book".into());
        };
        // TLS verifies the server's certificate against the name of the identity the
        // address book gives this id: its cluster *and* role.
        let name = Identity::Node {
            cluster: p.cluster.clone(),
            id: peer,
            role: p.role,
        }
        .dns_name();
        let connecting = self
            .inner
            .endpoint
            .connect_with(self.inner.client_cfg.clone(), p.addr, &name)
            .map_err(|e| format!("cannot dial: {e}"))?;
        let conn =
            match tokio::time::timeout(self.inner.settings.handshake_timeout, connecting).await {
                Err(_) => return Err("TLS handshake timed out".into()),
                Ok(Err(e)) => return Err(format!("TLS handshake failed: {}", describe(&e))),
                Ok(Ok(c)) => c,
            };
        let (own, hello, send, recv) = match self.exchange_hello(&conn).await {
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
        Ok((conn, own, hello, send, recv))
    }

    /// Send our `Hello` on a new stream and read the peer's from the first stream it opens;
    /// also says which of this node's lives the `Hello` announced.
    async fn exchange_hello(
        &self,
        conn: &Connection,
    ) -> Result<(u32, Hello, SendStream, RecvStream), String> {
        let limit = self.inner.settings.handshake_timeout;
        let mut send = conn
            .open_uni()
            .await
            .map_err(|e| format!("cannot open a stream: {}", describe(&e)))?;
        let (own, hello) = lock(&self.inner.hello).clone();
        send.write_all(&hello)
            .await
            .map_err(|e| format!("cannot send Hello: {e}"))?;
        let mut recv = match tokio::time::timeout(limit, conn.accept_uni()).await {
            Err(_) => return Err("no Hello within the handshake timeout".into()),
            Ok(Err(e)) => return Err(format!("connection lost before Hello: {}", describe(&e))),
            Ok(Ok(r)) => r,
        };
        let hello = read_hello(&mut recv, limit, self.inner.settings.max_frame).await?;
        Ok((own, hello, send, recv))
    }

    pub(super) async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let t = self.base();
            tokio::spawn(async move { t.handle_incoming(incoming).await });
        }
    }

    async fn handle_incoming(&self, incoming: quinn::Incoming) {
        let remote = incoming.remote_address();
        let conn = match tokio::time::timeout(self.inner.settings.handshake_timeout, incoming).await
        {
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
        let cert = peer_cert(&conn);
        let (own, hello, send, recv) = match self.exchange_hello(&conn).await {
            Ok(x) => x,
            Err(reason) => {
                tracing::warn!(%remote, "incoming connection closed: {reason}");
                conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                return;
            }
        };
        match self.check_accepted(&hello, cert.as_ref()) {
            Ok(kind) => self.register(conn, kind, own, false, hello, send, recv),
            Err(reason) => {
                tracing::warn!(%remote, claimed_id = hello.id, claimed_cluster = %hello.cluster, "refused peer: {reason}");
                conn.close(
                    VarInt::from_u32(close::REFUSED),
                    format!("refused: {reason}").as_bytes(),
                );
            }
        }
    }

    /// The acceptor's identity check. The `Hello` says which identity the peer claims;
    /// the address book says what a node id is (cluster and role); TLS has verified the
    /// certificate's chain, and webpki's name check (`certs::cert_is_valid_for`) says
    /// whether that certificate is valid for the claimed identity's name. No certificate
    /// field is parsed here.
    fn check_accepted(
        &self,
        hello: &Hello,
        cert: Option<&CertificateDer<'static>>,
    ) -> Result<Kind, String> {
        let Some(cert) = cert else {
            return Err("it presented no certificate".into());
        };
        if hello.id == self.inner.me {
            return Err("it claims this node's own id".into());
        }
        if hello.id >= CLIENT_ID_BASE {
            if hello.cluster != self.inner.cluster {
                return Err(format!(
                    "a client of cluster {} may not use cluster {}",
                    hello.cluster, self.inner.cluster
                ));
            }
            let operator = Identity::Operator {
                cluster: hello.cluster.clone(),
            };
            let client = Identity::Client {
                cluster: hello.cluster.clone(),
            };
            if cert_is_valid_for(cert, &operator) {
                return Ok(Kind::Operator);
            }
            if cert_is_valid_for(cert, &client) {
                // The core grants operator rights by id (`auth::OPERATOR_ID_BASE`): a
                // client certificate may not use an id of that range.
                if hello.id >= OPERATOR_ID_BASE {
                    return Err(format!(
                        "a client certificate may not use id {} of the operator range",
                        hello.id
                    ));
                }
                return Ok(Kind::Client);
            }
            return Err(format!(
                "its Hello claims to be a client of cluster {}, but its certificate is valid for neither {} nor {}",
                hello.cluster,
                client.dns_name(),
                operator.dns_name()
            ));
        }
        let id = hello.id;
        let p = match self.inner.book.get(&id) {
            None => return Err(format!("node {id} of cluster {} is not in this node's address book", hello.cluster)),
            Some(p) if p.cluster != hello.cluster => {
                return Err(format!(
                    "its Hello claims node {id} of cluster {}, but node {id} belongs to cluster {} in the address book",
                    hello.cluster, p.cluster
                ))
            }
            Some(p) => p,
        };
        let claimed = Identity::Node {
            cluster: p.cluster.clone(),
            id,
            role: p.role,
        };
        if !cert_is_valid_for(cert, &claimed) {
            return Err(format!(
                "its Hello claims to be {claimed}, but its certificate is not valid for {}",
                claimed.dns_name()
            ));
        }
        Ok(Kind::Node)
    }

    /// Make a checked connection live: writer, readers, and the watcher that turns its end
    /// into `PeerDown`. `own` is the life of this node its `Hello` announced; `dialed`,
    /// whether this node dialed it.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        conn: Connection,
        kind: Kind,
        own: u32,
        dialed: bool,
        hello: Hello,
        send: SendStream,
        recv: RecvStream,
    ) {
        let peer = hello.id;
        if self.inner.stopping.load(Ordering::Relaxed) {
            // A dial that completed after shutdown (a shared endpoint stays open).
            conn.close(VarInt::from_u32(close::SHUTDOWN), b"shutdown");
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let link = Link {
            stable_id: conn.stable_id(),
            incarnation: hello.incarnation,
            conn: conn.clone(),
            tx,
            queued: queued.clone(),
        };
        // A node whose new life connects while connections of an older life are still
        // registered (it restarted within the idle timeout): those connections lead to a
        // dead process. Close them and report the old life down now — before anything the
        // new life sends is delivered — and send over the new connection from here on.
        // Otherwise messages for the new life (a primary's `Learn`) would go into the dead
        // connection until it idles out, and be lost.
        let mut superseded = Vec::new();
        {
            let mut peers = self.peers();
            // A handshake that announced an older life of this node and finishes after it
            // started a new one (`Transport::set_incarnation`, which drains what registered
            // before it: hence the check under the same lock) never carries a send: the
            // peer takes it for the old life and closes it when it hears the new one, and
            // what this life sent into it would be lost with no `PeerDown`. Close it as
            // the old life's; a dial of ours is made again with the new `Hello` (frames of
            // the new life wait for it).
            if own < peers.own_life {
                let redial = dialed && peers.dialing.contains_key(&peer);
                drop(peers);
                tracing::debug!(peer, "a connection of this node's previous life: closed");
                conn.close(
                    VarInt::from_u32(close::SHUTDOWN),
                    b"this node started a new life",
                );
                if redial {
                    self.spawn_dial(peer);
                }
                return;
            }
            if peer < CLIENT_ID_BASE {
                if let Some(v) = peers.links.get_mut(&peer) {
                    let (old, keep): (Vec<Link>, Vec<Link>) =
                        v.drain(..).partition(|l| l.incarnation < hello.incarnation);
                    *v = keep;
                    superseded = old;
                }
            }
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
        let mut old_lives: Vec<u32> = Vec::new();
        for old in &superseded {
            tracing::warn!(
                peer,
                old = old.incarnation,
                new = hello.incarnation,
                "peer restarted: a connection of its new life replaces the old one"
            );
            old.conn.close(
                VarInt::from_u32(close::SUPERSEDED),
                format!("superseded by life {}", hello.incarnation).as_bytes(),
            );
            if !old_lives.contains(&old.incarnation) {
                old_lives.push(old.incarnation);
            }
        }
        tokio::spawn(writer(send, rx, queued, conn.clone()));
        let t = self.base();
        let (c, h) = (conn.clone(), hello.clone());
        tokio::spawn(async move {
            for life in old_lives {
                t.deliver_peer_down_now(peer, life).await;
            }
            t.reader(c, kind, h, recv).await
        });
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
                Ok(h)
                    if h.id == hello.id
                        && h.cluster == hello.cluster
                        && h.incarnation == hello.incarnation =>
                {
                    let t = self.base();
                    let (c, h) = (conn.clone(), hello.clone());
                    tokio::spawn(async move { t.reader(c, kind, h, recv).await });
                }
                Ok(h) => {
                    let reason = format!(
                        "a new stream's Hello ({} of {}) differs from the connection's",
                        h.id, h.cluster
                    );
                    tracing::error!(peer = hello.id, "{reason}; closing the connection");
                    conn.close(VarInt::from_u32(close::PROTOCOL), reason.as_bytes());
                    return;
                }
                Err(reason) => {
                    tracing::error!(
                        peer = hello.id,
                        "bad stream: {reason}; closing the connection"
                    );
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
                    if let Err(why) = self.check_policy(kind, &msg) {
                        if self.refuse(&conn, kind, peer, None, &why) {
                            return;
                        }
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
                // A session id in its certificate's range: a client's below
                // OPERATOR_ID_BASE, an operator's anywhere above the node range.
                Ok(Some(Frame::From { session, msg }))
                    if kind.is_client_side()
                        && session >= CLIENT_ID_BASE
                        && (kind == Kind::Operator || session < OPERATOR_ID_BASE) =>
                {
                    if let Err(why) = self.check_policy(kind, &msg) {
                        if self.refuse(&conn, kind, peer, Some(session), &why) {
                            return;
                        }
                        continue;
                    }
                    if let Err(reason) = self.add_route(session, peer, conn.stable_id()) {
                        tracing::warn!(peer, "{reason}; disconnecting it");
                        conn.close(VarInt::from_u32(close::OVERLOADED), reason.as_bytes());
                        return;
                    }
                    if self
                        .inner
                        .inbound
                        .send((id_of(session), msg))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Some(Frame::End { session })) if kind.is_client_side() => {
                    self.end_route(session, conn.stable_id())
                }
                // A node's answer to one of this client process's sessions.
                Ok(Some(Frame::To { session, msg }))
                    if kind == Kind::Node && self.inner.me >= CLIENT_ID_BASE =>
                {
                    if let Err(why) = allowed(kind, &msg) {
                        tracing::warn!(
                            peer,
                            kind = msg.kind(),
                            "dropping a message this peer may not send: {why}"
                        );
                        continue;
                    }
                    let tx = lock(&self.inner.sessions).get(&session).cloned();
                    // Never block the connection's reader on one session (the others share
                    // it): a session that is gone or not draining loses the message, as on
                    // a lossy network; its request timeout covers it.
                    if tx.is_none_or(|tx| tx.try_send((id_of(peer), msg)).is_err()) {
                        tracing::debug!(
                            peer,
                            session,
                            "message for a session that is over or full: dropped"
                        );
                    }
                }
                Ok(Some(other)) => {
                    let what = match other {
                        Frame::From { .. } => "a session frame from a node, or for a session id outside the client range",
                        Frame::To { .. } => "a session answer sent to a node",
                        _ => "a session end from a node",
                    };
                    tracing::error!(peer, "unexpected frame: {what}; closing the connection");
                    conn.close(
                        VarInt::from_u32(close::PROTOCOL),
                        format!("unexpected frame: {what}").as_bytes(),
                    );
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

    /// The policy (who may send what) and the size limits for a received message.
    fn check_policy(&self, kind: Kind, msg: &petrel_core::Msg) -> Result<(), Refused> {
        allowed(kind, msg).map_err(Refused::Forbidden)?;
        self.inner
            .settings
            .limits
            .check_msg(msg)
            .map_err(|e| Refused::TooLarge(format!("{} refused: {e}", msg.kind())))
    }

    /// Refuse a received message: counted, logged with its reason. A client or operator
    /// connection is closed with the reason as its close message, so the process that
    /// sent it reports why at once (instead of waiting for a reply that never comes); a
    /// node's connection stays (its other messages are the protocol's). Returns whether
    /// the connection was closed.
    fn refuse(
        &self,
        conn: &Connection,
        kind: Kind,
        peer: u64,
        session: Option<u64>,
        why: &Refused,
    ) -> bool {
        let (counter, reason) = match why {
            Refused::Forbidden(r) => (&self.inner.stats.forbidden, r),
            Refused::TooLarge(r) => (&self.inner.stats.too_large, r),
        };
        super::Stats::count(counter, 1);
        tracing::warn!(peer, ?session, ?kind, "refused a message: {reason}");
        if kind.is_client_side() {
            conn.close(
                VarInt::from_u32(close::FORBIDDEN),
                format!("refused: {reason}").as_bytes(),
            );
            return true;
        }
        false
    }

    /// `PeerDown` to the actor (and, on a client, every session), awaited: delivered
    /// before whatever the caller delivers next.
    pub(super) async fn deliver_peer_down_now(&self, peer: u64, incarnation: u32) {
        let mut targets = vec![self.inner.inbound.clone()];
        targets.extend(lock(&self.inner.sessions).values().cloned());
        for tx in targets {
            let _ = tx
                .send((id_of(peer), petrel_core::Msg::PeerDown { incarnation }))
                .await;
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
                // Not registered any more: a new life superseded it and its PeerDown was
                // delivered then (`register`).
                let registered = v.iter().any(|l| l.stable_id == stable);
                v.retain(|l| l.stable_id != stable);
                let up = !registered || v.iter().any(|l| l.incarnation == hello.incarnation);
                if v.is_empty() {
                    peers.links.remove(&peer);
                }
                up
            } else {
                // A node's entry is only gone if a new life superseded this connection and
                // then closed too: its PeerDown went out with the supersession.
                peer < CLIENT_ID_BASE
            }
        };
        if self.inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        let why = describe(&reason);
        if still_up {
            tracing::info!(
                peer,
                "one of two connections to the peer closed ({why}); the other stays"
            );
            return;
        }
        if peer < CLIENT_ID_BASE {
            tracing::warn!(
                peer,
                incarnation = hello.incarnation,
                "connection lost: {why}"
            );
            let addr = self
                .inner
                .book
                .get(&peer)
                .map(|p| p.addr.to_string())
                .unwrap_or_default();
            self.peers().errors.insert(
                peer,
                format!("node {peer} at {addr}: connection lost: {why}"),
            );
        } else {
            tracing::debug!(peer, "client connection closed: {why}");
        }
        self.deliver_peer_down(peer, hello.incarnation);
    }
}

async fn read_hello(recv: &mut RecvStream, limit: Duration, max: usize) -> Result<Hello, String> {
    match tokio::time::timeout(limit, codec::read_frame(recv, max)).await {
        Err(_) => Err("no Hello within the handshake timeout".into()),
        Ok(Err(e)) => Err(format!("bad Hello: {e}")),
        Ok(Ok(None)) => Err("stream ended before its Hello".into()),
        Ok(Ok(Some(Frame::Hello {
            cluster,
            id,
            incarnation,
        }))) => Ok(Hello {
            cluster,
            id,
            incarnation,
        }),
        Ok(Ok(Some(_))) => Err("first frame of a stream is not a Hello".into()),
    }
}

async fn writer(
    mut send: SendStream,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    conn: Connection,
) {
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
                close::FORBIDDEN => format!("peer refused a message: {reason}"),
                close::SUPERSEDED => format!("closed: {reason}"),
                code => format!("closed by peer (code {code}): {reason}"),
            }
        }
        quinn::ConnectionError::LocallyClosed => "closed locally".into(),
        quinn::ConnectionError::TimedOut => "timed out (no answer within the idle timeout)".into(),
        other => other.to_string(),
    }
}
