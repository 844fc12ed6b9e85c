//! The replica server: PacificA-style primary/secondary replication of each partition it
//! hosts, learning (potential secondaries), and the commit rule "logged locally and ACKed
//! by every secondary".
use crate::auth::{self, Directory};
use crate::bug::{Bug, Bugs};
use crate::dup::*;
use crate::map::Map;
use crate::msg::{DupProgress, Msg, Timer};
use crate::node::{Node, NodeStorage};
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// Static configuration of a replica server (not state: it never changes at run time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaCfg {
    /// Our meta server, the replica servers of our cluster, and the nodes of other
    /// clusters: who may send what (`auth.rs`).
    pub dir: Directory,
    /// Partitions this node serves at its very first boot (a bootstrapped deployment).
    pub bootstrap: Vec<PartitionConfig>,
    /// Duplications configured at first boot (the meta server's are the same): their
    /// partitions retain the log from the first decree.
    pub bootstrap_dups: Vec<DupRecord>,
    /// Accept checkpoints and shipped mutations from other clusters (the cluster
    /// credential check of a follower).
    pub accept_duplication: bool,
    /// Collect the committed log prefix into a snapshot as soon as nothing needs it (log
    /// retention). Off, the whole log is kept.
    pub gc: bool,
    /// Mutations per shipped batch (the model uses `SHIP_BATCH`).
    pub ship_batch: u32,
    /// Leases from the meta server (beacons). `None`: the lease is taken as always held,
    /// the model's abstraction for scenarios where the meta server loses a replica only
    /// by its crash (SPEC.md, "Timing").
    pub lease: Option<LeaseCfg>,
    pub bugs: Bugs,
}

/// A replica's lease: it may serve only while the meta server acknowledged a beacon
/// recently enough that the meta cannot yet have declared it dead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseCfg {
    /// Beacon period, and the window in which a beacon's acknowledgement counts: an
    /// acknowledgement handled after the next beacon left is ignored.
    pub beacon: std::time::Duration,
    /// How long a lease lasts from the send of the acknowledged beacon. The lease timer is
    /// armed when the acknowledgement is handled, within `beacon` of that send, for
    /// `lease - beacon`: it ends no later than `send + lease`. The meta server's grace,
    /// counted from the beacon's receipt (after its send), must exceed `lease` plus a
    /// clock-rate margin: then a replica declared dead has stopped serving.
    pub lease: std::time::Duration,
    /// Beacon numbers wrap here (the node: never in practice; the model: 2, which keeps
    /// the state space finite and is sound there — see SPEC.md).
    pub seq_modulus: u32,
}

/// Volatile lease state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The lease is held: this replica may serve as a primary.
    pub held: bool,
    /// The last beacon sent and whether it still awaits its acknowledgement.
    pub seq: u32,
    pub out: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Hosts data but serves nothing until the meta server gives it a role.
    Inactive,
    /// A learner: copying the primary's state, `recovering` is set.
    PotentialSecondary,
    Secondary,
    Primary,
}

/// One partition replica on this server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    pub status: Status,
    /// The newest configuration this replica knows (its ballot is "the replica's ballot").
    pub config: PartitionConfig,
    /// What garbage collection made of the log's prefix.
    pub snapshot: Snapshot,
    /// Prepared mutations after the snapshot, committed ones included.
    pub log: BTreeMap<Decree, Entry>,
    pub committed: Decree,
    /// Keep log entries above this decree: duplications have not confirmed them. A
    /// primary derives it from its duplications; members take it from the primary.
    pub retain: Decree,
    /// Set while learning; a replica that is recovering must not serve reads. Every role
    /// change recomputes it (seed S4: a stale flag makes a promoted primary refuse reads).
    pub recovering: bool,
    /// The ballot of the newest lesson taken (volatile, kept across role changes): a
    /// learner whose lesson was aborted (its primary's connection broke) must still refuse
    /// an older lesson of that ballot arriving late, for its report of the newer one may
    /// still be on its way and count it as caught up.
    pub lesson: Option<Ballot>,
    // ---- primary only (volatile, rebuilt empty on every role change) ----
    /// ACKs per uncommitted decree at the current ballot.
    pub acks: BTreeMap<Decree, BTreeSet<Id>>,
    /// Who to answer when a decree commits: (peer, request, is a duplication checkpoint).
    pub waiting: BTreeMap<Decree, (Id, ReqId, bool)>,
    /// Learners: `true` once caught up (then they receive prepares and must ACK them).
    pub learners: BTreeMap<Id, bool>,
    /// A new primary serves reads only once it has committed everything it inherited
    /// (the last decree it held when it took over): before that its commit point may be
    /// behind what the previous primary already acknowledged.
    pub read_barrier: Decree,
    /// The primary's last decree when it adopted the current ballot.
    pub base: Decree,
    /// Reads waiting for the barrier.
    pub pending_reads: BTreeSet<(Id, ReqId, Key)>,
    /// Prepares that arrived ahead of a missing decree: a member's log is always a
    /// contiguous prefix, and it ACKs only what extends it, so a promoted member never
    /// has a hole.
    pub early: BTreeMap<Decree, Entry>,
    /// The duplications of this partition, as the meta server last said (durable).
    pub dup_entries: BTreeMap<DupId, DupEntry>,
    /// A primary's duplicators (volatile: rebuilt on every start of a duplicator).
    pub dups: BTreeMap<DupId, Duplicator>,
}

/// What survives a crash, per partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartDurable {
    pub config: PartitionConfig,
    pub snapshot: Snapshot,
    pub log: BTreeMap<Decree, Entry>,
    pub committed: Decree,
    pub retain: Decree,
    pub dups: BTreeMap<DupId, DupEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaStorage {
    pub incarnation: u32,
    pub parts: BTreeMap<Gpid, PartDurable>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Boot count (durable): lets the meta server tell a restart from a stale report.
    pub incarnation: u32,
    pub parts: BTreeMap<Gpid, Part>,
    /// An internal invariant broke: the replica stops (what a C++ assert would have done).
    pub broken: Option<String>,
    pub lease: Lease,
}

impl Part {
    fn new(config: PartitionConfig, status: Status) -> Part {
        Part {
            status,
            config,
            snapshot: Snapshot::default(),
            log: BTreeMap::new(),
            committed: 0,
            retain: Decree::MAX,
            recovering: false,
            lesson: None,
            acks: BTreeMap::new(),
            waiting: BTreeMap::new(),
            learners: BTreeMap::new(),
            read_barrier: 0,
            base: 0,
            pending_reads: BTreeSet::new(),
            early: BTreeMap::new(),
            dup_entries: BTreeMap::new(),
            dups: BTreeMap::new(),
        }
    }
    pub fn last_decree(&self) -> Decree {
        self.log
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.snapshot.decree)
    }
    /// The largest decree d such that every decree in committed+1..=d is logged.
    fn contiguous(&self) -> Decree {
        let mut d = self.committed;
        while d < Decree::MAX && self.log.contains_key(&(d + 1)) {
            d += 1;
        }
        d
    }
    /// `key`'s value as of decree `d` (the latest logged mutation that decides it, else
    /// the snapshot).
    pub fn read(&self, key: &Key, d: Decree) -> Option<Value> {
        read_at(&self.snapshot, &self.log, key, d)
    }
    /// The whole map as of decree `d`.
    pub fn data_at(&self, d: Decree) -> Map<Key, Value> {
        let mut data = self.snapshot.data.clone();
        for e in self.log.range(..=d).map(|(_, e)| e) {
            e.mutation.op.apply(&mut data);
        }
        data
    }
    /// The last mutation of `writer` this replica holds (a source meta server's, for a
    /// follower partition: the source decree it has applied up to).
    pub fn last_req(&self, writer: Id) -> Option<ReqId> {
        let logged = self
            .log
            .values()
            .filter(|e| e.mutation.client == writer)
            .map(|e| e.mutation.req)
            .max();
        logged.or_else(|| self.snapshot.last_req.get(&writer).copied())
    }
    /// This replica's log holds `writer`'s mutation `req`.
    fn holds(&self, writer: Id, req: ReqId) -> bool {
        self.log
            .values()
            .any(|e| e.mutation.client == writer && e.mutation.req == req)
    }
    /// Garbage-collect the committed log up to what duplications have confirmed.
    fn collect(&mut self, cfg: &ReplicaCfg) {
        if !cfg.gc {
            return;
        }
        let bound = if cfg.bugs.has(Bug::DupGcBeforeConfirm) {
            self.committed
        } else {
            self.committed.min(self.retain)
        };
        while let Some(entry) = self.log.first_entry() {
            if *entry.key() > bound {
                break;
            }
            let (d, e) = entry.remove_entry();
            self.snapshot.fold(d, &e);
        }
    }
    /// A primary's retain bound: for each duplication, the checkpoint it is building or
    /// copying (PREPARE, APP), or the decree the meta server persisted as confirmed.
    fn dup_retain(&self) -> Decree {
        self.dup_entries
            .iter()
            .filter(|(_, e)| e.status.is_valid())
            .map(|(id, e)| match e.status {
                DupStatus::Prepare | DupStatus::App => self
                    .dups
                    .get(id)
                    .and_then(|d| d.checkpoint)
                    .unwrap_or(self.committed),
                _ => e.confirmed,
            })
            .min()
            .unwrap_or(Decree::MAX)
    }
    fn learn_msg(&self) -> Msg {
        Msg::Learn {
            config: self.config.clone(),
            snapshot: self.snapshot.clone(),
            log: self.log.clone(),
            committed: self.committed,
            retain: self.retain,
        }
    }
    /// Replicas whose ACK a commit needs: secondaries and caught-up learners.
    fn targets(&self) -> Vec<Id> {
        let mut t = self.config.secondaries.clone();
        t.extend(
            self.learners
                .iter()
                .filter(|(_, caught)| **caught)
                .map(|(id, _)| *id),
        );
        t
    }
}

impl ReplicaState {
    fn storage(&self, bugs: Bugs) -> ReplicaStorage {
        ReplicaStorage {
            incarnation: self.incarnation,
            parts: self
                .parts
                .iter()
                .map(|(g, p)| {
                    let mut config = p.config.clone();
                    if bugs.has(Bug::ForgetToPersistBallot) {
                        config.ballot = 0;
                    }
                    let d = PartDurable {
                        config,
                        snapshot: p.snapshot.clone(),
                        log: p.log.clone(),
                        committed: p.committed,
                        retain: p.retain,
                        dups: p.dup_entries.clone(),
                    };
                    (*g, d)
                })
                .collect(),
        }
    }
}

/// `key`'s value as of decree `d` in a collapsed prefix plus the log after it.
pub fn read_at(
    snapshot: &Snapshot,
    log: &BTreeMap<Decree, Entry>,
    key: &Key,
    d: Decree,
) -> Option<Value> {
    match log
        .range(..=d)
        .rev()
        .find_map(|(_, e)| e.mutation.op.decides(key))
    {
        Some(decided) => decided.cloned(),
        None => snapshot.data.get(key).cloned(),
    }
}

fn persist(cfg: &ReplicaCfg, s: &ReplicaState, o: &mut Out<Node>) {
    o.save(NodeStorage::Replica(s.storage(cfg.bugs)));
}

pub fn on_start(
    cfg: &ReplicaCfg,
    id: Id,
    storage: Option<&ReplicaStorage>,
    o: &mut Out<Node>,
) -> ReplicaState {
    match storage {
        // An empty disk that is not the deployment's installation (no bootstrap given, or
        // a disk that holds no life yet): this node holds no data and has no life. It
        // must not pass for the life that held this id's data before (a wiped or
        // replaced disk): the meta server assigns it a new one, and it joins as a learner.
        None if cfg.bootstrap.is_empty() => fresh(cfg, o),
        Some(st) if st.incarnation == 0 => fresh(cfg, o),
        None => {
            let parts: BTreeMap<Gpid, Part> = cfg
                .bootstrap
                .iter()
                .filter(|c| c.is_member(id))
                .map(|c| {
                    let status = if c.primary == Some(id) {
                        Status::Primary
                    } else {
                        Status::Secondary
                    };
                    let mut p = Part::new(c.clone(), status);
                    for d in cfg
                        .bootstrap_dups
                        .iter()
                        .filter(|d| d.table == c.gpid.table && d.status.is_valid())
                    {
                        let entry = d.entry(c.gpid.partition);
                        p.retain = p.retain.min(entry.confirmed);
                        p.dup_entries.insert(d.dupid, entry);
                    }
                    (c.gpid, p)
                })
                .collect();
            // The installation: life 1, as the meta server's bootstrap assumes.
            let s = ReplicaState {
                incarnation: 1,
                parts,
                broken: None,
                lease: start_lease(cfg, o),
            };
            persist(cfg, &s, o);
            s
        }
        Some(st) => {
            // Recovery: every derived and volatile field is rebuilt here, none is left at a
            // default that the running code would not expect.
            let parts = st
                .parts
                .iter()
                .map(|(g, d)| {
                    let mut p = Part::new(d.config.clone(), Status::Inactive);
                    p.snapshot = d.snapshot.clone();
                    p.log = d.log.clone();
                    p.committed = d.committed;
                    p.retain = d.retain;
                    p.dup_entries = d.dups.clone();
                    (*g, p)
                })
                .collect();
            let s = ReplicaState {
                incarnation: st.incarnation.saturating_add(1),
                parts,
                broken: None,
                lease: start_lease(cfg, o),
            };
            persist(cfg, &s, o);
            o.send(
                cfg.dir.meta,
                Msg::Register {
                    incarnation: s.incarnation,
                },
            );
            s
        }
    }
}

/// A node without a life: it asks the meta server for one (`Register` of life 0) and holds
/// nothing, durably or not, until it has one.
fn fresh(cfg: &ReplicaCfg, o: &mut Out<Node>) -> ReplicaState {
    if cfg.bugs.has(Bug::EmptyDiskSameLife) {
        // The bug: take life 1 again, as if this were the disk that held it.
        let s = ReplicaState {
            incarnation: 1,
            parts: BTreeMap::new(),
            broken: None,
            lease: start_lease(cfg, o),
        };
        persist(cfg, &s, o);
        o.send(cfg.dir.meta, Msg::Register { incarnation: 1 });
        return s;
    }
    o.send(cfg.dir.meta, Msg::Register { incarnation: 0 });
    ReplicaState {
        incarnation: 0,
        parts: BTreeMap::new(),
        broken: None,
        lease: start_lease(cfg, o),
    }
}

/// No lease at start (a restarted node must not serve on its previous life's lease);
/// the first beacon is due at once. Without leases (`cfg.lease` = None) it is held.
fn start_lease(cfg: &ReplicaCfg, o: &mut Out<Node>) -> Lease {
    match &cfg.lease {
        Some(l) => {
            o.set_timer(Timer::Beacon, l.beacon..l.beacon);
            Lease::default()
        }
        None => Lease {
            held: true,
            ..Lease::default()
        },
    }
}

/// This replica may serve as a primary: it holds its lease (mutant `lease-ignored`: always).
fn leased(cfg: &ReplicaCfg, s: &ReplicaState) -> bool {
    s.lease.held || cfg.bugs.has(Bug::LeaseIgnored)
}

/// The lease lapsed: stop serving, and fail fast whoever waits on this primary (a
/// redirect: the client asks the meta server again). A write in flight may still commit
/// (the members that ACKed it keep it, whichever becomes primary); its retry is then
/// answered as done, never applied twice.
fn lapse(cfg: &ReplicaCfg, s: &mut ReplicaState, o: &mut Out<Node>) {
    s.lease.held = false;
    if cfg.bugs.has(Bug::LeaseIgnored) {
        return;
    }
    for p in s.parts.values_mut() {
        for (client, req, _) in std::mem::take(&mut p.pending_reads) {
            o.send(
                client,
                Msg::ReadReply {
                    gpid: p.config.gpid,
                    req,
                    result: Err(ErrorCode::NotPrimary),
                },
            );
        }
        for (_, (to, req, dup)) in std::mem::take(&mut p.waiting) {
            reply_write(o, to, p.config.gpid, req, dup, Err(ErrorCode::NotPrimary));
        }
    }
}

pub fn on_msg(
    cfg: &ReplicaCfg,
    id: Id,
    s: &mut ReplicaState,
    src: Id,
    msg: Msg,
    o: &mut Out<Node>,
) {
    if s.broken.is_some() {
        return;
    }
    let role = cfg.dir.role(src);
    let bug = match msg {
        Msg::ConfigUpdate { .. } => cfg.bugs.has(Bug::ConfigFromAnyone),
        Msg::Checkpoint { .. } => cfg.bugs.has(Bug::CheckpointFromAnySource),
        _ => false,
    };
    if !auth::may_send(role, &msg) && !bug {
        return;
    }
    match msg {
        Msg::Write {
            gpid,
            req,
            key,
            value,
        } => {
            let op = match value {
                Some(v) => Op::Put(key, v),
                None => Op::Del(key),
            };
            on_write(
                cfg,
                s,
                src,
                gpid,
                Mutation {
                    client: src,
                    req,
                    op,
                },
                false,
                o,
            )
        }
        Msg::Checkpoint {
            gpid,
            origin,
            decree,
            data,
        } => {
            if refuse_duplication(cfg, s, src, gpid, origin, decree, bug, o) {
                return;
            }
            // A checkpoint replaces the state; one older than what this follower already
            // applied from `origin` (a previous source primary's) answers with that.
            let last = s.parts.get(&gpid).and_then(|p| p.last_req(origin));
            let req = last.map_or(decree, |l| l.max(decree));
            on_write(
                cfg,
                s,
                src,
                gpid,
                Mutation {
                    client: origin,
                    req,
                    op: Op::Load(data),
                },
                true,
                o,
            )
        }
        Msg::Ship {
            gpid,
            origin,
            entries,
        } => {
            let first = entries.first().map_or(0, |(d, _)| *d);
            if refuse_duplication(cfg, s, src, gpid, origin, first, false, o) {
                return;
            }
            for (decree, op) in entries {
                // In order, each once: a repeat is answered as done, a gap is ignored (the
                // source resends from its confirmed decree).
                let last = match s.parts.get(&gpid) {
                    Some(p) if p.status == Status::Primary => p.last_req(origin),
                    _ => {
                        o.send(
                            src,
                            Msg::ApplyReply {
                                gpid,
                                decree,
                                result: Err(None),
                            },
                        );
                        return;
                    }
                };
                let req = match last {
                    Some(l) if decree > l.saturating_add(1) => break,
                    // Covered by something later this follower holds (a newer checkpoint
                    // or another source primary's batch): answered with that decree once
                    // it commits, never applied below it.
                    Some(l)
                        if decree <= l
                            && !s.parts.get(&gpid).is_some_and(|p| p.holds(origin, decree)) =>
                    {
                        l
                    }
                    _ => decree,
                };
                on_write(
                    cfg,
                    s,
                    src,
                    gpid,
                    Mutation {
                        client: origin,
                        req,
                        op,
                    },
                    true,
                    o,
                );
            }
        }
        Msg::DupUpdate { gpid, dups, .. } => {
            let Some(p) = s.parts.get_mut(&gpid) else {
                return;
            };
            let merged: BTreeMap<DupId, DupEntry> = dups
                .iter()
                .map(|(id, heard)| (*id, DupEntry::merge(p.dup_entries.get(id), heard)))
                .collect();
            if p.dup_entries != merged {
                p.dup_entries = merged;
                persist(cfg, s, o);
            }
            sync_duplicators(cfg, s, gpid, false, o);
        }
        Msg::QueryConfigReply {
            gpid: fgpid,
            config,
            ..
        } => {
            // The follower cluster's answer: where to push the checkpoint or mutations.
            let Some(b) = config.and_then(|c| c.primary) else {
                // Not assigned yet (or not created yet): ask again after a pause.
                o.set_timer(Timer::DupQuery, DUP_QUERY..DUP_QUERY);
                return;
            };
            let gpids: Vec<Gpid> = s.parts.keys().copied().collect();
            for g in gpids {
                let Some(p) = s.parts.get_mut(&g) else {
                    continue;
                };
                let mut pushes = Vec::new();
                let mut checkpoints = Vec::new();
                for d in p.dups.values_mut() {
                    let mine =
                        d.entry.remote_meta == src && follower_gpid(d, g) == fgpid && d.asking;
                    if !mine {
                        continue;
                    }
                    d.asking = false;
                    d.target = Some(b);
                    if let (DupStatus::App, false, Some(decree)) =
                        (d.entry.status, d.applied, d.checkpoint)
                    {
                        checkpoints.push(decree);
                    }
                }
                for decree in checkpoints {
                    pushes.push(Msg::Checkpoint {
                        gpid: fgpid,
                        origin: cfg.dir.meta,
                        decree,
                        data: p.data_at(decree),
                    });
                }
                for m in pushes {
                    o.send(b, m);
                }
                ship(cfg, s, g, o);
            }
        }
        Msg::ApplyReply {
            gpid: fgpid,
            decree,
            result,
        } => on_apply_reply(cfg, s, src, fgpid, decree, result, o),
        Msg::Read { gpid, req, key } => {
            let leased = leased(cfg, s);
            let result = match s.parts.get_mut(&gpid) {
                None => Err(ErrorCode::UnknownPartition),
                Some(p) if p.status != Status::Primary || !leased => Err(ErrorCode::NotPrimary),
                Some(p) if p.recovering => Err(ErrorCode::Recovering),
                Some(p) if cfg.bugs.has(Bug::ReadUncommitted) => Ok(p.read(&key, p.last_decree())),
                Some(p) if p.committed < p.read_barrier => {
                    p.pending_reads.insert((src, req, key));
                    return;
                }
                Some(p) => Ok(p.read(&key, p.committed)),
            };
            o.send(src, Msg::ReadReply { gpid, req, result });
        }
        Msg::Prepare {
            config,
            decree,
            entry,
            committed,
            base,
            retain,
        } => on_prepare(
            cfg, id, s, src, config, decree, entry, committed, base, retain, o,
        ),
        Msg::PrepareAck {
            gpid,
            ballot,
            decree,
            ok,
        } => {
            if let Some(p) = s.parts.get_mut(&gpid) {
                if ok
                    && p.status == Status::Primary
                    && ballot == p.config.ballot
                    && decree > p.committed
                {
                    p.acks.entry(decree).or_default().insert(src);
                    try_commit(cfg, s, gpid, o);
                }
            }
        }
        Msg::ConfigUpdate { incarnation, .. }
        | Msg::AddSecondary { incarnation, .. }
        | Msg::ProposeConfigReply { incarnation, .. }
            if incarnation != s.incarnation => {}
        Msg::ConfigUpdate { config, .. } => adopt(cfg, id, s, config, o),
        Msg::ProposeConfigReply { result, .. } => {
            let config = match result {
                Ok(c) | Err(c) => c,
            };
            // Caught-up learners stay commit targets until the ballot changes: a proposal
            // still in flight may yet make them secondaries, so they must not fall behind.
            adopt(cfg, id, s, config, o);
        }
        Msg::GroupCheck {
            config,
            committed,
            base,
            retain,
        } => {
            if config.primary != Some(src) {
                return;
            }
            let (gpid, ballot) = (config.gpid, config.ballot);
            adopt_with_base(cfg, id, s, config, Some(base), o);
            if let Some(p) = s.parts.get_mut(&gpid) {
                if p.status == Status::Secondary && p.config.ballot == ballot {
                    let c = p.committed.max(committed.min(p.contiguous()));
                    if c != p.committed || retain != p.retain {
                        p.committed = c;
                        p.retain = retain;
                        p.collect(cfg);
                        persist(cfg, s, o);
                    }
                }
            }
        }
        Msg::AddSecondary { config, node, .. } => {
            // The meta committed `config`; it may overtake its own ConfigUpdate.
            if config.primary == Some(id) {
                adopt(cfg, id, s, config.clone(), o);
            }
            if let Some(p) = s.parts.get_mut(&config.gpid) {
                if p.status != Status::Primary
                    || config.ballot != p.config.ballot
                    || p.config.is_member(node)
                {
                    return;
                }
                match p.learners.get(&node).copied() {
                    None => {
                        p.learners.insert(node, false);
                        o.send(node, p.learn_msg());
                    }
                    Some(_) if cfg.bugs.has(Bug::AddSecondaryIgnoresLearner) => {}
                    // Asked again for a learner we already teach: the meta server lost
                    // track of it (it restarted) or our Learn was lost. Teach it again.
                    Some(false) => o.send(node, p.learn_msg()),
                    // Caught up: our proposal must have been lost (with the connection
                    // to a meta server that restarted): propose again. At this ballot
                    // the meta accepts at most one proposal, so a repeat is harmless.
                    Some(true) => {
                        let next = p.config.next(|c| c.secondaries.push(node));
                        o.send(
                            cfg.dir.meta,
                            Msg::ProposeConfig {
                                config: next,
                                incarnation: s.incarnation,
                            },
                        );
                    }
                }
            }
        }
        Msg::Learn {
            config,
            snapshot,
            log,
            committed,
            retain,
        } => {
            if config.primary != Some(src) || config.is_member(id) {
                return;
            }
            let gpid = config.gpid;
            let p = s
                .parts
                .entry(gpid)
                .or_insert_with(|| Part::new(config.clone(), Status::Inactive));
            if config.ballot < p.config.ballot {
                return;
            }
            // An older lesson than one already taken: the primary taught us again and the
            // two crossed. At one ballot the primary's log only grows, so the older one
            // ends earlier; taking it would drop what we reported learned, and the
            // primary may already count us as caught up.
            let ends = log.keys().next_back().copied().unwrap_or(snapshot.decree);
            // Having taken a lesson of this ballot, everything we hold came from this
            // primary at this ballot (a lesson, then its prepares), even if we aborted
            // since (mutant `lesson-forgotten-on-abort`: only while still learning).
            let taught = match p.lesson {
                _ if cfg.bugs.has(Bug::LessonForgottenOnAbort) => {
                    p.status == Status::PotentialSecondary && p.config.ballot == config.ballot
                }
                Some(ballot) => ballot == config.ballot,
                None => false,
            };
            let stale = taught && ends < p.last_decree();
            if stale && !cfg.bugs.has(Bug::LearnerTakesStaleLearn) {
                return;
            }
            p.lesson = Some(config.ballot);
            set_status(cfg, p, Status::PotentialSecondary, o);
            p.recovering = true;
            p.config = config;
            p.retain = retain;
            if !cfg.bugs.has(Bug::LearnSkipsCheckpoint)
                && !cfg.bugs.has(Bug::LearnerKeepsStaleEntries)
            {
                p.snapshot = snapshot;
            }
            if cfg.bugs.has(Bug::LearnSkipsCheckpoint) {
                p.log = log.into_iter().filter(|(d, _)| *d > committed).collect();
            } else if cfg.bugs.has(Bug::LearnerKeepsStaleEntries) {
                for (d, e) in log {
                    p.log.entry(d).or_insert(e);
                }
            } else {
                p.log = log;
            }
            p.committed = if cfg.bugs.has(Bug::LearnSkipsCheckpoint) {
                committed
            } else {
                // Never beyond the gap-free prefix of what was learned.
                let mut k: Decree = p.snapshot.decree;
                while k < Decree::MAX && p.log.contains_key(&(k + 1)) {
                    k += 1;
                }
                committed.min(k)
            };
            let (ballot, learned) = (p.config.ballot, p.last_decree());
            persist(cfg, s, o);
            o.send(
                src,
                Msg::LearnDone {
                    gpid,
                    ballot,
                    learned,
                },
            );
        }
        Msg::LearnDone {
            gpid,
            ballot,
            learned,
        } => {
            let Some(p) = s.parts.get_mut(&gpid) else {
                return;
            };
            if p.status != Status::Primary
                || ballot != p.config.ballot
                || p.learners.get(&src) != Some(&false)
            {
                return;
            }
            if learned == p.last_decree() {
                // Caught up: from now on it gets every prepare and its ACK is needed to
                // commit, so it cannot fall behind while the meta commits the upgrade.
                p.learners.insert(src, true);
                let next = p.config.next(|c| c.secondaries.push(src));
                o.send(
                    cfg.dir.meta,
                    Msg::ProposeConfig {
                        config: next,
                        incarnation: s.incarnation,
                    },
                );
            } else {
                o.send(src, p.learn_msg());
            }
        }
        Msg::BeaconAck {
            incarnation,
            seq,
            alive,
        } if incarnation == s.incarnation && incarnation > 0 => {
            if !alive {
                // The meta server declared this life dead (its lease had lapsed): the roles
                // it held were given away. Never serve them again: start a new life, as a
                // restart would, keeping the data.
                for p in s.parts.values_mut() {
                    set_status(cfg, p, Status::Inactive, o);
                }
                lapse(cfg, s, o);
                s.lease.out = false;
                s.incarnation = s.incarnation.saturating_add(1);
                persist(cfg, s, o);
                o.send(
                    cfg.dir.meta,
                    Msg::Register {
                        incarnation: s.incarnation,
                    },
                );
            } else if s.lease.out && seq == s.lease.seq {
                if let Some(l) = &cfg.lease {
                    s.lease.out = false;
                    s.lease.held = true;
                    let rest = l.lease.saturating_sub(l.beacon);
                    o.set_timer(Timer::LeaseExpiry, rest..rest);
                }
            }
        }
        Msg::Registered { incarnation } => {
            // The life the meta server assigned this fresh node: durable before it is
            // announced.
            if s.incarnation == 0 && incarnation > 0 {
                s.incarnation = incarnation;
                persist(cfg, s, o);
                o.send(cfg.dir.meta, Msg::Register { incarnation });
            }
        }
        Msg::PeerDown { .. } if src == cfg.dir.meta => {
            // The link to the meta server broke (it may have restarted and forgotten who
            // is alive): announce this life again after a pause.
            o.set_timer(Timer::Reregister, REREGISTER..REREGISTER);
        }
        Msg::PeerDown { .. } => {
            // A follower meta server we asked for its primary is unreachable: the question
            // went with the connection (it may be restarting). Ask again after a pause.
            let asked = s.parts.values().any(|p| {
                p.status == Status::Primary
                    && p.dups
                        .values()
                        .any(|d| d.asking && d.entry.remote_meta == src)
            });
            if asked && !cfg.bugs.has(Bug::DupQueryNotRetried) {
                o.set_timer(Timer::DupQuery, DUP_QUERY..DUP_QUERY);
            }
            // A follower primary we were shipping to is gone: ask B again, resend from the
            // confirmed decree.
            let mut ask = Vec::new();
            for (g, p) in s.parts.iter_mut() {
                for d in p.dups.values_mut().filter(|d| d.target == Some(src)) {
                    reset_link(d);
                    d.asking = true;
                    ask.push((d.entry.remote_meta, follower_gpid(d, *g)));
                }
            }
            for (meta, fgpid) in ask {
                o.send(meta, Msg::QueryConfig { gpid: fgpid });
            }
            // A member we prepare to lost a connection (it crashed, or a partition timed
            // the connection out while it lives on): prepares or their ACKs may have died
            // with it, and nothing else sends them again. Prepare again what it has not
            // acknowledged; a repeat is harmless (the member ACKs what it holds).
            if !cfg.bugs.has(Bug::PrepareNotResent) {
                for p in s.parts.values().filter(|p| p.status == Status::Primary) {
                    resend_prepares(p, src, o);
                }
            }
            // A learner we are teaching lost a connection: our Learn may have gone with it
            // (a message for a life that is gone never reaches its successor, which the
            // meta server may already have asked us to teach). Teach it again; a repeated
            // Learn is harmless (the learner starts over from the newer state).
            for p in s.parts.values() {
                if p.status == Status::Primary && p.learners.get(&src) == Some(&false) {
                    o.send(src, p.learn_msg());
                }
            }
            // A learner whose primary died aborts learning (seed S4: and must clear
            // `recovering`, which `set_status` does).
            let aborted: Vec<Gpid> = s
                .parts
                .iter()
                .filter(|(_, p)| {
                    p.status == Status::PotentialSecondary && p.config.primary == Some(src)
                })
                .map(|(g, _)| *g)
                .collect();
            for g in aborted {
                if let Some(p) = s.parts.get_mut(&g) {
                    set_status(cfg, p, Status::Inactive, o);
                }
            }
        }
        Msg::QueryConfig { .. }
        | Msg::Beacon { .. }
        | Msg::BeaconAck { .. }
        | Msg::DupReport { .. }
        | Msg::CreateFollower { .. }
        | Msg::CreateFollowerReply { .. }
        | Msg::QueryFollower { .. }
        | Msg::QueryFollowerReply { .. }
        | Msg::WriteReply { .. }
        | Msg::ReadReply { .. }
        | Msg::Register { .. }
        | Msg::ProposeConfig { .. }
        | Msg::ModifyDup { .. }
        | Msg::ModifyDupReply { .. }
        | Msg::SetFailMode { .. }
        | Msg::SetFailModeReply { .. }
        | Msg::CreateTable { .. }
        | Msg::CreateTableReply { .. }
        | Msg::AddDup { .. }
        | Msg::AddDupReply { .. }
        | Msg::QueryCluster
        | Msg::ClusterStatus { .. } => {}
    }
}

/// Pause before registering again with a meta server whose link broke.
pub const REREGISTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Pause before asking a follower cluster again for a follower primary.
pub const DUP_QUERY: std::time::Duration = std::time::Duration::from_millis(500);

pub fn on_timeout(cfg: &ReplicaCfg, s: &mut ReplicaState, timer: &Timer, o: &mut Out<Node>) {
    if s.broken.is_some() {
        return;
    }
    match timer {
        Timer::Beacon => {
            let Some(l) = &cfg.lease else { return };
            o.set_timer(Timer::Beacon, l.beacon..l.beacon);
            if s.incarnation > 0 {
                // A beacon still unanswered is given up: its acknowledgement, handled from
                // now on, could extend the lease beyond what the meta server granted.
                s.lease.seq = (s.lease.seq + 1) % l.seq_modulus.max(1);
                s.lease.out = true;
                o.send(
                    cfg.dir.meta,
                    Msg::Beacon {
                        incarnation: s.incarnation,
                        seq: s.lease.seq,
                    },
                );
            }
        }
        Timer::LeaseExpiry => lapse(cfg, s, o),
        Timer::Reregister => o.send(
            cfg.dir.meta,
            Msg::Register {
                incarnation: s.incarnation,
            },
        ),
        Timer::DupQuery => {
            let mut asks = BTreeSet::new();
            for (g, p) in &s.parts {
                for d in p
                    .dups
                    .values()
                    .filter(|d| d.asking && p.status == Status::Primary)
                {
                    asks.insert((d.entry.remote_meta, follower_gpid(d, *g)));
                }
            }
            for (meta, gpid) in asks {
                o.send(meta, Msg::QueryConfig { gpid });
            }
        }
        _ => {}
    }
}

/// Answer a write: a client's, or a source primary's checkpoint push (`dup`).
fn reply_write(
    o: &mut Out<Node>,
    to: Id,
    gpid: Gpid,
    req: ReqId,
    dup: bool,
    result: Result<(), ErrorCode>,
) {
    if dup {
        o.send(
            to,
            Msg::ApplyReply {
                gpid,
                decree: req,
                result: result.map_err(|_| None),
            },
        );
    } else {
        o.send(to, Msg::WriteReply { gpid, req, result });
    }
}

fn on_write(
    cfg: &ReplicaCfg,
    s: &mut ReplicaState,
    reply_to: Id,
    gpid: Gpid,
    m: Mutation,
    dup: bool,
    o: &mut Out<Node>,
) {
    let leased = leased(cfg, s);
    let Some(p) = s.parts.get_mut(&gpid) else {
        reply_write(
            o,
            reply_to,
            gpid,
            m.req,
            dup,
            Err(ErrorCode::UnknownPartition),
        );
        return;
    };
    if p.status != Status::Primary || !leased {
        reply_write(o, reply_to, gpid, m.req, dup, Err(ErrorCode::NotPrimary));
        return;
    }
    // A retry of a write that already took effect answers success once it commits.
    let dedupe = !(dup && cfg.bugs.has(Bug::FollowerNoDedup));
    if dedupe
        && p.snapshot
            .last_req
            .get(&m.client)
            .is_some_and(|r| *r >= m.req)
    {
        reply_write(o, reply_to, gpid, m.req, dup, Ok(()));
        return;
    }
    let repeat = p
        .log
        .iter()
        .find(|(_, e)| e.mutation.client == m.client && e.mutation.req == m.req)
        .map(|(d, _)| *d);
    if let Some(d) = repeat.filter(|_| dedupe) {
        if d <= p.committed {
            reply_write(o, reply_to, gpid, m.req, dup, Ok(()));
        } else {
            p.waiting.insert(d, (reply_to, m.req, dup));
        }
        return;
    }
    let d = p.last_decree().saturating_add(1);
    let req = m.req;
    let entry = Entry {
        ballot: p.config.ballot,
        mutation: m,
    };
    p.log.insert(d, entry.clone());
    p.waiting.insert(d, (reply_to, req, dup));
    p.acks.insert(d, BTreeSet::new());
    let (config, committed, base, retain, targets) =
        (p.config.clone(), p.committed, p.base, p.retain, p.targets());
    persist(cfg, s, o);
    for t in targets {
        o.send(
            t,
            Msg::Prepare {
                config: config.clone(),
                decree: d,
                entry: entry.clone(),
                committed,
                base,
                retain,
            },
        );
    }
    try_commit(cfg, s, gpid, o);
}

/// Every uncommitted prepare that member `to` has not ACKed, again.
fn resend_prepares(p: &Part, to: Id, o: &mut Out<Node>) {
    if !p.targets().contains(&to) {
        return;
    }
    let unacked = p
        .log
        .range(p.committed.saturating_add(1)..)
        .filter(|(d, _)| p.acks.get(d).is_some_and(|a| !a.contains(&to)));
    for (decree, entry) in unacked {
        o.send(
            to,
            Msg::Prepare {
                config: p.config.clone(),
                decree: *decree,
                entry: entry.clone(),
                committed: p.committed,
                base: p.base,
                retain: p.retain,
            },
        );
    }
}

/// Commit, in decree order, every decree that is logged and ACKed by every target.
fn try_commit(cfg: &ReplicaCfg, s: &mut ReplicaState, gpid: Gpid, o: &mut Out<Node>) {
    let Some(p) = s.parts.get_mut(&gpid) else {
        return;
    };
    let targets = p.targets();
    let needed = if cfg.bugs.has(Bug::CommitWithoutAllAcks) {
        targets.len().saturating_sub(1)
    } else {
        targets.len()
    };
    let before = p.committed;
    while p.log.contains_key(&(p.committed.saturating_add(1))) {
        let d = p.committed.saturating_add(1);
        let acked = p
            .acks
            .get(&d)
            .map_or(0, |a| targets.iter().filter(|t| a.contains(t)).count());
        if acked < needed {
            break;
        }
        p.committed = d;
        p.acks.remove(&d);
        if let Some((to, req, dup)) = p.waiting.remove(&d) {
            reply_write(o, to, gpid, req, dup, Ok(()));
        }
    }
    if p.committed >= p.read_barrier {
        for (client, req, key) in std::mem::take(&mut p.pending_reads) {
            let value = p.read(&key, p.committed);
            o.send(
                client,
                Msg::ReadReply {
                    gpid,
                    req,
                    result: Ok(value),
                },
            );
        }
    }
    if p.committed != before {
        p.collect(cfg);
        persist(cfg, s, o);
        ship(cfg, s, gpid, o);
    }
}

#[allow(clippy::too_many_arguments)]
fn on_prepare(
    cfg: &ReplicaCfg,
    id: Id,
    s: &mut ReplicaState,
    src: Id,
    config: PartitionConfig,
    decree: Decree,
    entry: Entry,
    committed: Decree,
    base: Decree,
    retain: Decree,
    o: &mut Out<Node>,
) {
    let gpid = config.gpid;
    if decree == 0 {
        return; // decrees start at 1: malformed
    }
    let nack = |p: Option<&Part>, o: &mut Out<Node>| {
        let ballot = p.map_or(0, |p| p.config.ballot);
        o.send(
            src,
            Msg::PrepareAck {
                gpid,
                ballot,
                decree,
                ok: false,
            },
        );
    };
    if config.primary != Some(src) {
        return;
    }
    let Some(ballot) = s.parts.get(&gpid).map(|p| p.config.ballot) else {
        nack(None, o);
        return;
    };
    if config.ballot < ballot && !cfg.bugs.has(Bug::AcceptStalePrepare) {
        nack(s.parts.get(&gpid), o);
        return;
    }
    if config.ballot > ballot {
        adopt_with_base(cfg, id, s, config.clone(), Some(base), o);
    }
    let Some(p) = s.parts.get_mut(&gpid) else {
        return;
    };
    let accepts = match p.status {
        Status::Secondary => true,
        // A caught-up learner of this primary at this ballot.
        Status::PotentialSecondary => p.config.primary == Some(src),
        _ => false,
    };
    if !accepts {
        nack(Some(p), o);
        return;
    }
    p.retain = retain;
    if decree <= p.snapshot.decree {
        // Committed and collected here.
        o.send(
            src,
            Msg::PrepareAck {
                gpid,
                ballot: config.ballot,
                decree,
                ok: true,
            },
        );
        return;
    }
    if decree <= p.committed {
        if p.log.get(&decree).map(|e| &e.mutation) != Some(&entry.mutation) {
            s.broken = Some(format!(
                "prepare for committed decree {decree} carries a different mutation"
            ));
            return;
        }
        // Already committed here; ACK so a re-preparing primary can proceed.
        o.send(
            src,
            Msg::PrepareAck {
                gpid,
                ballot: config.ballot,
                decree,
                ok: true,
            },
        );
        return;
    }
    if decree > p.last_decree().saturating_add(1) {
        p.early.insert(decree, entry);
        return;
    }
    let ballot = p.config.ballot;
    p.log.insert(decree, entry);
    let mut acked = vec![decree];
    while let Some(e) = p.early.remove(&(p.last_decree().saturating_add(1))) {
        acked.push(p.last_decree().saturating_add(1));
        p.log.insert(p.last_decree().saturating_add(1), e);
    }
    p.committed = p.committed.max(committed.min(p.contiguous()));
    p.collect(cfg);
    persist(cfg, s, o);
    for decree in acked {
        o.send(
            src,
            Msg::PrepareAck {
                gpid,
                ballot,
                decree,
                ok: true,
            },
        );
    }
}

/// Change role; rebuilds every role-dependent field (seed S4).
fn set_status(cfg: &ReplicaCfg, p: &mut Part, status: Status, o: &mut Out<Node>) {
    if p.status == Status::Primary && status != Status::Primary {
        // Fail fast: clients waiting on this primary retry elsewhere.
        for (_, (to, req, dup)) in std::mem::take(&mut p.waiting) {
            reply_write(o, to, p.config.gpid, req, dup, Err(ErrorCode::NotPrimary));
        }
        for (client, req, _) in std::mem::take(&mut p.pending_reads) {
            o.send(
                client,
                Msg::ReadReply {
                    gpid: p.config.gpid,
                    req,
                    result: Err(ErrorCode::NotPrimary),
                },
            );
        }
    }
    if status == Status::Primary && p.status != Status::Primary {
        p.read_barrier = p.last_decree();
    }
    let keep_flag = cfg.bugs.has(Bug::RecoveringNotCleared) && status == Status::Primary;
    if !keep_flag {
        p.recovering = false;
    }
    if status != Status::Primary {
        p.waiting.clear();
        p.pending_reads.clear();
    }
    // ACKs and learners belong to a ballot; a primary staying primary under a new ballot
    // keeps its waiting clients (their mutations are re-prepared) but nothing else.
    p.status = status;
    p.acks.clear();
    p.learners.clear();
    p.early.clear();
    // Duplicators run on primaries only; a new one is started (and re-derives
    // everything) whenever this replica becomes primary.
    p.dups.clear();
}

/// Start, update or drop the primary's duplicators to match `dup_entries`, then drive
/// each. `restored`: started from the durable record (restart or primary switch) rather
/// than from the meta server's announcement.
fn sync_duplicators(
    cfg: &ReplicaCfg,
    s: &mut ReplicaState,
    gpid: Gpid,
    restored: bool,
    o: &mut Out<Node>,
) {
    let Some(p) = s.parts.get_mut(&gpid) else {
        return;
    };
    if p.status != Status::Primary {
        return;
    }
    let entries = p.dup_entries.clone();
    p.dups
        .retain(|id, _| entries.get(id).is_some_and(|e| e.status.is_valid()));
    let mut broken = None;
    for (dupid, entry) in entries.into_iter().filter(|(_, e)| e.status.is_valid()) {
        let committed = p.committed;
        // What the follower confirmed counts here only up to our own commit point: a
        // promoted primary may not yet have re-committed what its predecessor committed
        // and shipped, and it must never count as shipped what it has not committed
        // (SAFE-13). Shipping that prefix again is harmless: the follower answers a
        // repeat as done without applying it twice.
        let heard = if cfg.bugs.has(Bug::DupConfirmedUnclamped) {
            entry.confirmed
        } else {
            entry.confirmed.min(committed)
        };
        // What this replica collected was confirmed (it collects nothing else), even if
        // the meta server's announcement of that has not reached it yet.
        let confirmed = heard.max(p.snapshot.decree);
        let d = p.dups.entry(dupid).or_insert_with(|| Duplicator {
            entry: entry.clone(),
            // Derived from the applied state on every start (seed S1).
            min_checkpoint_decree: if restored && cfg.bugs.has(Bug::MinCheckpointReset) {
                None
            } else {
                Some(committed)
            },
            checkpoint: None,
            target: None,
            asking: false,
            applied: false,
            confirmed,
            shipped: confirmed,
            rejected: false,
        });
        if d.entry.status != entry.status {
            reset_link(d);
        }
        // The meta server's persisted value only ever catches up with ours.
        d.confirmed = d.confirmed.max(heard);
        d.shipped = d.shipped.max(d.confirmed);
        d.entry = entry;
        let ask = match d.entry.status {
            DupStatus::Prepare if d.checkpoint.is_none() => {
                // The emergency checkpoint; it must cover min_checkpoint_decree.
                let Some(min) = d.min_checkpoint_decree else {
                    broken = Some(format!(
                        "dup {dupid}: checkpoint triggered with an invalid min_checkpoint_decree"
                    ));
                    break;
                };
                let ck = committed.max(min);
                d.checkpoint = Some(ck);
                o.send(
                    cfg.dir.meta,
                    Msg::DupReport {
                        gpid,
                        dupid,
                        progress: DupProgress::Checkpoint(ck),
                    },
                );
                false
            }
            DupStatus::App if !d.applied => {
                if d.checkpoint.is_none() {
                    d.checkpoint = Some(committed);
                }
                d.target.is_none()
            }
            DupStatus::Log => d.target.is_none(),
            _ => false,
        };
        let forgets = restored && cfg.bugs.has(Bug::DupSwitchForgetsFollower);
        if ask && !d.asking && !forgets {
            d.asking = true;
            o.send(
                d.entry.remote_meta,
                Msg::QueryConfig {
                    gpid: follower_gpid(d, gpid),
                },
            );
        }
    }
    if broken.is_some() {
        s.broken = broken;
        return;
    }
    // A restored primary may not yet know every duplication its predecessor served: it
    // keeps the bound it inherited until the meta server's announcement.
    let bound = p.dup_retain();
    p.retain = if restored { p.retain.min(bound) } else { bound };
    p.collect(cfg);
    ship(cfg, s, gpid, o);
}

/// The follower partition a duplicator feeds.
fn follower_gpid(d: &Duplicator, gpid: Gpid) -> Gpid {
    Gpid {
        table: d.entry.remote_table,
        partition: gpid.partition,
    }
}

/// Forget the follower primary: the next one gets the checkpoint again, or the
/// mutations from the confirmed decree on.
fn reset_link(d: &mut Duplicator) {
    d.target = None;
    d.asking = false;
    d.shipped = d.confirmed;
}

/// The follower side's checks of a checkpoint or shipped mutations: the cluster credential,
/// then authorization — only a node of the cluster whose duplication created the follower
/// table may write into it, and only into a follower table (`auth.rs`).
#[allow(clippy::too_many_arguments)]
fn refuse_duplication(
    cfg: &ReplicaCfg,
    s: &ReplicaState,
    src: Id,
    gpid: Gpid,
    origin: Id,
    decree: Decree,
    any_source: bool,
    o: &mut Out<Node>,
) -> bool {
    let source = s.parts.get(&gpid).and_then(|p| p.config.source);
    let reason = if !cfg.accept_duplication {
        format!("replica does not accept the credentials of {origin:?}'s cluster")
    } else if any_source {
        return false;
    } else if source.is_none() && s.parts.contains_key(&gpid) {
        format!(
            "partition {}.{} is not a follower table",
            gpid.table, gpid.partition
        )
    } else if source.is_some_and(|m| m != origin) || cfg.dir.cluster_of(src) != Some(origin) {
        format!(
            "partition {}.{} does not follow the cluster of {src:?}",
            gpid.table, gpid.partition
        )
    } else {
        return false;
    };
    o.send(
        src,
        Msg::ApplyReply {
            gpid,
            decree,
            result: Err(Some(reason)),
        },
    );
    true
}

/// LOG: send the next batch of committed mutations to each follower primary that has
/// confirmed everything shipped so far.
fn ship(cfg: &ReplicaCfg, s: &mut ReplicaState, gpid: Gpid, o: &mut Out<Node>) {
    let Some(p) = s.parts.get_mut(&gpid) else {
        return;
    };
    if p.status != Status::Primary {
        return;
    }
    let upto = if cfg.bugs.has(Bug::DupShipUncommitted) {
        p.last_decree()
    } else {
        p.committed
    };
    let mut broken = None;
    for (dupid, d) in p.dups.iter_mut() {
        // What the meta server recorded as confirmed counts once we committed it too (a
        // promoted primary re-commits what it inherited; see `sync_duplicators`).
        if !cfg.bugs.has(Bug::DupConfirmedUnclamped) {
            let heard = d.entry.confirmed.min(p.committed);
            if heard > d.confirmed {
                d.confirmed = heard;
                d.shipped = d.shipped.max(heard);
            }
        }
        let Some(target) = d.target else { continue };
        if d.entry.status != DupStatus::Log || d.shipped != d.confirmed || d.confirmed >= upto {
            continue;
        }
        let end = upto.min(d.confirmed.saturating_add(cfg.ship_batch.max(1)));
        let entries: Vec<(Decree, Op)> = p
            .log
            .range(d.confirmed.saturating_add(1)..=end)
            .map(|(k, e)| (*k, e.mutation.op.clone()))
            .collect();
        if entries.len() as u64 != u64::from(end - d.confirmed) {
            broken = Some(format!(
                "dup {dupid}: log above the confirmed decree {} was collected",
                d.confirmed
            ));
            break;
        }
        d.shipped = end;
        o.send(
            target,
            Msg::Ship {
                gpid: follower_gpid(d, gpid),
                origin: cfg.dir.meta,
                entries,
            },
        );
    }
    if broken.is_some() {
        s.broken = broken;
    }
}

/// The follower primary committed (or refused) a checkpoint or shipped mutation.
fn on_apply_reply(
    cfg: &ReplicaCfg,
    s: &mut ReplicaState,
    src: Id,
    fgpid: Gpid,
    decree: Decree,
    result: Result<(), Option<String>>,
    o: &mut Out<Node>,
) {
    let gpids: Vec<Gpid> = s.parts.keys().copied().collect();
    for g in gpids {
        let Some(p) = s.parts.get_mut(&g) else {
            continue;
        };
        let mut reports = Vec::new();
        let mut ask = Vec::new();
        let mut retry = false;
        for (dupid, d) in p.dups.iter_mut() {
            if follower_gpid(d, g) != fgpid || d.target != Some(src) {
                continue;
            }
            let progress = match (&result, d.entry.status) {
                // A refused batch (the one in flight: it starts after `confirmed`).
                (Err(Some(_)), DupStatus::Log)
                    if decree != d.confirmed.saturating_add(1) || d.shipped <= d.confirmed =>
                {
                    None
                }
                (Err(Some(_)), DupStatus::Log) if d.entry.fail_mode == FailMode::Skip => {
                    let (upto, count) = (d.shipped, d.shipped - d.confirmed);
                    d.confirmed = upto;
                    if cfg.bugs.has(Bug::DupSkipUncounted) {
                        Some(DupProgress::Confirmed(upto))
                    } else {
                        Some(DupProgress::Skipped { upto, count })
                    }
                }
                (Err(Some(reason)), DupStatus::Log) => {
                    // Slow: send it again after a pause (the follower may be fixed).
                    reset_link(d);
                    d.asking = true;
                    retry = true;
                    let first = !std::mem::replace(&mut d.rejected, true);
                    first.then(|| DupProgress::Rejected {
                        from: decree,
                        reason: reason.clone(),
                    })
                }
                (Err(Some(reason)), DupStatus::App) => Some(DupProgress::Refused(reason.clone())),
                (Err(None), DupStatus::App | DupStatus::Log) => {
                    reset_link(d);
                    d.asking = true;
                    ask.push(d.entry.remote_meta);
                    None
                }
                // The follower may hold a newer checkpoint of ours (a previous primary's).
                (Ok(()), DupStatus::App)
                    if !d.applied && d.checkpoint.is_some_and(|c| decree >= c) =>
                {
                    d.applied = true;
                    d.checkpoint = Some(decree);
                    Some(DupProgress::Applied(decree))
                }
                // A decree beyond what we shipped: the follower holds more (from an
                // earlier primary of ours), so everything we shipped is there.
                (Ok(()), DupStatus::Log) if decree.min(d.shipped) > d.confirmed => {
                    d.confirmed = decree.min(d.shipped);
                    d.rejected = false;
                    // One report per batch: the meta server persists it, and its
                    // announcement raises the retain bound.
                    (d.confirmed == d.shipped).then_some(DupProgress::Confirmed(decree))
                }
                _ => None,
            };
            if let Some(progress) = progress {
                reports.push(Msg::DupReport {
                    gpid: g,
                    dupid: *dupid,
                    progress,
                });
            }
        }
        for m in reports {
            o.send(cfg.dir.meta, m);
        }
        for meta in ask {
            o.send(meta, Msg::QueryConfig { gpid: fgpid });
        }
        if retry {
            o.set_timer(Timer::DupQuery, DUP_QUERY..DUP_QUERY);
        }
        ship(cfg, s, g, o);
    }
}

/// Adopt a configuration that the meta server committed, if it is newer.
fn adopt(
    cfg: &ReplicaCfg,
    id: Id,
    s: &mut ReplicaState,
    config: PartitionConfig,
    o: &mut Out<Node>,
) {
    adopt_with_base(cfg, id, s, config, None, o)
}

/// `base`: the new primary's last decree at the ballot's start, when the message says.
fn adopt_with_base(
    cfg: &ReplicaCfg,
    id: Id,
    s: &mut ReplicaState,
    config: PartitionConfig,
    base: Option<Decree>,
    o: &mut Out<Node>,
) {
    let gpid = config.gpid;
    let blank = PartitionConfig {
        gpid,
        max_replica_count: config.max_replica_count,
        ..Default::default()
    };
    let p = s
        .parts
        .entry(gpid)
        .or_insert_with(|| Part::new(blank, Status::Inactive));
    if config.ballot <= p.config.ballot {
        return;
    }
    let status = if config.primary == Some(id) {
        Status::Primary
    } else if config.secondaries.contains(&id) {
        Status::Secondary
    } else {
        Status::Inactive
    };
    set_status(cfg, p, status, o);
    if let (Some(base), Status::Secondary) = (base, status) {
        // Cut the log at the first stale entry beyond `keep`, so it stays a prefix.
        let (keep, ballot) = (p.committed.max(base), config.ballot);
        let cut = p
            .log
            .range(keep.saturating_add(1)..)
            .find(|(_, e)| e.ballot < ballot)
            .map(|(d, _)| *d);
        if let Some(cut) = cut {
            p.log.retain(|d, _| *d < cut);
        }
    }
    p.config = config;
    if status == Status::Primary {
        p.base = p.last_decree();
    }
    persist(cfg, s, o);
    let Some(p) = s.parts.get_mut(&gpid) else {
        return;
    };
    if p.status == Status::Primary {
        // PacificA reconfiguration: re-prepare every uncommitted mutation at the new ballot
        // and tell the members about the configuration.
        let ballot = p.config.ballot;
        let (config, committed) = (p.config.clone(), p.committed);
        let uncommitted: Vec<Decree> = p
            .log
            .range(committed.saturating_add(1)..)
            .map(|(d, _)| *d)
            .collect();
        for d in &uncommitted {
            if let Some(e) = p.log.get_mut(d) {
                e.ballot = ballot;
            }
            p.acks.insert(*d, BTreeSet::new());
        }
        let (base, retain) = (p.base, p.retain);
        for t in config.secondaries.clone() {
            o.send(
                t,
                Msg::GroupCheck {
                    config: config.clone(),
                    committed,
                    base,
                    retain,
                },
            );
            // Every uncommitted decree: their ACKs were just reset.
            resend_prepares(p, t, o);
        }
        if !uncommitted.is_empty() {
            persist(cfg, s, o);
        }
        try_commit(cfg, s, gpid, o);
        sync_duplicators(cfg, s, gpid, true, o);
    }
}
