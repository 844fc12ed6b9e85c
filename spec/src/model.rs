//! The model: core actors in a stateright `ActorModel`, wrapped in an environment that
//! injects the faults and notifications a real deployment has and stateright lacks:
//! a bounded number of crashes in total, a connection-failure notification to clients, a
//! failure detector for the meta server that respects the lease < grace assumption, and
//! the bounce of a message sent to a crashed node.
use crate::kv::{Kv, KvRet};
use crate::scenario::Scenario;
use petrel_core::auth::Directory;
use petrel_core::client::{ClientCfg, ClientState};
use petrel_core::dup::{DupEntry, FailMode};
use petrel_core::dup::{DupRecord, DupStatus};
use petrel_core::meta::{bootstrap_configs, MetaCfg, MetaState, TableSpec};
use petrel_core::replica::{ReplicaCfg, ReplicaState, ReplicaStorage};
use petrel_core::*;
use serde::Serialize;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Envelope, Id, Network};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use stateright::{Model, Property};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Auxiliary (history) variables: not part of any actor, used only by properties and to
/// bound the environment.
#[derive(Clone, Debug, PartialEq, Hash, Serialize)]
pub struct Aux {
    /// Client operations as invoked and returned, in real-time order.
    pub ops: LinearizabilityTester<Id, Kv>,
    /// Faults the environment may still inject.
    pub crashes_left: u8,
    /// Set when some replica's ballot for a partition went down (SAFE-4).
    pub ballot_regressed: bool,
    /// Messages the environment may still lose.
    pub drops_left: u8,
    /// Set when a duplication's status changed against the allowed table (SAFE-10).
    pub bad_dup_transition: bool,
    /// Messages the foreign sender may still forge.
    pub forges_left: u8,
    /// Disks the environment may still replace.
    pub replaces_left: u8,
    /// Meta↔replica links the environment may still cut, and the replicas cut off from
    /// the meta server (for good: every message between them is lost).
    pub cuts_left: u8,
    pub cut: Vec<Id>,
    /// Links between two live replicas the environment may still break.
    pub breaks_left: u8,
}

pub type State = ActorModelState<Node, Aux>;

/// A step of the system: an actor step, or an environment event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A message delivery or a timer firing (stateright's own actions).
    Actor(ActorModelAction<Msg, Timer, ()>),
    /// A replica server crashes: volatile state lost, its connections break.
    Crash(Id),
    /// A crashed replica server restarts from its durable storage.
    Recover(Id),
    /// Mutant `fd-skip-lease` only: the meta's failure detector fires for a live replica.
    Suspect(Id),
    /// The network loses a message (only kinds the scenario names, within a budget).
    Drop(Envelope<Msg>),
    /// The foreign sender (a node of the partner cluster, with a valid certificate) sends
    /// forged message number `n` of [`PetrelModel::forgeries`].
    Forge(u8),
    /// A replica server's disk is replaced: it crashes and restarts at once with empty
    /// storage (not the installation's: it holds no life). The restart beats the meta
    /// server's failure detector, so only its clients see the connection break.
    Replace(Id),
    /// The link between the meta server and a replica breaks for good (a partition):
    /// clients and the other replicas still reach the replica.
    Cut(Id),
    /// The connection between two live replicas breaks and is dialed again (a partition
    /// outlasted its idle timeout): every message in flight between them is lost, and
    /// each gets the other's `PeerDown`, as the node's driver delivers it.
    Break(Id, Id),
}

pub struct PetrelModel {
    pub scenario: Scenario,
    pub bugs: Bugs,
    pub inner: ActorModel<Node, (), Aux>,
    pub names: Vec<String>,
    pub meta: Id,
    pub replicas: Vec<Id>,
    pub clients: Vec<Id>,
    /// The follower cluster's meta server and replicas (duplication scenarios).
    pub meta_b: Option<Id>,
    pub replicas_b: Vec<Id>,
    /// A node of the partner cluster that may send anything to cluster A (`foreign-sender`).
    pub foreign: Option<Id>,
}

pub const GPID: Gpid = Gpid {
    table: 0,
    partition: 0,
};

impl PetrelModel {
    pub fn new(scenario: &Scenario, bugs: Bugs) -> PetrelModel {
        let meta = Id::from(0);
        let n = scenario.replicas as usize;
        let replicas: Vec<Id> = (1..=n).map(Id::from).collect();
        let mut next = n + 1;
        let (meta_b, replicas_b) = match &scenario.follower {
            Some(f) => {
                let mb = Id::from(next);
                let rb: Vec<Id> = (next + 1..=next + f.replicas as usize)
                    .map(Id::from)
                    .collect();
                next += 1 + f.replicas as usize;
                (Some(mb), rb)
            }
            None => (None, Vec::new()),
        };
        let clients: Vec<Id> = (next..next + scenario.clients.len())
            .map(Id::from)
            .collect();
        next += scenario.clients.len();
        // With a foreign sender, A trusts B for duplication too (as `petrel up --clusters 2`
        // sets both clusters up): authorization, not the credential, must stop it.
        let foreign = scenario.forges.gt(&0).then(|| Id::from(next));
        // Who may send what: A's nodes know B's nodes (and the foreign sender, which holds a
        // certificate of B) as B's; B's nodes know A's as A's.
        let cluster_b = meta_b.unwrap_or(meta);
        let dir_a = Directory {
            meta,
            replicas: replicas.clone(),
            remote: meta_b
                .iter()
                .chain(&replicas_b)
                .chain(&foreign)
                .map(|n| (*n, cluster_b))
                .collect(),
        };
        let dir_b = Directory {
            meta: cluster_b,
            replicas: replicas_b.clone(),
            remote: std::iter::once(&meta)
                .chain(&replicas)
                .map(|n| (*n, meta))
                .collect(),
        };
        let tables = vec![TableSpec {
            id: 0,
            partitions: 1,
            max_replica_count: scenario.max_replica_count,
            source: None,
        }];
        let bootstrap = if scenario.bootstrap_members > 0 {
            bootstrap_configs(&replicas, &tables, scenario.bootstrap_members)
        } else {
            Vec::new()
        };
        let dups = match (&scenario.follower, meta_b) {
            (Some(f), Some(mb)) => vec![DupRecord {
                dupid: 1,
                table: 0,
                status: f.start,
                version: 0,
                remote_meta: mb,
                remote_table: 1,
                remote_replica_count: f.replica_count,
                fail_mode: f.fail_mode,
                skipped: 0,
                refusing: Default::default(),
                checkpoints: Default::default(),
                applied: Default::default(),
                // Log-only from an empty table: everything from decree 1 ships.
                confirmed: (f.start == DupStatus::Log)
                    .then_some((0, 0))
                    .into_iter()
                    .collect(),
                create_attempts: 0,
                stall: None,
            }],
            _ => Vec::new(),
        };
        let mut actors = vec![Node::Meta(MetaCfg {
            dir: dir_a.clone(),
            tables,
            bootstrap_members: scenario.bootstrap_members,
            dups: dups.clone(),
            accept_duplication: foreign.is_some(),
            grace: scenario.leases.then_some(GRACE),
            bugs,
        })];
        let mut names = vec![if meta_b.is_some() { "meta-A" } else { "meta" }.to_string()];
        for (i, _) in replicas.iter().enumerate() {
            actors.push(Node::Replica(ReplicaCfg {
                dir: dir_a.clone(),
                bootstrap: bootstrap.clone(),
                bootstrap_dups: dups.clone(),
                accept_duplication: foreign.is_some(),
                gc: scenario.gc,
                ship_batch: petrel_core::dup::SHIP_BATCH,
                lease: scenario.leases.then(lease_cfg),
                bugs,
            }));
            names.push(if meta_b.is_some() {
                format!("replica-A{}", i + 1)
            } else {
                format!("replica-{}", i + 1)
            });
        }
        if let (Some(f), Some(_)) = (&scenario.follower, meta_b) {
            // A log-only duplication's follower table exists at boot.
            let (tables_b, members_b) = if f.start == DupStatus::Log {
                (
                    vec![TableSpec {
                        id: 1,
                        partitions: 1,
                        max_replica_count: f.replica_count,
                        source: Some(meta),
                    }],
                    f.replica_count,
                )
            } else {
                (Vec::new(), 0)
            };
            let bootstrap_b = bootstrap_configs(&replicas_b, &tables_b, members_b);
            actors.push(Node::Meta(MetaCfg {
                dir: dir_b.clone(),
                tables: tables_b,
                bootstrap_members: members_b,
                dups: Vec::new(),
                accept_duplication: f.meta_accepts,
                grace: None,
                bugs,
            }));
            names.push("meta-B".to_string());
            for (i, _) in replicas_b.iter().enumerate() {
                actors.push(Node::Replica(ReplicaCfg {
                    dir: dir_b.clone(),
                    bootstrap: bootstrap_b.clone(),
                    bootstrap_dups: Vec::new(),
                    accept_duplication: f.replicas_accept,
                    gc: false,
                    ship_batch: petrel_core::dup::SHIP_BATCH,
                    lease: None,
                    bugs,
                }));
                names.push(format!("replica-B{}", i + 1));
            }
        }
        for (i, ops) in scenario.clients.iter().enumerate() {
            actors.push(Node::Client(ClientCfg {
                meta,
                gpid: GPID,
                ops: ops.clone(),
                max_attempts: scenario.max_attempts,
                request_timeout: scenario.request_timeout.then_some(Duration::from_secs(1)),
                first_req: 1,
                route: None,
                bugs,
            }));
            names.push(format!("client-{}", i + 1));
        }
        if foreign.is_some() {
            // Inert: it answers nothing; what it sends is the environment's `Forge`.
            actors.push(Node::Client(ClientCfg {
                meta,
                gpid: GPID,
                ops: Vec::new(),
                max_attempts: 1,
                request_timeout: None,
                first_req: 1,
                route: None,
                bugs,
            }));
            names.push("foreign-B".to_string());
        }
        let drops = scenario
            .follower
            .as_ref()
            .map_or(0, |f| f.lose_create_replies);
        let aux = Aux {
            ops: LinearizabilityTester::new(Kv::default()),
            crashes_left: scenario.crashes,
            ballot_regressed: false,
            drops_left: drops,
            bad_dup_transition: false,
            forges_left: scenario.forges,
            replaces_left: scenario.replaces,
            cuts_left: scenario.cuts,
            cut: Vec::new(),
            breaks_left: scenario.link_breaks,
        };
        let inner = ActorModel::new((), aux)
            .actors(actors)
            .init_network(Network::new_unordered_nonduplicating([]));
        PetrelModel {
            scenario: scenario.clone(),
            bugs,
            inner,
            names,
            meta,
            replicas,
            clients,
            meta_b,
            replicas_b,
            foreign,
        }
    }

    pub fn meta_b_state<'a>(&self, s: &'a State) -> Option<&'a MetaState> {
        match self
            .meta_b
            .and_then(|m| s.actor_states.get(usize::from(m)))
            .map(|a| &**a)
        {
            Some(NodeState::Meta(m)) => Some(m),
            _ => None,
        }
    }

    pub fn is_client(&self, id: Id) -> bool {
        self.clients.contains(&id)
    }

    pub fn replica<'a>(&self, s: &'a State, id: Id) -> Option<&'a ReplicaState> {
        match s.actor_states.get(usize::from(id)).map(|a| &**a) {
            Some(NodeState::Replica(r)) => Some(r),
            _ => None,
        }
    }
    pub fn storage<'a>(&self, s: &'a State, id: Id) -> Option<&'a ReplicaStorage> {
        match s.actor_storages.get(usize::from(id)) {
            Some(Some(NodeStorage::Replica(r))) => Some(r),
            _ => None,
        }
    }
    pub fn meta_state<'a>(&self, s: &'a State) -> Option<&'a MetaState> {
        match s.actor_states.get(usize::from(self.meta)).map(|a| &**a) {
            Some(NodeState::Meta(m)) => Some(m),
            _ => None,
        }
    }
    pub fn client<'a>(&self, s: &'a State, id: Id) -> Option<&'a ClientState> {
        match s.actor_states.get(usize::from(id)).map(|a| &**a) {
            Some(NodeState::Client(c)) => Some(c),
            _ => None,
        }
    }
    pub fn crashed(&self, s: &State, id: Id) -> bool {
        s.crashed.get(usize::from(id)).copied().unwrap_or(false)
    }
    fn client_ops(&self, id: Id) -> &[ClientOp] {
        match self.inner.actors.get(usize::from(id)) {
            Some(Node::Client(c)) => &c.ops,
            _ => &[],
        }
    }
    pub fn properties_list(&self) -> Vec<Property<Self>> {
        crate::properties::all(self)
    }

    /// The actor a step belongs to (the receiver, the timer's owner, the crashed node...).
    pub fn action_actor(&self, a: &Action) -> Id {
        match a {
            Action::Actor(ActorModelAction::Deliver { dst, .. }) => *dst,
            Action::Actor(ActorModelAction::Timeout(id, _)) => *id,
            Action::Actor(ActorModelAction::Drop(env)) => env.dst,
            Action::Actor(ActorModelAction::Crash(id) | ActorModelAction::Recover(id)) => *id,
            Action::Actor(ActorModelAction::SelectRandom { actor, .. }) => *actor,
            Action::Crash(id) | Action::Recover(id) => *id,
            Action::Suspect(_) => self.meta,
            Action::Drop(env) => env.dst,
            Action::Forge(n) => self.forge_dst(*n),
            Action::Replace(id) => *id,
            Action::Cut(id) => *id,
            Action::Break(a, _) => *a,
        }
    }

    // ---- environment mechanics ----

    fn inject(s: &mut State, src: Id, dst: Id, msg: Msg) {
        if let Network::UnorderedNonDuplicating(map) = &mut s.network {
            *map.entry(Envelope { src, dst, msg }).or_insert(0) += 1;
        }
    }

    fn incarnation(&self, s: &State, id: Id) -> u32 {
        self.replica(s, id).map_or(0, |r| r.incarnation)
    }

    /// The nodes the environment may crash (SPEC.md, "Fault model").
    pub fn crashable(&self) -> Vec<Id> {
        let c = self.scenario.crashable;
        let mut v = Vec::new();
        if c.meta {
            v.push(self.meta);
        }
        if c.replicas {
            v.extend(&self.replicas);
        }
        if c.follower_meta {
            v.extend(self.meta_b);
        }
        if c.follower_replicas {
            v.extend(&self.replicas_b);
        }
        v
    }

    /// The replica↔replica links a scenario's environment may break: within each
    /// cluster, and from A's replicas to B's (the duplicators shipping to them).
    fn breakable_links(&self) -> Vec<(Id, Id)> {
        let mut v = Vec::new();
        let all: Vec<Id> = self
            .replicas
            .iter()
            .chain(&self.replicas_b)
            .copied()
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                v.push((*a, *b));
            }
        }
        v
    }

    /// Who learns that `id`'s connections broke when it crashes: every node whose core
    /// acts on a `PeerDown` from it (the node's driver tells every connected peer; a
    /// notice that a core ignores is left out to keep the state space small).
    fn peer_down_targets(&self, id: Id) -> Vec<Id> {
        let mut v = Vec::new();
        let wide = self.scenario.replica_peer_down;
        if id == self.meta {
            // Its replicas register again; its clients refresh elsewhere.
            v.extend(&self.replicas);
            v.extend(&self.clients);
        } else if Some(id) == self.meta_b {
            // Its replicas register again; A's duplicators asking it ask again.
            v.extend(&self.replicas_b);
            v.extend(&self.replicas);
        } else if self.replicas.contains(&id) {
            // The failure detector (without leases), the clients, and (wide) its peers:
            // a primary re-teaching a learner, a learner whose primary died.
            v.push(self.meta);
            v.extend(&self.clients);
            if wide {
                v.extend(self.replicas.iter().filter(|r| **r != id));
            }
        } else if self.replicas_b.contains(&id) {
            v.extend(self.meta_b);
            if wide {
                v.extend(self.replicas_b.iter().filter(|r| **r != id));
                // A's primaries shipping to it look up the follower primary again.
                v.extend(&self.replicas);
            }
        }
        v
    }

    /// A message to a crashed node is lost (its connections are gone); a client that sent
    /// it learns at once that the connection could not be made. Like the node's QUIC
    /// driver, which cannot know the life of a node it failed to reach, the notice names
    /// life 0.
    fn bounce(&self, s: &mut State) {
        let dead: Vec<Envelope<Msg>> = s
            .network
            .iter_deliverable()
            .filter(|e| self.crashed(s, e.dst) && !matches!(e.msg, Msg::PeerDown { .. }))
            .map(|e| e.to_cloned_msg())
            .collect();
        for env in dead {
            if let Network::UnorderedNonDuplicating(map) = &mut s.network {
                map.remove(&env);
            }
            let replica_sender = self.scenario.replica_peer_down
                && (self.replicas.contains(&env.src) || self.replicas_b.contains(&env.src));
            if self.clients.contains(&env.src) || replica_sender {
                Self::inject(s, env.dst, env.src, Msg::PeerDown { incarnation: 0 });
            }
        }
    }

    /// Messages between the meta server and a replica cut off from it are lost.
    fn partition(&self, s: &mut State) {
        if s.history.cut.is_empty() {
            return;
        }
        let cut = s.history.cut.clone();
        let meta = self.meta;
        if let Network::UnorderedNonDuplicating(map) = &mut s.network {
            map.retain(|e, _| {
                !((e.src == meta && cut.contains(&e.dst))
                    || (e.dst == meta && cut.contains(&e.src)))
            });
        }
    }

    /// Replica `r` holds its lease, or an acknowledgement in flight can still renew it.
    fn may_serve(&self, s: &State, r: Id) -> bool {
        let Some(rs) = self.replica(s, r) else {
            return false;
        };
        let renewable = rs.lease.out
            && s.network.iter_deliverable().any(|e| {
                e.dst == r
                    && matches!(e.msg, Msg::BeaconAck { incarnation, seq, alive: true } if *incarnation == rs.incarnation && *seq == rs.lease.seq)
            });
        rs.lease.held || renewable
    }

    /// The timing assumptions, as preconditions of timers (SPEC.md, "Timing"):
    /// - the meta server's `Grace(r)` fires only once `r` serves nothing — it crashed, or
    ///   its lease lapsed and no acknowledgement in flight can renew it (the grace outlasts
    ///   every lease a beacon the meta heard can grant);
    /// - between the meta server and a replica it is not cut off from, beacons and their
    ///   acknowledgements arrive in time: that replica's lease does not lapse and the meta
    ///   server does not give up on it (the lease is acquired once, after a start);
    /// - a replica's `Beacon` fires only when its previous beacon round is over (sent and
    ///   answered or lost): beacons are far apart compared with a round trip, which also
    ///   keeps the number of messages in flight bounded.
    fn timer_enabled(&self, s: &State, id: Id, t: &Timer) -> bool {
        let cut = |r: &Id| s.history.cut.contains(r);
        match t {
            Timer::Grace(r) => {
                if self.bugs.has(Bug::FdSkipLease) || self.crashed(s, *r) {
                    return true;
                }
                if !cut(r) {
                    return false;
                }
                !self.may_serve(s, *r)
            }
            Timer::MetaGrace => {
                // A restarted meta server's grace outlasts every lease its previous life
                // granted, and (without leases, where the meta loses a replica only by its
                // crash) every live replica's registration: when it ends, a replica the
                // meta does not know alive serves nothing.
                let (cluster, meta) = if Some(id) == self.meta_b {
                    (&self.replicas_b, self.meta_b_state(s))
                } else {
                    (&self.replicas, self.meta_state(s))
                };
                let Some(meta) = meta else { return true };
                cluster.iter().all(|r| {
                    self.crashed(s, *r)
                        || meta.alive.contains_key(r)
                        || (self.scenario.leases && !self.may_serve(s, *r))
                })
            }
            Timer::LeaseExpiry => cut(&id),
            Timer::Beacon => {
                let held = self.replica(s, id).is_some_and(|r| r.lease.held);
                (!held || cut(&id))
                    && !s.network.iter_deliverable().any(|e| {
                        (e.src == id && matches!(e.msg, Msg::Beacon { .. }))
                            || (e.dst == id && matches!(e.msg, Msg::BeaconAck { .. }))
                    })
            }
            _ => true,
        }
    }

    /// Record client invocations and returns (for linearizability) and ballot regressions.
    fn observe(&self, before: &State, after: &mut State, id: Id) {
        match (
            before.actor_states.get(usize::from(id)).map(|a| &**a),
            after.actor_states.get(usize::from(id)).map(|a| &**a),
        ) {
            (Some(NodeState::Client(b)), Some(NodeState::Client(a))) => {
                let (b, a) = (b.clone(), a.clone());
                let ops = self.client_ops(id);
                for r in a.results.iter().skip(b.results.len()) {
                    // A definite failure may or may not have taken effect: not a return.
                    if let Some(ret) = KvRet::of(r) {
                        let _ = after.history.ops.on_return(id, ret);
                    }
                }
                let invoked = a.sent && (a.op != b.op || !b.sent);
                if invoked {
                    if let Some(op) = ops.get(a.op as usize) {
                        let _ = after.history.ops.on_invoke(id, op.clone());
                    }
                }
            }
            (Some(NodeState::Meta(b)), Some(NodeState::Meta(a))) => {
                let bad = b.dups.iter().any(|(id, d)| {
                    a.dups
                        .get(id)
                        .is_some_and(|n| !d.status.can_become(n.status))
                });
                if bad {
                    after.history.bad_dup_transition = true;
                }
            }
            (Some(NodeState::Replica(b)), Some(NodeState::Replica(a))) => {
                let regressed = b.parts.iter().any(|(g, p)| {
                    a.parts
                        .get(g)
                        .is_some_and(|q| q.config.ballot < p.config.ballot)
                });
                if regressed {
                    after.history.ballot_regressed = true;
                }
            }
            _ => {}
        }
    }
}

impl Model for PetrelModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        self.inner.init_states()
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let mut inner = Vec::new();
        self.inner.actions(s, &mut inner);
        // Only deliveries and timers: crashes and restarts are the environment's, below.
        actions.extend(
            inner
                .into_iter()
                .filter(|a| match a {
                    ActorModelAction::Deliver { .. } => true,
                    ActorModelAction::Timeout(id, t) => self.timer_enabled(s, *id, t),
                    _ => false,
                })
                .map(Action::Actor),
        );
        if s.history.cuts_left > 0 {
            for &r in &self.replicas {
                actions.push(Action::Cut(r));
            }
        }
        if s.history.breaks_left > 0 {
            for (a, b) in self.breakable_links() {
                if !self.crashed(s, a) && !self.crashed(s, b) {
                    actions.push(Action::Break(a, b));
                }
            }
        }
        if s.history.crashes_left > 0 {
            for r in self.crashable() {
                if !self.crashed(s, r) {
                    actions.push(Action::Crash(r));
                }
            }
            if self.bugs.has(Bug::FdSkipLease) {
                for &r in &self.replicas {
                    if !self.crashed(s, r) {
                        actions.push(Action::Suspect(r));
                    }
                }
            }
        }
        if s.history.drops_left > 0 {
            // Sorted: the network iterates in hash order, and action indices must be stable
            // (they are the Explorer's `#/steps/...` path).
            let mut drops: Vec<Envelope<Msg>> = s
                .network
                .iter_deliverable()
                .filter(|env| matches!(env.msg, Msg::CreateFollowerReply { .. }))
                .map(|env| env.to_cloned_msg())
                .collect();
            drops.sort();
            actions.extend(drops.into_iter().map(Action::Drop));
        }
        if s.history.replaces_left > 0 {
            for &r in &self.replicas {
                if !self.crashed(s, r) {
                    actions.push(Action::Replace(r));
                }
            }
        }
        if s.history.forges_left > 0 {
            actions.extend((0..FORGERIES).map(Action::Forge));
        }
        if self.scenario.recover {
            for r in self.crashable() {
                if self.crashed(s, r) {
                    actions.push(Action::Recover(r));
                }
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let (mut next, who) = match action {
            Action::Actor(a) => {
                let who = self.action_actor(&Action::Actor(a.clone()));
                (self.inner.next_state(s, a)?, who)
            }
            Action::Crash(id) => {
                let mut next = self.inner.next_state(s, ActorModelAction::Crash(id))?;
                next.history.crashes_left -= 1;
                let inc = self.incarnation(s, id);
                // In-flight messages to the node die with its connections.
                if let Network::UnorderedNonDuplicating(map) = &mut next.network {
                    map.retain(|e, _| e.dst != id);
                }
                // The meta's failure detector fires after its grace period; the node's
                // lease (shorter) has expired by then, and a crashed node serves nothing.
                for t in self.peer_down_targets(id) {
                    if !self.crashed(&next, t) {
                        Self::inject(&mut next, id, t, Msg::PeerDown { incarnation: inc });
                    }
                }
                (next, id)
            }
            Action::Recover(id) => (self.inner.next_state(s, ActorModelAction::Recover(id))?, id),
            Action::Drop(env) => {
                let mut next = s.clone();
                next.history.drops_left -= 1;
                if let Network::UnorderedNonDuplicating(map) = &mut next.network {
                    match map.get_mut(&env) {
                        Some(c) if *c > 1 => *c -= 1,
                        Some(_) => {
                            map.remove(&env);
                        }
                        None => return None,
                    }
                }
                let dst = env.dst;
                (next, dst)
            }
            Action::Suspect(id) => {
                let mut next = s.clone();
                next.history.crashes_left -= 1;
                Self::inject(
                    &mut next,
                    id,
                    self.meta,
                    Msg::PeerDown {
                        incarnation: self.incarnation(s, id),
                    },
                );
                (next, self.meta)
            }
            Action::Replace(id) => {
                let mut next = self.inner.next_state(s, ActorModelAction::Crash(id))?;
                next.history.replaces_left -= 1;
                let inc = self.incarnation(s, id);
                if let Network::UnorderedNonDuplicating(map) = &mut next.network {
                    map.retain(|e, _| e.dst != id);
                }
                for &c in &self.clients {
                    Self::inject(&mut next, id, c, Msg::PeerDown { incarnation: inc });
                }
                // An empty disk: no life recorded (the core's "fresh" storage).
                let empty = NodeStorage::Replica(ReplicaStorage {
                    incarnation: 0,
                    parts: BTreeMap::new(),
                });
                if let Some(slot) = next.actor_storages.get_mut(usize::from(id)) {
                    *slot = Some(empty);
                }
                (
                    self.inner
                        .next_state(&next, ActorModelAction::Recover(id))?,
                    id,
                )
            }
            Action::Break(a, b) => {
                let mut next = s.clone();
                next.history.breaks_left -= 1;
                if let Network::UnorderedNonDuplicating(map) = &mut next.network {
                    map.retain(|e, _| {
                        !((e.src == a && e.dst == b) || (e.src == b && e.dst == a))
                            || matches!(e.msg, Msg::PeerDown { .. })
                    });
                }
                let (ia, ib) = (self.incarnation(s, a), self.incarnation(s, b));
                Self::inject(&mut next, a, b, Msg::PeerDown { incarnation: ia });
                Self::inject(&mut next, b, a, Msg::PeerDown { incarnation: ib });
                (next, a)
            }
            Action::Cut(id) => {
                let mut next = s.clone();
                next.history.cuts_left -= 1;
                next.history.cut.push(id);
                next.history.cut.sort();
                (next, id)
            }
            Action::Forge(n) => {
                let foreign = self.foreign?;
                let msg = self.forgery(s, n)?;
                let mut next = s.clone();
                next.history.forges_left -= 1;
                let dst = self.forge_dst(n);
                Self::inject(&mut next, foreign, dst, msg);
                (next, dst)
            }
        };
        self.observe(s, &mut next, who);
        self.bounce(&mut next);
        self.partition(&mut next);
        Some(next)
    }

    fn format_action(&self, a: &Action) -> String {
        match a {
            Action::Actor(ActorModelAction::Deliver { src, dst, msg }) => {
                format!("{} → {msg:?} → {}", self.name(*src), self.name(*dst))
            }
            Action::Actor(ActorModelAction::Timeout(id, t)) => {
                format!("{} timer {t:?}", self.name(*id))
            }
            Action::Crash(id) => format!("crash {}", self.name(*id)),
            Action::Recover(id) => format!("restart {}", self.name(*id)),
            Action::Suspect(id) => format!("meta suspects live {}", self.name(*id)),
            Action::Drop(env) => format!(
                "network loses {} → {:?} → {}",
                self.name(env.src),
                env.msg,
                self.name(env.dst)
            ),
            Action::Forge(n) => format!(
                "foreign-B forges message {n} to {}",
                self.name(self.forge_dst(*n))
            ),
            Action::Replace(id) => format!(
                "disk of {} replaced (restart with empty storage)",
                self.name(*id)
            ),
            Action::Break(a, b) => format!(
                "connection between {} and {} breaks (in-flight messages lost)",
                self.name(*a),
                self.name(*b)
            ),
            Action::Cut(id) => format!(
                "link between {} and {} cut",
                self.name(self.meta),
                self.name(*id)
            ),
            Action::Actor(a) => format!("{a:?}"),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties_list()
    }
}

impl PetrelModel {
    pub fn name(&self, id: Id) -> String {
        self.names
            .get(usize::from(id))
            .cloned()
            .unwrap_or_else(|| format!("{id:?}"))
    }

    /// Weak-fairness class of an action: message deliveries and timers are fair, restarts
    /// are fair when the scenario's faults are transient, crashes and suspicions are not.
    pub fn fair_class(&self, a: &Action) -> Option<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match a {
            Action::Actor(ActorModelAction::Deliver { src, dst, msg }) => {
                (0u8, src, dst, msg).hash(&mut h)
            }
            Action::Actor(ActorModelAction::Timeout(id, t)) => (1u8, id, t).hash(&mut h),
            Action::Recover(id) if self.scenario.recover => (2u8, id).hash(&mut h),
            Action::Crash(id) if self.scenario.crash_certain => (3u8, id).hash(&mut h),
            _ => return None,
        }
        Some(h.finish())
    }
}

/// Shared handle used by the checker front end.
pub type SharedModel = Arc<PetrelModel>;

/// How many messages the foreign sender can forge (`PetrelModel::forgery`).
pub const FORGERIES: u8 = 19;
/// The ballot, value and table the forgeries carry, so SAFE-15 can tell their effects.
pub const FORGED_BALLOT: Ballot = 1000;
pub const FORGED_TABLE: u8 = 9;
pub fn forged_value() -> Value {
    Value::from("forged")
}

impl PetrelModel {
    /// The receiver of forgery `n`: A's meta server, or replica-A1 / replica-A2.
    pub fn forge_dst(&self, n: u8) -> Id {
        let a1 = self.replicas.first().copied().unwrap_or(self.meta);
        let a2 = self.replicas.get(1).copied().unwrap_or(a1);
        match n {
            0 | 1 | 4 => a2,
            2 | 3 | 5..=9 | 17 | 18 => a1,
            _ => self.meta,
        }
    }

    /// What the foreign sender (a node of cluster B, with B's certificate) sends as its
    /// `n`th forgery: every kind of message that could change A's configurations, data or
    /// duplication status, made as convincing as the state allows (current incarnations
    /// and configurations). SAFE-15 states that none of them has any effect.
    pub fn forgery(&self, s: &State, n: u8) -> Option<Msg> {
        let f = self.foreign?;
        let a1 = *self.replicas.first()?;
        let a2 = self.replicas.get(1).copied().unwrap_or(a1);
        let current = self
            .replica(s, a1)
            .and_then(|r| r.parts.get(&GPID))
            .map(|p| p.config.clone())
            .unwrap_or_default();
        let evil = |primary: Id, secondaries: Vec<Id>| PartitionConfig {
            gpid: GPID,
            ballot: FORGED_BALLOT,
            primary: Some(primary),
            secondaries,
            max_replica_count: current.max_replica_count,
            source: None,
        };
        let key = Key::from("k");
        let entry = Entry {
            ballot: FORGED_BALLOT,
            mutation: Mutation {
                client: f,
                req: 1,
                op: Op::Put(key.clone(), forged_value()),
            },
        };
        let data: Map<Key, Value> = [(key.clone(), forged_value())].into();
        let remote_meta = self.meta_b.unwrap_or(f);
        Some(match n {
            0 => Msg::ConfigUpdate {
                config: evil(a2, vec![]),
                incarnation: self.incarnation(s, a2),
            },
            1 => Msg::Prepare {
                config: evil(f, vec![a2]),
                decree: 1,
                entry,
                committed: 1,
                base: 0,
                retain: 0,
            },
            2 => Msg::GroupCheck {
                config: evil(f, vec![a1]),
                committed: 0,
                base: 0,
                retain: 0,
            },
            3 => Msg::AddSecondary {
                config: current,
                node: f,
                incarnation: self.incarnation(s, a1),
            },
            4 => Msg::Learn {
                config: evil(f, vec![]),
                snapshot: Snapshot {
                    decree: 5,
                    data: data.clone(),
                    last_req: Map::new(),
                },
                log: BTreeMap::new(),
                committed: 5,
                retain: 0,
            },
            5 => Msg::Checkpoint {
                gpid: GPID,
                origin: remote_meta,
                decree: 1,
                data,
            },
            6 => Msg::Ship {
                gpid: GPID,
                origin: remote_meta,
                entries: vec![(1, Op::Put(key, forged_value()))],
            },
            7 => {
                let entry = DupEntry {
                    status: petrel_core::dup::DupStatus::Removed,
                    remote_meta,
                    remote_table: FORGED_TABLE,
                    version: 100,
                    fail_mode: FailMode::Skip,
                    confirmed: FORGED_BALLOT,
                };
                Msg::DupUpdate {
                    gpid: GPID,
                    dups: [(1, entry)].into_iter().collect(),
                    incarnation: self.incarnation(s, a1),
                }
            }
            8 => Msg::Write {
                gpid: GPID,
                req: 1,
                key,
                value: Some(forged_value()),
            },
            9 => Msg::PrepareAck {
                gpid: GPID,
                ballot: current.ballot,
                decree: 1,
                ok: true,
            },
            10 => Msg::ModifyDup {
                dupid: 1,
                status: petrel_core::dup::DupStatus::Pause,
            },
            11 => Msg::SetFailMode {
                dupid: 1,
                mode: FailMode::Skip,
            },
            12 => Msg::CreateTable {
                table: FORGED_TABLE,
                partitions: 1,
                replica_count: 1,
            },
            13 => Msg::AddDup {
                table: 0,
                remote_meta: f,
                remote_table: FORGED_TABLE,
                remote_replica_count: 1,
                full: true,
            },
            14 => Msg::Register { incarnation: 1 },
            15 => Msg::ProposeConfig {
                config: current.next(|c| c.primary = Some(f)),
                incarnation: 1,
            },
            16 => Msg::DupReport {
                gpid: GPID,
                dupid: 1,
                progress: DupProgress::Confirmed(FORGED_BALLOT),
            },
            17 => Msg::ApplyReply {
                gpid: Gpid {
                    table: 1,
                    partition: 0,
                },
                decree: FORGED_BALLOT,
                result: Ok(()),
            },
            18 => Msg::LearnDone {
                gpid: GPID,
                ballot: current.ballot,
                learned: 0,
            },
            _ => return None,
        })
    }
}

/// The model's lease timing (abstract: only the order of events matters, see
/// `timer_enabled`). Beacon numbers wrap at 2.
pub const GRACE: Duration = Duration::from_secs(3);
pub fn lease_cfg() -> petrel_core::replica::LeaseCfg {
    petrel_core::replica::LeaseCfg {
        beacon: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        seq_modulus: 2,
    }
}
