//! The meta server: the authority on partition configurations. It commits a configuration
//! only with `ballot == current + 1`, detects failed replicas (under the lease < grace
//! timing assumption, see SPEC.md) and cures partitions: assign a primary, promote a
//! secondary when the primary is gone, remove dead members, add learners when
//! under-replicated.
use crate::auth::{self, Directory};
use crate::bug::{Bug, Bugs};
use crate::dup::*;
use crate::msg::{DupProgress, Msg, Timer};
use crate::node::{Node, NodeStorage};
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// A table as the operator created it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableSpec {
    pub id: u8,
    pub partitions: u8,
    pub max_replica_count: u8,
    /// A follower table installed with the deployment (a log-only duplication's target):
    /// the source cluster's meta server. `None` for the cluster's own tables.
    pub source: Option<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaCfg {
    /// This meta server, the replica servers of its cluster, and the nodes of other
    /// clusters: who may send what (`auth.rs`).
    pub dir: Directory,
    pub tables: Vec<TableSpec>,
    /// Members per partition of a bootstrapped deployment (`bootstrap_configs`); 0 means
    /// primaries are assigned at run time.
    pub bootstrap_members: u8,
    /// Duplications of this cluster's tables at first boot (an operator's `dup add`).
    pub dups: Vec<DupRecord>,
    /// Accept create-follower requests from other clusters (the cluster credential check).
    pub accept_duplication: bool,
    /// Leases: a replica is declared dead when this long passed since its last beacon
    /// (longer than the lease plus a clock-rate margin: the node checks it). `None`: the
    /// model's abstraction, where a `PeerDown` reaches the meta server only for a replica
    /// that crashed (and so serves nothing).
    pub grace: Option<std::time::Duration>,
    pub bugs: Bugs,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaState {
    pub configs: BTreeMap<Gpid, PartitionConfig>,
    /// Replica servers believed alive, with the incarnation that registered.
    pub alive: BTreeMap<Id, u32>,
    /// The latest life each replica server registered (durable): a `Register` of that
    /// same life is the node announcing itself again (after this meta server restarted or
    /// the link came back), not a restart of the node.
    pub lives: BTreeMap<Id, u32>,
    /// Restarted, within the grace period: nobody is judged dead yet, since the replicas
    /// that are alive have not re-registered.
    pub grace: bool,
    /// Leases: the last life of each replica the failure detector declared dead (durable).
    /// That life may still believe it holds its roles: it is never alive again, also
    /// after this meta server restarts.
    pub dead: BTreeMap<Id, u32>,
    /// A learner the primary was asked to add, per partition (one at a time).
    pub adding: BTreeMap<Gpid, Id>,
    /// Source side: duplications of this cluster's tables (durable).
    pub dups: BTreeMap<DupId, DupRecord>,
    /// Follower side: follower tables and the duplication that owns each (durable).
    pub followers: BTreeMap<u8, DupIdent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaStorage {
    pub configs: BTreeMap<Gpid, PartitionConfig>,
    pub dups: BTreeMap<DupId, DupRecord>,
    pub followers: BTreeMap<u8, DupIdent>,
    pub lives: BTreeMap<Id, u32>,
    pub dead: BTreeMap<Id, u32>,
}

/// How long a restarted meta server waits for live replicas to re-register. Longer than
/// a replica's link timeout plus its re-register pause.
pub const META_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The initial assignment of a bootstrapped deployment: partition p's primary is replica
/// `p mod n`, followed by the next `members - 1` replicas as secondaries.
pub fn bootstrap_configs(
    replicas: &[Id],
    tables: &[TableSpec],
    members: u8,
) -> Vec<PartitionConfig> {
    let n = replicas.len();
    let mut out = Vec::new();
    for t in tables {
        for p in 0..t.partitions {
            let gpid = Gpid {
                table: t.id,
                partition: p,
            };
            let members: Vec<Id> = (0..(members.min(t.max_replica_count) as usize).min(n))
                .map(|k| replicas[(p as usize + k) % n])
                .collect();
            let mut secondaries = members.iter().skip(1).copied().collect::<Vec<_>>();
            secondaries.sort();
            out.push(PartitionConfig {
                gpid,
                ballot: 1,
                primary: members.first().copied(),
                secondaries,
                max_replica_count: t.max_replica_count,
                source: t.source,
            });
        }
    }
    out
}

fn persist(s: &MetaState, o: &mut Out<Node>) {
    o.save(NodeStorage::Meta(MetaStorage {
        configs: s.configs.clone(),
        dups: s.dups.clone(),
        followers: s.followers.clone(),
        lives: s.lives.clone(),
        dead: s.dead.clone(),
    }));
}

pub fn on_start(cfg: &MetaCfg, storage: Option<&MetaStorage>, o: &mut Out<Node>) -> MetaState {
    let mut s = match storage {
        Some(st) => {
            o.set_timer(Timer::MetaGrace, META_GRACE..META_GRACE);
            MetaState {
                configs: st.configs.clone(),
                alive: BTreeMap::new(),
                lives: st.lives.clone(),
                grace: true,
                dead: st.dead.clone(),
                adding: BTreeMap::new(),
                dups: st.dups.clone(),
                followers: st.followers.clone(),
            }
        }
        None if cfg.bootstrap_members > 0 => MetaState {
            configs: bootstrap_configs(&cfg.dir.replicas, &cfg.tables, cfg.bootstrap_members)
                .into_iter()
                .map(|c| (c.gpid, c))
                .collect(),
            alive: cfg.dir.replicas.iter().map(|r| (*r, 1)).collect(),
            lives: cfg.dir.replicas.iter().map(|r| (*r, 1)).collect(),
            grace: false,
            dead: BTreeMap::new(),
            adding: BTreeMap::new(),
            dups: cfg.dups.iter().map(|d| (d.dupid, d.clone())).collect(),
            followers: BTreeMap::new(),
        },
        None => MetaState {
            configs: cfg
                .tables
                .iter()
                .flat_map(|t| {
                    (0..t.partitions).map(move |p| {
                        let gpid = Gpid {
                            table: t.id,
                            partition: p,
                        };
                        (
                            gpid,
                            PartitionConfig {
                                gpid,
                                max_replica_count: t.max_replica_count,
                                source: t.source,
                                ..Default::default()
                            },
                        )
                    })
                })
                .collect(),
            alive: BTreeMap::new(),
            lives: BTreeMap::new(),
            grace: false,
            dead: BTreeMap::new(),
            adding: BTreeMap::new(),
            dups: cfg.dups.iter().map(|d| (d.dupid, d.clone())).collect(),
            followers: BTreeMap::new(),
        },
    };
    if storage.is_none() {
        persist(&s, o);
    }
    for r in s.alive.keys() {
        arm_grace(cfg, *r, o);
    }
    cure(cfg, &mut s, o);
    let gpids: Vec<Gpid> = s.configs.keys().copied().collect();
    for g in gpids {
        sync_dups(&s, g, o);
    }
    s
}

pub fn on_msg(cfg: &MetaCfg, id: Id, s: &mut MetaState, src: Id, msg: Msg, o: &mut Out<Node>) {
    let role = cfg.dir.role(src);
    if !auth::may_send(role, &msg) {
        return;
    }
    match msg {
        Msg::QueryConfig { gpid } => {
            let config = s.configs.get(&gpid).cloned();
            let incarnation = config
                .as_ref()
                .and_then(|c| c.primary)
                .and_then(|p| s.alive.get(&p).copied());
            o.send(
                src,
                Msg::QueryConfigReply {
                    gpid,
                    config,
                    incarnation,
                },
            );
        }
        Msg::Register { incarnation: 0 } => {
            // A node without storage (a wiped or replaced disk, or a new machine): a new
            // life that holds nothing. It leaves every configuration, even as the last
            // holder of the data (it no longer holds it), and re-registers as that life.
            let life = s.lives.get(&src).map_or(1, |l| l.saturating_add(1));
            s.lives.insert(src, life);
            s.alive.remove(&src);
            s.adding.retain(|_, n| *n != src);
            persist(s, o);
            let gpids: Vec<Gpid> = s
                .configs
                .values()
                .filter(|c| c.is_member(src))
                .map(|c| c.gpid)
                .collect();
            for gpid in gpids {
                let Some(c) = s.configs.get(&gpid) else {
                    continue;
                };
                let next = c.next(|c| {
                    if c.primary == Some(src) {
                        c.primary = None;
                    }
                    c.secondaries.retain(|m| *m != src);
                });
                commit(s, next, o);
            }
            o.send(src, Msg::Registered { incarnation: life });
            cure(cfg, s, o);
        }
        Msg::Register { incarnation } => {
            if !cfg.dir.replicas.contains(&src) {
                return;
            }
            match s.lives.get(&src) {
                // A delayed Register of an older life is stale.
                Some(known) if *known > incarnation => return,
                Some(known) if *known == incarnation => {
                    // The same life again: it kept its role state; it is simply alive —
                    // unless this meta server already declared that life dead (a life
                    // is never alive twice: it could still think it holds its roles).
                    if s.dead.get(&src) != Some(&incarnation) {
                        if s.alive.insert(src, incarnation).is_none() {
                            arm_grace(cfg, src, o);
                            cure(cfg, s, o);
                        }
                    } else {
                        o.send(
                            src,
                            Msg::BeaconAck {
                                incarnation,
                                seq: 0,
                                alive: false,
                            },
                        );
                    }
                    return;
                }
                _ => {}
            }
            s.alive.insert(src, incarnation);
            s.lives.insert(src, incarnation);
            // A learner that restarted forgot its lesson: ask again (for a new life, the
            // old life's PeerDown is ignored, and with leases its grace timer never fires).
            if !cfg.bugs.has(Bug::AddingKeptOnRestart) {
                s.adding.retain(|_, n| *n != src);
            }
            arm_grace(cfg, src, o);
            persist(s, o);
            // The node restarted: it lost its volatile role state. Take it out of every
            // configuration, except where it is the only one left holding the data: then it
            // is re-assigned primary at a new ballot.
            let gpids: Vec<Gpid> = s
                .configs
                .values()
                .filter(|c| c.is_member(src))
                .map(|c| c.gpid)
                .collect();
            for gpid in gpids {
                let Some(c) = s.configs.get(&gpid) else {
                    continue;
                };
                let others_alive = c.members().any(|m| m != src && s.alive.contains_key(&m));
                let next = if c.primary == Some(src) && !others_alive {
                    let alive = s.alive.clone();
                    c.next(|c| c.secondaries.retain(|m| alive.contains_key(m)))
                } else {
                    c.next(|c| {
                        if c.primary == Some(src) {
                            c.primary = None;
                        }
                        c.secondaries.retain(|m| *m != src);
                    })
                };
                commit(s, next, o);
            }
            cure(cfg, s, o);
        }
        Msg::Beacon { incarnation, seq } => {
            let mut newly_alive = false;
            let alive = match s.alive.get(&src) {
                Some(life) => *life == incarnation,
                // The life it recorded, not declared dead (a restarted meta server hearing
                // from a live node, or a fresh node's first life): alive.
                None if s.lives.get(&src) == Some(&incarnation)
                    && s.dead.get(&src) != Some(&incarnation) =>
                {
                    s.alive.insert(src, incarnation);
                    newly_alive = true;
                    true
                }
                None => false,
            };
            if alive {
                arm_grace(cfg, src, o);
            }
            o.send(
                src,
                Msg::BeaconAck {
                    incarnation,
                    seq,
                    alive,
                },
            );
            // A beacon may be the first word of a new life (its Register lost with the
            // connection its new life replaced): like a Register, it may fill a partition
            // short of replicas — or the new life would stay without a role for good.
            if newly_alive {
                cure(cfg, s, o);
            }
        }
        // With leases, a broken connection proves nothing: the replica may still hold its
        // lease and serve. Only the grace timer declares it dead.
        Msg::PeerDown { .. } if cfg.grace.is_some() => {}
        Msg::PeerDown { incarnation } if s.alive.get(&src) == Some(&incarnation) => {
            s.alive.remove(&src);
            s.adding.retain(|_, n| *n != src);
            cure(cfg, s, o);
        }
        Msg::ProposeConfig {
            config,
            incarnation,
        } => {
            let Some(current) = s.configs.get(&config.gpid).cloned() else {
                return;
            };
            let version_ok = if cfg.bugs.has(Bug::MetaAcceptsStaleBallot) {
                config.ballot >= current.ballot
            } else {
                config.ballot == current.ballot + 1
            };
            let from_primary = current.primary == Some(src) && config.primary == Some(src);
            if s.alive.get(&src) != Some(&incarnation) {
                // From a previous life of the node: nobody is waiting for the answer.
            } else if version_ok && from_primary {
                s.adding.remove(&config.gpid);
                commit(s, config.clone(), o);
                o.send(
                    src,
                    Msg::ProposeConfigReply {
                        result: Ok(config),
                        incarnation,
                    },
                );
                cure(cfg, s, o);
            } else {
                o.send(
                    src,
                    Msg::ProposeConfigReply {
                        result: Err(current),
                        incarnation,
                    },
                );
            }
        }
        Msg::DupReport {
            gpid,
            dupid,
            progress,
        } => on_dup_report(cfg, id, s, gpid, dupid, progress, o),
        Msg::CreateFollower {
            source,
            table,
            partitions,
            replica_count,
        } => {
            if source.source_meta != src {
                // A node may only ask for its own cluster's meta server (`auth.rs`).
                return;
            }
            let result = if !cfg.accept_duplication {
                Err(CreateError::Refused(format!(
                    "cluster of {:?} is not authorised to duplicate into this cluster (credential mismatch)",
                    source.source_meta
                )))
            } else if cfg.bugs.has(Bug::AppExistIsFailure) && s.followers.contains_key(&table) {
                Err(CreateError::Exists)
            } else if !s.followers.contains_key(&table)
                && s.configs.keys().any(|g| g.table == table)
            {
                // A table of this cluster's own, not a follower: never taken over.
                Err(CreateError::Exists)
            } else {
                follower_answer(s.followers.get(&table), &source)
            };
            if result.is_ok() && !s.followers.contains_key(&table) {
                s.followers.insert(table, source);
                for p in 0..partitions {
                    let gpid = Gpid {
                        table,
                        partition: p,
                    };
                    let config = PartitionConfig {
                        gpid,
                        max_replica_count: replica_count,
                        source: Some(source.source_meta),
                        ..Default::default()
                    };
                    s.configs.insert(gpid, config);
                }
                persist(s, o);
                cure(cfg, s, o);
            }
            o.send(src, Msg::CreateFollowerReply { source, result });
        }
        Msg::CreateFollowerReply { source, result } => {
            let Some(rec) = s.dups.get_mut(&source.dupid) else {
                return;
            };
            if rec.status != DupStatus::Prepare
                || source.source_meta != id
                || rec.remote_meta != src
            {
                return;
            }
            match result {
                Ok(()) => {
                    rec.set_status(if cfg.bugs.has(Bug::DupPrepareToLog) {
                        DupStatus::Log
                    } else {
                        DupStatus::App
                    });
                    rec.create_attempts = 0;
                    rec.stall = None;
                    let table = rec.table;
                    o.cancel_timer(Timer::DupRetry);
                    persist(s, o);
                    sync_table(s, table, o);
                }
                Err(CreateError::Exists) if cfg.bugs.has(Bug::AppExistIsFailure) => {
                    // The bug: treat "exists" as a transient failure and ask again at once
                    // (an answer came, so the remote counts as reachable: no timer).
                    o.cancel_timer(Timer::DupRetry);
                    let (remote, msg) = create_request(s, id, source.dupid);
                    if let Some(msg) = msg {
                        o.send(remote, msg);
                    }
                }
                Err(e) => {
                    if !cfg.bugs.has(Bug::DupAuthSilent) {
                        rec.stall = Some(match e {
                            CreateError::Exists => format!(
                                "follower table {} belongs to another duplication",
                                rec.remote_table
                            ),
                            CreateError::Refused(r) => format!("follower cluster refused: {r}"),
                        });
                    }
                    rec.create_attempts = 0;
                    o.cancel_timer(Timer::DupRetry);
                    persist(s, o);
                }
            }
        }
        Msg::CreateTable {
            table,
            partitions,
            replica_count,
        } => {
            let result =
                if s.configs.keys().any(|g| g.table == table) || s.followers.contains_key(&table) {
                    Err(format!("table {table} exists"))
                } else if partitions == 0 || replica_count == 0 {
                    Err("a table needs at least one partition and one replica".to_string())
                } else {
                    for p in 0..partitions {
                        let gpid = Gpid {
                            table,
                            partition: p,
                        };
                        s.configs.insert(
                            gpid,
                            PartitionConfig {
                                gpid,
                                max_replica_count: replica_count,
                                ..Default::default()
                            },
                        );
                    }
                    persist(s, o);
                    cure(cfg, s, o);
                    Ok(())
                };
            o.send(src, Msg::CreateTableReply { table, result });
        }
        Msg::AddDup {
            table,
            remote_meta,
            remote_table,
            remote_replica_count,
            full,
        } => {
            let next = s
                .dups
                .keys()
                .next_back()
                .map_or(Some(1), |d| d.checked_add(1));
            let live = |d: &&DupRecord| d.status != DupStatus::Removed;
            // A retried request (its reply was lost) names the duplication it created.
            let same = s.dups.values().filter(live).find(|d| {
                d.table == table && d.remote_meta == remote_meta && d.remote_table == remote_table
            });
            // One source per follower table: two would ship under one origin with their
            // own decrees, and the follower would take one's decree for a repeat of the
            // other's (answered as applied, never applied).
            let taken = s.dups.values().filter(live).find(|d| {
                d.table != table && d.remote_meta == remote_meta && d.remote_table == remote_table
            });
            let result = if let Some(d) = same {
                Ok(d.dupid)
            } else if let Some(d) = taken {
                Err(format!(
                    "remote table {remote_table} of that cluster already follows table {} (duplication {})",
                    d.table, d.dupid
                ))
            } else if !s.configs.keys().any(|g| g.table == table) {
                Err(format!("no table {table}"))
            } else if s.followers.contains_key(&table) {
                Err(format!("table {table} is itself a follower table"))
            } else if remote_meta == id {
                Err("a duplication needs another cluster".to_string())
            } else if remote_replica_count == 0 {
                Err("the follower table needs at least one replica".to_string())
            } else if let Some(dupid) = next {
                s.dups.insert(
                    dupid,
                    DupRecord {
                        dupid,
                        table,
                        status: if full {
                            DupStatus::Prepare
                        } else {
                            DupStatus::Log
                        },
                        version: 0,
                        remote_meta,
                        remote_table,
                        remote_replica_count,
                        fail_mode: FailMode::Slow,
                        skipped: 0,
                        refusing: BTreeMap::new(),
                        checkpoints: BTreeMap::new(),
                        applied: BTreeSet::new(),
                        confirmed: BTreeMap::new(),
                        create_attempts: 0,
                        stall: None,
                    },
                );
                persist(s, o);
                sync_table(s, table, o);
                Ok(dupid)
            } else {
                Err("no duplication id left".to_string())
            };
            o.send(src, Msg::AddDupReply { table, result });
        }
        Msg::QueryCluster => {
            o.send(
                src,
                Msg::ClusterStatus {
                    configs: s.configs.values().cloned().collect(),
                    alive: s.alive.iter().map(|(k, v)| (*k, *v)).collect(),
                    dups: s.dups.values().cloned().collect(),
                    followers: s.followers.iter().map(|(k, v)| (*k, *v)).collect(),
                },
            );
        }
        Msg::ModifyDup { dupid, status } => {
            let result = match s.dups.get_mut(&dupid) {
                None => Err(format!("no duplication {dupid}")),
                Some(rec) if !rec.status.can_become(status) => Err(format!(
                    "duplication {dupid} cannot change from {} to {}",
                    rec.status, status
                )),
                Some(rec) => {
                    let table = rec.table;
                    rec.set_status(status);
                    // Persistence is part of this step (the driver makes it durable before
                    // the reply leaves), so no second change can see this one half done.
                    persist(s, o);
                    sync_table(s, table, o);
                    Ok(status)
                }
            };
            o.send(src, Msg::ModifyDupReply { dupid, result });
        }
        Msg::SetFailMode { dupid, mode } => {
            let result = match s.dups.get_mut(&dupid) {
                Some(rec) if rec.status != DupStatus::Removed => {
                    let table = rec.table;
                    rec.set_fail_mode(mode);
                    persist(s, o);
                    sync_table(s, table, o);
                    Ok(mode)
                }
                _ => Err(format!("no duplication {dupid}")),
            };
            o.send(src, Msg::SetFailModeReply { dupid, result });
        }
        Msg::QueryFollower { table } => {
            let configs = s
                .configs
                .values()
                .filter(|c| c.gpid.table == table)
                .cloned()
                .collect();
            o.send(src, Msg::QueryFollowerReply { table, configs });
        }
        Msg::QueryFollowerReply { table, configs } => {
            let Some(rec) = s
                .dups
                .values_mut()
                .find(|d| d.remote_table == table && d.remote_meta == src)
            else {
                return;
            };
            if rec.status != DupStatus::App {
                return;
            }
            let demand = cfg.bugs.has(Bug::ReadyNeedsSecondary);
            if !configs.is_empty() && configs.iter().all(|c| follower_partition_ready(c, demand)) {
                rec.set_status(DupStatus::Log);
                let t = rec.table;
                persist(s, o);
                sync_table(s, t, o);
            } else {
                // Not yet: the follower cluster is still assigning; ask again after a pause.
                o.set_timer(Timer::FollowerCheck, FOLLOWER_CHECK..FOLLOWER_CHECK);
            }
        }
        _ => {}
    }
}

/// (Re)start the failure detector's clock for replica `r` (leases only).
fn arm_grace(cfg: &MetaCfg, r: Id, o: &mut Out<Node>) {
    if let Some(g) = cfg.grace {
        o.set_timer(Timer::Grace(r), g..g);
    }
}

pub fn on_timeout(cfg: &MetaCfg, id: Id, s: &mut MetaState, timer: &Timer, o: &mut Out<Node>) {
    if let Timer::Grace(r) = timer {
        // No beacon for longer than the grace: its lease has lapsed, it serves nothing,
        // and that life never will again (durable, before anything depends on it).
        if let Some(life) = s.alive.remove(r) {
            s.dead.insert(*r, life);
            s.adding.retain(|_, n| n != r);
            persist(s, o);
            cure(cfg, s, o);
        }
        return;
    }
    if *timer == Timer::MetaGrace && s.grace {
        s.grace = false;
        // A life silent for the whole grace holds no lease (the grace outlasts every lease
        // the previous life of this meta server granted) and may leave its roles below:
        // it is declared dead, as `Grace(r)` would have, so a late beacon of it (a healed
        // partition) is answered "dead" and it comes back as a new life, never as the old
        // one regaining a lease while it still believes it holds a superseded role.
        let silent: Vec<(Id, u32)> = s
            .lives
            .iter()
            .filter(|(r, life)| !s.alive.contains_key(r) && s.dead.get(r) != Some(life))
            .map(|(r, life)| (*r, *life))
            .collect();
        if cfg.grace.is_some() && !silent.is_empty() {
            s.dead.extend(silent);
            persist(s, o);
        }
        cure(cfg, s, o);
        return;
    }
    if *timer == Timer::FollowerCheck {
        // Every APP duplication whose checkpoints are all applied asks again.
        let asks: Vec<(Id, u8)> = s
            .dups
            .values()
            .filter(|d| d.status == DupStatus::App)
            .filter(|d| d.applied.len() == s.configs.keys().filter(|g| g.table == d.table).count())
            .map(|d| (d.remote_meta, d.remote_table))
            .collect();
        for (remote, table) in asks {
            o.send(remote, Msg::QueryFollower { table });
        }
        return;
    }
    if *timer != Timer::DupRetry {
        return;
    }
    let waiting: Vec<DupId> = s
        .dups
        .values()
        .filter(|d| d.status == DupStatus::Prepare && d.create_attempts > 0)
        .map(|d| d.dupid)
        .collect();
    for dupid in waiting {
        let Some(rec) = s.dups.get_mut(&dupid) else {
            continue;
        };
        if rec.create_attempts >= MAX_CREATE_ATTEMPTS {
            rec.stall = Some(format!(
                "follower cluster did not answer {MAX_CREATE_ATTEMPTS} create requests"
            ));
            rec.create_attempts = 0;
            persist(s, o);
            continue;
        }
        rec.create_attempts += 1;
        let (remote, msg) = create_request(s, id, dupid);
        if let Some(msg) = msg {
            o.send(remote, msg);
            o.set_timer(Timer::DupRetry, RETRY..RETRY);
        }
    }
}

const RETRY: std::time::Duration = std::time::Duration::from_secs(3);
const FOLLOWER_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

fn create_request(s: &MetaState, id: Id, dupid: DupId) -> (Id, Option<Msg>) {
    let Some(rec) = s.dups.get(&dupid) else {
        return (id, None);
    };
    let partitions = s.configs.keys().filter(|g| g.table == rec.table).count() as u8;
    let source = DupIdent {
        source_meta: id,
        table: rec.table,
        dupid,
    };
    let msg = Msg::CreateFollower {
        source,
        table: rec.remote_table,
        partitions,
        replica_count: rec.remote_replica_count,
    };
    (rec.remote_meta, Some(msg))
}

#[allow(clippy::too_many_arguments)]
fn on_dup_report(
    cfg: &MetaCfg,
    id: Id,
    s: &mut MetaState,
    gpid: Gpid,
    dupid: DupId,
    progress: DupProgress,
    o: &mut Out<Node>,
) {
    let partitions = s.configs.keys().filter(|g| g.table == gpid.table).count();
    let Some(rec) = s.dups.get_mut(&dupid) else {
        return;
    };
    if rec.table != gpid.table {
        return;
    }
    match progress {
        DupProgress::Checkpoint(d) if rec.status == DupStatus::Prepare => {
            if rec.checkpoints.insert(gpid.partition, d) == Some(d) {
                return;
            }
            let ready = rec.checkpoints.len() == partitions
                && rec.create_attempts == 0
                && rec.stall.is_none();
            if ready {
                rec.create_attempts = 1;
            }
            persist(s, o);
            if ready {
                let (remote, msg) = create_request(s, id, dupid);
                if let Some(msg) = msg {
                    o.send(remote, msg);
                    o.set_timer(Timer::DupRetry, RETRY..RETRY);
                }
            }
        }
        DupProgress::Applied(decree) if rec.status == DupStatus::App => {
            if !rec.applied.insert(gpid.partition) {
                return;
            }
            // The follower holds the source state up to the checkpoint: LOG resumes there.
            rec.confirmed.insert(gpid.partition, decree);
            let all = rec.applied.len() == partitions;
            let (remote, table) = (rec.remote_meta, rec.remote_table);
            persist(s, o);
            if all {
                o.send(remote, Msg::QueryFollower { table });
            }
        }
        DupProgress::Confirmed(decree)
            if matches!(rec.status, DupStatus::Log | DupStatus::Pause) =>
        {
            let known = rec.confirmed.entry(gpid.partition).or_insert(0);
            if decree <= *known {
                return;
            }
            *known = decree;
            // The follower accepts this partition's mutations again.
            if rec.refusing.remove(&gpid.partition).is_some() {
                rec.stall = rec.refusal_stall();
            }
            // Persisted before the primary hears it: only then may replicas collect the log.
            persist(s, o);
            sync_dups(s, gpid, o);
        }
        DupProgress::Skipped { upto, count }
            if matches!(rec.status, DupStatus::Log | DupStatus::Pause) =>
        {
            let known = rec.confirmed.entry(gpid.partition).or_insert(0);
            if upto <= *known {
                return;
            }
            *known = upto;
            rec.skipped = rec.skipped.saturating_add(count);
            if rec.refusing.remove(&gpid.partition).is_some() {
                rec.stall = rec.refusal_stall();
            }
            persist(s, o);
            sync_dups(s, gpid, o);
        }
        DupProgress::Rejected { from, reason }
            if matches!(rec.status, DupStatus::Log | DupStatus::Pause)
                && from > rec.confirmed.get(&gpid.partition).copied().unwrap_or(0)
                && !cfg.bugs.has(Bug::DupLogRefusalSilent) =>
        {
            // Until a batch of this partition is confirmed again.
            let known =
                rec.refusing.insert(gpid.partition, reason.clone()).as_ref() == Some(&reason);
            let stall = rec.refusal_stall();
            // Which partitions refuse is durable state: a restarted meta server must not
            // clear the stall while one of them still refuses.
            if !known || rec.stall != stall {
                rec.stall = stall;
                persist(s, o);
            }
        }
        DupProgress::Refused(reason)
            if rec.status == DupStatus::App && !cfg.bugs.has(Bug::DupAuthSilent) =>
        {
            let stall = Some(format!(
                "follower refused the checkpoint of partition {}: {reason}",
                gpid.partition
            ));
            if rec.stall != stall {
                rec.stall = stall;
                persist(s, o);
            }
        }
        _ => {}
    }
}

/// A configuration's primary and the life of it the meta believes alive: every
/// meta-to-replica decision is addressed to that life.
fn primary_life(s: &MetaState, c: &PartitionConfig) -> Option<(Id, u32)> {
    c.primary.and_then(|p| s.alive.get(&p).map(|i| (p, *i)))
}

/// Tell a partition's primary the duplications of its table (after any change).
fn sync_dups(s: &MetaState, gpid: Gpid, o: &mut Out<Node>) {
    let dups: BTreeMap<DupId, DupEntry> = s
        .dups
        .values()
        .filter(|d| d.table == gpid.table)
        .map(|d| (d.dupid, d.entry(gpid.partition)))
        .collect();
    // Tables that never had a duplication need no announcement (a removed one keeps its
    // record, status REMOVED, so its primaries hear that it is gone).
    if !s.dups.values().any(|d| d.table == gpid.table) {
        return;
    }
    let Some(c) = s.configs.get(&gpid) else {
        return;
    };
    if let Some((p, incarnation)) = primary_life(s, c) {
        o.send(
            p,
            Msg::DupUpdate {
                gpid,
                dups,
                incarnation,
            },
        );
    }
}

fn sync_table(s: &MetaState, table: u8, o: &mut Out<Node>) {
    let gpids: Vec<Gpid> = s
        .configs
        .keys()
        .filter(|g| g.table == table)
        .copied()
        .collect();
    for g in gpids {
        sync_dups(s, g, o);
    }
}

/// Commit a configuration: persist first (the driver makes the save durable before any
/// send of the same step leaves), then tell its primary.
fn commit(s: &mut MetaState, config: PartitionConfig, o: &mut Out<Node>) {
    s.adding.remove(&config.gpid);
    s.configs.insert(config.gpid, config.clone());
    persist(s, o);
    let gpid = config.gpid;
    if let Some((p, incarnation)) = primary_life(s, &config) {
        o.send(
            p,
            Msg::ConfigUpdate {
                config,
                incarnation,
            },
        );
    }
    sync_dups(s, gpid, o);
}

/// Bring every partition towards a healthy configuration: every step that can be taken
/// now is taken now. The meta server acts only on events, and the event that made a step
/// possible may be the last one for a long time: a restarted node's `Register` takes its
/// old life out and the partition promotes a secondary, and nothing else arrives to ask
/// for the replica that is now missing (campaign seed 12, `restart-before-detected`).
fn cure(cfg: &MetaCfg, s: &mut MetaState, o: &mut Out<Node>) {
    if s.grace {
        return;
    }
    let gpids: Vec<Gpid> = s.configs.keys().copied().collect();
    for gpid in gpids {
        // Each step commits a change that makes the same step impossible (a primary is
        // set, the dead secondaries are gone) or asks for a learner and stops: at most
        // three rounds.
        while cure_one(cfg, s, gpid, o) {}
    }
}

/// One step towards a healthy configuration of `gpid`; true if another may follow.
fn cure_one(cfg: &MetaCfg, s: &mut MetaState, gpid: Gpid, o: &mut Out<Node>) -> bool {
    {
        let Some(c) = s.configs.get(&gpid).cloned() else {
            return false;
        };
        let alive = |n: &Id| s.alive.contains_key(n);
        let live_secs: Vec<Id> = c.secondaries.iter().copied().filter(alive).collect();
        let primary_ok = c.primary.is_some_and(|p| alive(&p));
        if !primary_ok {
            if let Some(&new) = live_secs.first() {
                // Every secondary holds every committed mutation (commit needs all ACKs),
                // so any live secondary may take over; it re-prepares what is uncommitted.
                commit(
                    s,
                    c.next(|c| {
                        c.primary = Some(new);
                        c.secondaries = live_secs.clone();
                    }),
                    o,
                );
                return !cfg.bugs.has(Bug::CureOneStepPerEvent);
            } else if c.ballot == 0 {
                if let Some(&first) = s.alive.keys().next() {
                    commit(s, c.next(|c| c.primary = Some(first)), o);
                    return true;
                }
            }
            // Otherwise wait: only the last primary holds the data; it re-registers.
            return false;
        }
        if live_secs.len() != c.secondaries.len() {
            commit(s, c.next(|c| c.secondaries = live_secs.clone()), o);
            return !cfg.bugs.has(Bug::CureOneStepPerEvent);
        }
        if c.member_count() < c.max_replica_count as usize && !s.adding.contains_key(&gpid) {
            if let Some(&node) = cfg
                .dir
                .replicas
                .iter()
                .find(|r| alive(r) && !c.is_member(**r))
            {
                if let Some((p, incarnation)) = primary_life(s, &c) {
                    o.send(
                        p,
                        Msg::AddSecondary {
                            config: c.clone(),
                            node,
                            incarnation,
                        },
                    );
                }
                s.adding.insert(gpid, node);
            }
        }
        false
    }
}
