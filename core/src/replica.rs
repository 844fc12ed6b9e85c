//! The replica server: PacificA-style primary/secondary replication of each partition it
//! hosts, learning (potential secondaries), and the commit rule "logged locally and ACKed
//! by every secondary".
use crate::bug::{Bug, Bugs};
use crate::dup::*;
use crate::msg::{DupProgress, Msg};
use crate::node::{Node, NodeStorage};
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// Static configuration of a replica server (not state: it never changes at run time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaCfg {
    pub meta: Id,
    /// Partitions this node serves at its very first boot (a bootstrapped deployment).
    pub bootstrap: Vec<PartitionConfig>,
    /// Accept checkpoints and shipped mutations from other clusters (the cluster
    /// credential check of a follower).
    pub accept_duplication: bool,
    pub bugs: Bugs,
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
    /// Prepared mutations, committed ones included.
    pub log: BTreeMap<Decree, Entry>,
    pub committed: Decree,
    /// Set while learning; a replica that is recovering must not serve reads. Every role
    /// change recomputes it (seed S4: a stale flag makes a promoted primary refuse reads).
    pub recovering: bool,
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
    pub pending_reads: BTreeSet<(Id, ReqId)>,
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
    pub log: BTreeMap<Decree, Entry>,
    pub committed: Decree,
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
}

impl Part {
    fn new(config: PartitionConfig, status: Status) -> Part {
        Part {
            status,
            config,
            log: BTreeMap::new(),
            committed: 0,
            recovering: false,
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
        self.log.keys().next_back().copied().unwrap_or(0)
    }
    /// The largest decree d such that every decree in committed+1..=d is logged.
    fn contiguous(&self) -> Decree {
        let mut d = self.committed;
        while d < Decree::MAX && self.log.contains_key(&(d + 1)) {
            d += 1;
        }
        d
    }
    /// The register's value as of decree `d`.
    pub fn value_at(&self, d: Decree) -> Value {
        self.log.range(..=d).next_back().map(|(_, e)| e.mutation.value).unwrap_or(0)
    }
    /// Replicas whose ACK a commit needs: secondaries and caught-up learners.
    fn targets(&self) -> Vec<Id> {
        let mut t = self.config.secondaries.clone();
        t.extend(self.learners.iter().filter(|(_, caught)| **caught).map(|(id, _)| *id));
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
                    (*g, PartDurable { config, log: p.log.clone(), committed: p.committed, dups: p.dup_entries.clone() })
                })
                .collect(),
        }
    }
}

fn persist(cfg: &ReplicaCfg, s: &ReplicaState, o: &mut Out<Node>) {
    o.save(NodeStorage::Replica(s.storage(cfg.bugs)));
}

pub fn on_start(cfg: &ReplicaCfg, id: Id, storage: Option<&ReplicaStorage>, o: &mut Out<Node>) -> ReplicaState {
    match storage {
        None => {
            let parts: BTreeMap<Gpid, Part> = cfg
                .bootstrap
                .iter()
                .filter(|c| c.is_member(id))
                .map(|c| {
                    let status = if c.primary == Some(id) { Status::Primary } else { Status::Secondary };
                    (c.gpid, Part::new(c.clone(), status))
                })
                .collect();
            let s = ReplicaState { incarnation: 1, parts, broken: None };
            persist(cfg, &s, o);
            if cfg.bootstrap.is_empty() {
                o.send(cfg.meta, Msg::Register { incarnation: 1 });
            }
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
                    p.log = d.log.clone();
                    p.committed = d.committed;
                    p.dup_entries = d.dups.clone();
                    (*g, p)
                })
                .collect();
            let s = ReplicaState { incarnation: st.incarnation.saturating_add(1), parts, broken: None };
            persist(cfg, &s, o);
            o.send(cfg.meta, Msg::Register { incarnation: s.incarnation });
            s
        }
    }
}

pub fn on_msg(cfg: &ReplicaCfg, id: Id, s: &mut ReplicaState, src: Id, msg: Msg, o: &mut Out<Node>) {
    if s.broken.is_some() {
        return;
    }
    match msg {
        Msg::Write { gpid, req, value } => on_write(cfg, s, src, gpid, Mutation { client: src, req, value }, false, o),
        Msg::Checkpoint { gpid, origin, decree, value } => {
            if !cfg.accept_duplication {
                let reason = format!("replica does not accept the credentials of {origin:?}'s cluster");
                o.send(src, Msg::CheckpointReply { gpid, decree, result: Err(Some(reason)) });
                return;
            }
            on_write(cfg, s, src, gpid, Mutation { client: origin, req: decree as ReqId, value }, true, o)
        }
        Msg::DupUpdate { gpid, dups, .. } => {
            let Some(p) = s.parts.get_mut(&gpid) else { return };
            if p.dup_entries != dups {
                p.dup_entries = dups;
                persist(cfg, s, o);
            }
            sync_duplicators(cfg, s, gpid, false, o);
        }
        Msg::QueryConfigReply { gpid: fgpid, config: Some(fc), .. } => {
            // The follower cluster's answer: where to push a checkpoint.
            let Some(b) = fc.primary else {
                // Not assigned yet: ask again.
                o.send(src, Msg::QueryConfig { gpid: fgpid });
                return;
            };
            for (g, p) in s.parts.iter_mut() {
                let log = &p.log;
                for d in p.dups.values_mut() {
                    let mine = d.entry.remote_meta == src && Gpid { table: d.entry.remote_table, partition: g.partition } == fgpid;
                    if mine && d.entry.status == DupStatus::App && !d.applied {
                        if let Some(decree) = d.checkpoint {
                            let value = log.range(..=decree).next_back().map_or(0, |(_, e)| e.mutation.value);
                            d.pushed_to = Some(b);
                            o.send(b, Msg::Checkpoint { gpid: fgpid, origin: cfg.meta, decree, value });
                        }
                    }
                }
            }
        }
        Msg::CheckpointReply { gpid: fgpid, decree, result } => {
            let meta = cfg.meta;
            for (g, p) in s.parts.iter_mut() {
                for (dupid, d) in p.dups.iter_mut() {
                    let mine = Gpid { table: d.entry.remote_table, partition: g.partition } == fgpid
                        && d.pushed_to == Some(src)
                        && d.checkpoint == Some(decree);
                    if !mine || d.applied || d.entry.status != DupStatus::App {
                        continue;
                    }
                    match &result {
                        Ok(()) => {
                            d.applied = true;
                            o.send(meta, Msg::DupReport { gpid: *g, dupid: *dupid, progress: DupProgress::Applied });
                        }
                        Err(Some(reason)) => {
                            o.send(meta, Msg::DupReport { gpid: *g, dupid: *dupid, progress: DupProgress::Refused(reason.clone()) });
                        }
                        Err(None) => {
                            d.pushed_to = None;
                            o.send(d.entry.remote_meta, Msg::QueryConfig { gpid: fgpid });
                        }
                    }
                }
            }
        }
        Msg::Read { gpid, req } => {
            let result = match s.parts.get_mut(&gpid) {
                None => Err(ErrorCode::UnknownPartition),
                Some(p) if p.status != Status::Primary => Err(ErrorCode::NotPrimary),
                Some(p) if p.recovering => Err(ErrorCode::Recovering),
                Some(p) if cfg.bugs.has(Bug::ReadUncommitted) => Ok(p.value_at(p.last_decree())),
                Some(p) if p.committed < p.read_barrier => {
                    p.pending_reads.insert((src, req));
                    return;
                }
                Some(p) => Ok(p.value_at(p.committed)),
            };
            o.send(src, Msg::ReadReply { gpid, req, result });
        }
        Msg::Prepare { config, decree, entry, committed, base } => {
            on_prepare(cfg, id, s, src, config, decree, entry, committed, base, o)
        }
        Msg::PrepareAck { gpid, ballot, decree, ok } => {
            if let Some(p) = s.parts.get_mut(&gpid) {
                if ok && p.status == Status::Primary && ballot == p.config.ballot && decree > p.committed {
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
        Msg::GroupCheck { config, committed, base } => {
            if config.primary != Some(src) {
                return;
            }
            let (gpid, ballot) = (config.gpid, config.ballot);
            adopt_with_base(cfg, id, s, config, Some(base), o);
            if let Some(p) = s.parts.get_mut(&gpid) {
                if p.status == Status::Secondary && p.config.ballot == ballot {
                    let c = p.committed.max(committed.min(p.contiguous()));
                    if c != p.committed {
                        p.committed = c;
                        persist(cfg, s, o);
                    }
                }
            }
        }
        Msg::AddSecondary { config, node, .. } => {
            if let Some(p) = s.parts.get_mut(&config.gpid) {
                if p.status == Status::Primary
                    && config.ballot == p.config.ballot
                    && !p.config.is_member(node)
                    && !p.learners.contains_key(&node)
                {
                    p.learners.insert(node, false);
                    o.send(node, Msg::Learn { config: p.config.clone(), log: p.log.clone(), committed: p.committed });
                }
            }
        }
        Msg::Learn { config, log, committed } => {
            if config.primary != Some(src) || config.is_member(id) {
                return;
            }
            let gpid = config.gpid;
            let p = s.parts.entry(gpid).or_insert_with(|| Part::new(config.clone(), Status::Inactive));
            if config.ballot < p.config.ballot {
                return;
            }
            set_status(cfg, p, Status::PotentialSecondary, o);
            p.recovering = true;
            p.config = config;
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
                // Never beyond the gap-free prefix 1..=k of what was learned.
                let mut k: Decree = 0;
                while k < Decree::MAX && p.log.contains_key(&(k + 1)) {
                    k += 1;
                }
                committed.min(k)
            };
            let (ballot, learned) = (p.config.ballot, p.last_decree());
            persist(cfg, s, o);
            o.send(src, Msg::LearnDone { gpid, ballot, learned });
        }
        Msg::LearnDone { gpid, ballot, learned } => {
            let Some(p) = s.parts.get_mut(&gpid) else { return };
            if p.status != Status::Primary || ballot != p.config.ballot || p.learners.get(&src) != Some(&false) {
                return;
            }
            if learned == p.last_decree() {
                // Caught up: from now on it gets every prepare and its ACK is needed to
                // commit, so it cannot fall behind while the meta commits the upgrade.
                p.learners.insert(src, true);
                let next = p.config.next(|c| c.secondaries.push(src));
                o.send(cfg.meta, Msg::ProposeConfig { config: next, incarnation: s.incarnation });
            } else {
                o.send(src, Msg::Learn { config: p.config.clone(), log: p.log.clone(), committed: p.committed });
            }
        }
        Msg::PeerDown { .. } => {
            // A learner whose primary died aborts learning (seed S4: and must clear
            // `recovering`, which `set_status` does).
            let aborted: Vec<Gpid> = s
                .parts
                .iter()
                .filter(|(_, p)| p.status == Status::PotentialSecondary && p.config.primary == Some(src))
                .map(|(g, _)| *g)
                .collect();
            for g in aborted {
                if let Some(p) = s.parts.get_mut(&g) {
                    set_status(cfg, p, Status::Inactive, o);
                }
            }
        }
        Msg::QueryConfig { .. }
        | Msg::QueryConfigReply { .. }
        | Msg::DupReport { .. }
        | Msg::CreateFollower { .. }
        | Msg::CreateFollowerReply { .. }
        | Msg::QueryFollower { .. }
        | Msg::QueryFollowerReply { .. }
        | Msg::WriteReply { .. }
        | Msg::ReadReply { .. }
        | Msg::Register { .. }
        | Msg::ProposeConfig { .. } => {}
    }
}

/// Answer a write: a client's, or a source primary's checkpoint push (`dup`).
fn reply_write(o: &mut Out<Node>, to: Id, gpid: Gpid, req: ReqId, dup: bool, result: Result<(), ErrorCode>) {
    if dup {
        o.send(to, Msg::CheckpointReply { gpid, decree: req as Decree, result: result.map_err(|_| None) });
    } else {
        o.send(to, Msg::WriteReply { gpid, req, result });
    }
}

fn on_write(cfg: &ReplicaCfg, s: &mut ReplicaState, reply_to: Id, gpid: Gpid, m: Mutation, dup: bool, o: &mut Out<Node>) {
    let Some(p) = s.parts.get_mut(&gpid) else {
        reply_write(o, reply_to, gpid, m.req, dup, Err(ErrorCode::UnknownPartition));
        return;
    };
    if p.status != Status::Primary {
        reply_write(o, reply_to, gpid, m.req, dup, Err(ErrorCode::NotPrimary));
        return;
    }
    // A retry of a write that already took effect answers success once it commits.
    if let Some(d) = p.log.iter().find(|(_, e)| e.mutation.client == m.client && e.mutation.req == m.req).map(|(d, _)| *d) {
        if d <= p.committed {
            reply_write(o, reply_to, gpid, m.req, dup, Ok(()));
        } else {
            p.waiting.insert(d, (reply_to, m.req, dup));
        }
        return;
    }
    let d = p.last_decree().saturating_add(1);
    let entry = Entry { ballot: p.config.ballot, mutation: m };
    p.log.insert(d, entry);
    p.waiting.insert(d, (reply_to, m.req, dup));
    p.acks.insert(d, BTreeSet::new());
    let (config, committed, base, targets) = (p.config.clone(), p.committed, p.base, p.targets());
    persist(cfg, s, o);
    for t in targets {
        o.send(t, Msg::Prepare { config: config.clone(), decree: d, entry, committed, base });
    }
    try_commit(cfg, s, gpid, o);
}

/// Commit, in decree order, every decree that is logged and ACKed by every target.
fn try_commit(cfg: &ReplicaCfg, s: &mut ReplicaState, gpid: Gpid, o: &mut Out<Node>) {
    let Some(p) = s.parts.get_mut(&gpid) else { return };
    let targets = p.targets();
    let needed = if cfg.bugs.has(Bug::CommitWithoutAllAcks) { targets.len().saturating_sub(1) } else { targets.len() };
    let before = p.committed;
    while p.log.contains_key(&(p.committed.saturating_add(1))) {
        let d = p.committed.saturating_add(1);
        let acked = p.acks.get(&d).map_or(0, |a| targets.iter().filter(|t| a.contains(t)).count());
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
        let value = p.value_at(p.committed);
        for (client, req) in std::mem::take(&mut p.pending_reads) {
            o.send(client, Msg::ReadReply { gpid, req, result: Ok(value) });
        }
    }
    if p.committed != before {
        persist(cfg, s, o);
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
    o: &mut Out<Node>,
) {
    let gpid = config.gpid;
    if decree == 0 {
        return; // decrees start at 1: malformed
    }
    let nack = |p: Option<&Part>, o: &mut Out<Node>| {
        let ballot = p.map_or(0, |p| p.config.ballot);
        o.send(src, Msg::PrepareAck { gpid, ballot, decree, ok: false });
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
    let Some(p) = s.parts.get_mut(&gpid) else { return };
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
    if decree <= p.committed {
        if p.log.get(&decree).map(|e| e.mutation) != Some(entry.mutation) {
            s.broken = Some(format!("prepare for committed decree {decree} carries a different mutation"));
            return;
        }
        // Already committed here; ACK so a re-preparing primary can proceed.
        o.send(src, Msg::PrepareAck { gpid, ballot: config.ballot, decree, ok: true });
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
    persist(cfg, s, o);
    for decree in acked {
        o.send(src, Msg::PrepareAck { gpid, ballot, decree, ok: true });
    }
}

/// Change role; rebuilds every role-dependent field (seed S4).
fn set_status(cfg: &ReplicaCfg, p: &mut Part, status: Status, o: &mut Out<Node>) {
    if p.status == Status::Primary && status != Status::Primary {
        // Fail fast: clients waiting on this primary retry elsewhere.
        for (_, (to, req, dup)) in std::mem::take(&mut p.waiting) {
            reply_write(o, to, p.config.gpid, req, dup, Err(ErrorCode::NotPrimary));
        }
        for (client, req) in std::mem::take(&mut p.pending_reads) {
            o.send(client, Msg::ReadReply { gpid: p.config.gpid, req, result: Err(ErrorCode::NotPrimary) });
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
/// than from the meta server's first announcement.
fn sync_duplicators(cfg: &ReplicaCfg, s: &mut ReplicaState, gpid: Gpid, restored: bool, o: &mut Out<Node>) {
    let Some(p) = s.parts.get_mut(&gpid) else { return };
    if p.status != Status::Primary {
        return;
    }
    let entries = p.dup_entries.clone();
    p.dups.retain(|id, _| entries.get(id).is_some_and(|e| e.status.is_valid()));
    let mut broken = None;
    for (dupid, entry) in entries.into_iter().filter(|(_, e)| e.status.is_valid()) {
        let committed = p.committed;
        let d = p.dups.entry(dupid).or_insert_with(|| Duplicator {
            entry: entry.clone(),
            // Derived from the applied state on every start (seed S1).
            min_checkpoint_decree: if restored && cfg.bugs.has(Bug::MinCheckpointReset) { None } else { Some(committed) },
            checkpoint: None,
            pushed_to: None,
            applied: false,
        });
        if d.entry.status != entry.status {
            d.pushed_to = None;
        }
        d.entry = entry;
        match d.entry.status {
            DupStatus::Prepare if d.checkpoint.is_none() => {
                // The emergency checkpoint; it must cover min_checkpoint_decree.
                let Some(min) = d.min_checkpoint_decree else {
                    broken = Some(format!("dup {dupid}: checkpoint triggered with an invalid min_checkpoint_decree"));
                    break;
                };
                let ck = committed.max(min);
                d.checkpoint = Some(ck);
                o.send(cfg.meta, Msg::DupReport { gpid, dupid, progress: DupProgress::Checkpoint(ck) });
            }
            DupStatus::App if !d.applied && d.pushed_to.is_none() => {
                if d.checkpoint.is_none() {
                    d.checkpoint = Some(committed);
                }
                let fgpid = Gpid { table: d.entry.remote_table, partition: gpid.partition };
                o.send(d.entry.remote_meta, Msg::QueryConfig { gpid: fgpid });
            }
            _ => {}
        }
    }
    if broken.is_some() {
        s.broken = broken;
    }
}

/// Adopt a configuration that the meta server committed, if it is newer.
fn adopt(cfg: &ReplicaCfg, id: Id, s: &mut ReplicaState, config: PartitionConfig, o: &mut Out<Node>) {
    adopt_with_base(cfg, id, s, config, None, o)
}

/// `base`: the new primary's last decree at the ballot's start, when the message says.
fn adopt_with_base(cfg: &ReplicaCfg, id: Id, s: &mut ReplicaState, config: PartitionConfig, base: Option<Decree>, o: &mut Out<Node>) {
    let gpid = config.gpid;
    let blank = PartitionConfig { gpid, max_replica_count: config.max_replica_count, ..Default::default() };
    let p = s.parts.entry(gpid).or_insert_with(|| Part::new(blank, Status::Inactive));
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
        let cut = p.log.range(keep.saturating_add(1)..).find(|(_, e)| e.ballot < ballot).map(|(d, _)| *d);
        if let Some(cut) = cut {
            p.log.retain(|d, _| *d < cut);
        }
    }
    p.config = config;
    if status == Status::Primary {
        p.base = p.last_decree();
    }
    persist(cfg, s, o);
    let Some(p) = s.parts.get_mut(&gpid) else { return };
    if p.status == Status::Primary {
        // PacificA reconfiguration: re-prepare every uncommitted mutation at the new ballot
        // and tell the members about the configuration.
        let ballot = p.config.ballot;
        let (config, committed) = (p.config.clone(), p.committed);
        let uncommitted: Vec<Decree> = p.log.range(committed.saturating_add(1)..).map(|(d, _)| *d).collect();
        for d in &uncommitted {
            if let Some(e) = p.log.get_mut(d) {
                e.ballot = ballot;
            }
            p.acks.insert(*d, BTreeSet::new());
        }
        let base = p.base;
        for t in config.secondaries.clone() {
            o.send(t, Msg::GroupCheck { config: config.clone(), committed, base });
            for d in &uncommitted {
                if let Some(e) = p.log.get(d) {
                    o.send(t, Msg::Prepare { config: config.clone(), decree: *d, entry: *e, committed, base });
                }
            }
        }
        if !uncommitted.is_empty() {
            persist(cfg, s, o);
        }
        try_commit(cfg, s, gpid, o);
        sync_duplicators(cfg, s, gpid, true, o);
    }
}
