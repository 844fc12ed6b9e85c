//! The failover client (seed S5): routes by the meta's configuration, fails fast on an
//! error reply or a broken connection, refreshes the configuration from the meta server,
//! re-resolves the primary and retries, within a retry budget. It never waits on a dead
//! node: the request deadline and the connection-failure notification both end a wait.
use crate::bug::{Bug, Bugs};
use crate::msg::{Msg, Timer};
use crate::node::Node;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientCfg {
    pub meta: Id,
    pub gpid: Gpid,
    /// The operations this client performs, in order.
    pub ops: Vec<ClientOp>,
    /// Failed attempts per operation (a dead node or a deadline) before giving up with a
    /// definite error. A redirect (not primary, still recovering) costs no attempt: it
    /// comes from a live node, and the configuration it waits for is on its way.
    pub max_attempts: u8,
    /// Arm a per-request deadline. The model disables it in scenarios where failure
    /// notifications already end every wait, to keep the state space small.
    pub request_timeout: Option<Duration>,
    /// The number of the first request; the others follow on. Replicas deduplicate writes
    /// by (client id, request number) and keep the highest number per id, so a node
    /// client may reuse an id for a new actor that starts above every number the id has
    /// used (its dedup entry is then one per id, not one per call). The model uses 1.
    pub first_req: ReqId,
    /// A route learned by an earlier client of the same process: the configuration and the
    /// primary's life the meta server last named. The first operation goes straight to
    /// that primary (no query on the data path); a stale route costs one redirect or one
    /// failed attempt, exactly as a configuration that went stale between two operations
    /// of one client does. The model starts without one.
    pub route: Option<(PartitionConfig, u32)>,
    pub bugs: Bugs,
}

impl ClientCfg {
    /// The request number of operation `op`.
    pub fn req_of(&self, op: u8) -> ReqId {
        self.first_req.saturating_add(ReqId::from(op))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting for the meta server's configuration.
    Querying,
    /// The meta server's answer named no usable primary (none, or the life that just
    /// failed us): ask again when `QueryBackoff` fires, not at once (a client must not
    /// spin on the meta server while it is still detecting a failure).
    Backoff,
    /// The current operation was sent to `target`, in its life `incarnation`.
    Sent {
        target: Id,
        incarnation: Option<u32>,
    },
    /// All operations returned, or the client gave up.
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientState {
    /// Index of the current operation.
    pub op: u8,
    pub phase: Phase,
    /// The current operation was sent at least once.
    pub sent: bool,
    /// Failed attempts of the current operation so far.
    pub attempts: u8,
    pub config: Option<PartitionConfig>,
    /// The primary's incarnation as the meta server last reported it.
    pub incarnation: Option<u32>,
    /// The node life that just failed us: a configuration that still names that life as
    /// primary is stale (the meta's failure detector has not fired yet), so we ask again.
    pub suspect: Option<(Id, u32)>,
    pub results: Vec<OpResult>,
}

impl ClientState {
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }
}

pub fn on_start(cfg: &ClientCfg, o: &mut Out<Node>) -> ClientState {
    let mut s = ClientState {
        op: 0,
        phase: Phase::Done,
        sent: false,
        attempts: 0,
        config: None,
        incarnation: None,
        suspect: None,
        results: Vec::new(),
    };
    if !cfg.ops.is_empty() {
        if let Some((config, life)) = &cfg.route {
            s.config = Some(config.clone());
            s.incarnation = Some(*life);
        }
        route(cfg, &mut s, false, o);
    }
    s
}

fn send_op(cfg: &ClientCfg, s: &mut ClientState, target: Id, o: &mut Out<Node>) {
    let Some(op) = cfg.ops.get(s.op as usize) else {
        s.phase = Phase::Done;
        return;
    };
    let req = cfg.req_of(s.op);
    s.sent = true;
    s.phase = Phase::Sent {
        target,
        incarnation: s.incarnation,
    };
    let gpid = cfg.gpid;
    match op.clone() {
        ClientOp::Put(key, value) => o.send(
            target,
            Msg::Write {
                gpid,
                req,
                key,
                value: Some(value),
            },
        ),
        ClientOp::Del(key) => o.send(
            target,
            Msg::Write {
                gpid,
                req,
                key,
                value: None,
            },
        ),
        ClientOp::Get(key) => o.send(target, Msg::Read { gpid, req, key }),
    }
    if let Some(d) = cfg.request_timeout {
        o.set_timer(Timer::RequestTimeout, d..d);
    }
}

/// Pause between configuration queries that named no usable primary.
pub const QUERY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Route the current operation by the cached configuration, or ask the meta server
/// (after a pause when `answered`: its last answer did not help).
fn route(cfg: &ClientCfg, s: &mut ClientState, answered: bool, o: &mut Out<Node>) {
    let primary = s.config.as_ref().and_then(|c| c.primary);
    match (primary, s.incarnation) {
        (Some(p), Some(i)) if s.suspect != Some((p, i)) => send_op(cfg, s, p, o),
        _ if answered => {
            s.phase = Phase::Backoff;
            o.set_timer(Timer::QueryBackoff, QUERY_BACKOFF..QUERY_BACKOFF);
        }
        _ => {
            s.phase = Phase::Querying;
            o.send(cfg.meta, Msg::QueryConfig { gpid: cfg.gpid });
        }
    }
}

fn complete(cfg: &ClientCfg, s: &mut ClientState, result: OpResult, o: &mut Out<Node>) {
    s.results.push(result);
    s.op += 1;
    s.sent = false;
    s.attempts = 0;
    s.suspect = None;
    if cfg.request_timeout.is_some() {
        o.cancel_timer(Timer::RequestTimeout);
    }
    if s.op as usize >= cfg.ops.len() {
        s.phase = Phase::Done;
    } else {
        route(cfg, s, false, o);
    }
}

/// Fail fast: give up when the budget is spent, else refresh the routing and retry.
fn failed(
    cfg: &ClientCfg,
    s: &mut ClientState,
    target: Id,
    err: ErrorCode,
    dead_life: Option<u32>,
    o: &mut Out<Node>,
) {
    if cfg.request_timeout.is_some() {
        o.cancel_timer(Timer::RequestTimeout);
    }
    let dead = matches!(err, ErrorCode::PeerDown | ErrorCode::Timeout);
    if dead {
        s.attempts += 1;
        if s.attempts >= cfg.max_attempts {
            s.results.push(OpResult::Failed(err));
            s.phase = Phase::Done;
            return;
        }
    }
    if cfg.bugs.has(Bug::ClientNoRefresh) {
        send_op(cfg, s, target, o);
        return;
    }
    // A dead node stays suspect until the meta's configuration moves past it; a live node
    // that redirected us is asked again once we have the latest configuration.
    s.suspect = dead_life.map(|i| (target, i));
    s.phase = Phase::Querying;
    o.send(cfg.meta, Msg::QueryConfig { gpid: cfg.gpid });
}

pub fn on_msg(cfg: &ClientCfg, s: &mut ClientState, src: Id, msg: Msg, o: &mut Out<Node>) {
    let expected_req = cfg.req_of(s.op);
    let (sent_to, life) = match s.phase {
        Phase::Sent {
            target,
            incarnation,
        } => (Some(target), incarnation),
        _ => (None, None),
    };
    match msg {
        Msg::QueryConfigReply {
            gpid,
            config,
            incarnation,
        } if gpid == cfg.gpid && s.phase == Phase::Querying && src == cfg.meta => {
            if let Some(c) = config {
                if s.config.as_ref().is_none_or(|old| c.ballot >= old.ballot) {
                    s.config = Some(c);
                    s.incarnation = incarnation;
                }
            }
            route(cfg, s, true, o);
        }
        Msg::WriteReply { req, result, .. } if sent_to == Some(src) && req == expected_req => {
            match result {
                Ok(()) => complete(cfg, s, OpResult::WriteOk, o),
                Err(e) => failed(cfg, s, src, e, None, o),
            }
        }
        Msg::ReadReply { req, result, .. } if sent_to == Some(src) && req == expected_req => {
            match result {
                Ok(v) => complete(cfg, s, OpResult::ReadOk(v), o),
                Err(e) => failed(cfg, s, src, e, None, o),
            }
        }
        // Life 0: a connection could not be made (the driver never learned which life it
        // dialled). It may be about an earlier send to an earlier life, so it proves
        // nothing about the life we sent to: no suspicion, no attempt; ask the meta server
        // again after a pause and resend (a repeat of a write that took effect is
        // answered as done). The checker found the livelock that treating it as the
        // current life causes.
        Msg::PeerDown { incarnation: 0 }
            if sent_to == Some(src) && !cfg.bugs.has(Bug::ClientIgnoresPeerDown) =>
        {
            if cfg.bugs.has(Bug::ClientNoRefresh) {
                send_op(cfg, s, src, o);
                return;
            }
            if cfg.request_timeout.is_some() {
                o.cancel_timer(Timer::RequestTimeout);
            }
            s.phase = Phase::Backoff;
            o.set_timer(Timer::QueryBackoff, QUERY_BACKOFF..QUERY_BACKOFF);
        }
        // The meta server we asked for the route is gone (crashed, restarting): our
        // question went with the connection and no answer will come. Ask again after a
        // pause; this costs no attempt, the partition may be healthy.
        Msg::PeerDown { .. }
            if src == cfg.meta
                && s.phase == Phase::Querying
                && !cfg.bugs.has(Bug::ClientIgnoresMetaDown) =>
        {
            s.phase = Phase::Backoff;
            o.set_timer(Timer::QueryBackoff, QUERY_BACKOFF..QUERY_BACKOFF);
        }
        // Only the failure of the life we sent to: a late notice about an earlier life
        // says nothing about the restarted node.
        Msg::PeerDown { incarnation }
            if sent_to == Some(src)
                && life.is_none_or(|l| l == incarnation)
                && !cfg.bugs.has(Bug::ClientIgnoresPeerDown) =>
        {
            failed(cfg, s, src, ErrorCode::PeerDown, Some(incarnation), o)
        }
        _ => {}
    }
}

pub fn on_timeout(cfg: &ClientCfg, s: &mut ClientState, timer: &Timer, o: &mut Out<Node>) {
    match (timer, &s.phase) {
        (Timer::RequestTimeout, Phase::Sent { target, .. }) => {
            let target = *target;
            failed(cfg, s, target, ErrorCode::Timeout, None, o)
        }
        (Timer::QueryBackoff, Phase::Backoff) => {
            s.phase = Phase::Querying;
            o.send(cfg.meta, Msg::QueryConfig { gpid: cfg.gpid });
        }
        _ => {}
    }
}
