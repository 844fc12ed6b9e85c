//! The meta server: the authority on partition configurations. It commits a configuration
//! only with `ballot == current + 1`, detects failed replicas (under the lease < grace
//! timing assumption, see SPEC.md) and cures partitions: assign a primary, promote a
//! secondary when the primary is gone, remove dead members, add learners when
//! under-replicated.
use crate::bug::{Bug, Bugs};
use crate::msg::Msg;
use crate::node::{Node, NodeStorage};
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::BTreeMap;

/// A table as the operator created it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableSpec {
    pub id: u8,
    pub partitions: u8,
    pub max_replica_count: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaCfg {
    /// The replica servers of this cluster.
    pub replicas: Vec<Id>,
    pub tables: Vec<TableSpec>,
    /// Members per partition of a bootstrapped deployment (`bootstrap_configs`); 0 means
    /// primaries are assigned at run time.
    pub bootstrap_members: u8,
    pub bugs: Bugs,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaState {
    pub configs: BTreeMap<Gpid, PartitionConfig>,
    /// Replica servers believed alive, with the incarnation that registered.
    pub alive: BTreeMap<Id, u32>,
    /// A learner the primary was asked to add, per partition (one at a time).
    pub adding: BTreeMap<Gpid, Id>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaStorage {
    pub configs: BTreeMap<Gpid, PartitionConfig>,
}

/// The initial assignment of a bootstrapped deployment: partition p's primary is replica
/// `p mod n`, followed by the next `members - 1` replicas as secondaries.
pub fn bootstrap_configs(replicas: &[Id], tables: &[TableSpec], members: u8) -> Vec<PartitionConfig> {
    let n = replicas.len();
    let mut out = Vec::new();
    for t in tables {
        for p in 0..t.partitions {
            let gpid = Gpid { table: t.id, partition: p };
            let members: Vec<Id> = (0..(members.min(t.max_replica_count) as usize).min(n)).map(|k| replicas[(p as usize + k) % n]).collect();
            let mut secondaries = members.iter().skip(1).copied().collect::<Vec<_>>();
            secondaries.sort();
            out.push(PartitionConfig {
                gpid,
                ballot: 1,
                primary: members.first().copied(),
                secondaries,
                max_replica_count: t.max_replica_count,
            });
        }
    }
    out
}

fn persist(s: &MetaState, o: &mut Out<Node>) {
    o.save(NodeStorage::Meta(MetaStorage { configs: s.configs.clone() }));
}

pub fn on_start(cfg: &MetaCfg, storage: Option<&MetaStorage>, o: &mut Out<Node>) -> MetaState {
    let mut s = match storage {
        Some(st) => MetaState { configs: st.configs.clone(), alive: BTreeMap::new(), adding: BTreeMap::new() },
        None if cfg.bootstrap_members > 0 => MetaState {
            configs: bootstrap_configs(&cfg.replicas, &cfg.tables, cfg.bootstrap_members).into_iter().map(|c| (c.gpid, c)).collect(),
            alive: cfg.replicas.iter().map(|r| (*r, 1)).collect(),
            adding: BTreeMap::new(),
        },
        None => MetaState {
            configs: cfg
                .tables
                .iter()
                .flat_map(|t| {
                    (0..t.partitions).map(move |p| {
                        let gpid = Gpid { table: t.id, partition: p };
                        (gpid, PartitionConfig { gpid, max_replica_count: t.max_replica_count, ..Default::default() })
                    })
                })
                .collect(),
            alive: BTreeMap::new(),
            adding: BTreeMap::new(),
        },
    };
    if storage.is_none() {
        persist(&s, o);
    }
    cure(cfg, &mut s, o);
    s
}

pub fn on_msg(cfg: &MetaCfg, s: &mut MetaState, src: Id, msg: Msg, o: &mut Out<Node>) {
    match msg {
        Msg::QueryConfig { gpid } => {
            let config = s.configs.get(&gpid).cloned();
            let incarnation = config.as_ref().and_then(|c| c.primary).and_then(|p| s.alive.get(&p).copied());
            o.send(src, Msg::QueryConfigReply { gpid, config, incarnation });
        }
        Msg::Register { incarnation } => {
            if !cfg.replicas.contains(&src) || s.alive.get(&src) == Some(&incarnation) {
                return;
            }
            s.alive.insert(src, incarnation);
            // The node restarted: it lost its volatile role state. Take it out of every
            // configuration, except where it is the only one left holding the data: then it
            // is re-assigned primary at a new ballot.
            let gpids: Vec<Gpid> = s.configs.values().filter(|c| c.is_member(src)).map(|c| c.gpid).collect();
            for gpid in gpids {
                let Some(c) = s.configs.get(&gpid) else { continue };
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
        Msg::PeerDown { incarnation } if s.alive.get(&src) == Some(&incarnation) => {
            s.alive.remove(&src);
            s.adding.retain(|_, n| *n != src);
            cure(cfg, s, o);
        }
        Msg::ProposeConfig { config, incarnation } => {
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
                o.send(src, Msg::ProposeConfigReply { result: Ok(config), incarnation });
                cure(cfg, s, o);
            } else {
                o.send(src, Msg::ProposeConfigReply { result: Err(current), incarnation });
            }
        }
        _ => {}
    }
}

/// Commit a configuration: persist first (the driver makes the save durable before any
/// send of the same step leaves), then tell its primary.
fn commit(s: &mut MetaState, config: PartitionConfig, o: &mut Out<Node>) {
    s.adding.remove(&config.gpid);
    s.configs.insert(config.gpid, config.clone());
    persist(s, o);
    if let Some((p, &incarnation)) = config.primary.and_then(|p| s.alive.get(&p).map(|i| (p, i))) {
        o.send(p, Msg::ConfigUpdate { config, incarnation });
    }
}

/// Bring every partition towards a healthy configuration, one committed change at a time.
fn cure(cfg: &MetaCfg, s: &mut MetaState, o: &mut Out<Node>) {
    let gpids: Vec<Gpid> = s.configs.keys().copied().collect();
    for gpid in gpids {
        let Some(c) = s.configs.get(&gpid).cloned() else { continue };
        let alive = |n: &Id| s.alive.contains_key(n);
        let live_secs: Vec<Id> = c.secondaries.iter().copied().filter(alive).collect();
        let primary_ok = c.primary.is_some_and(|p| alive(&p));
        if !primary_ok {
            if let Some(&new) = live_secs.first() {
                // Every secondary holds every committed mutation (commit needs all ACKs),
                // so any live secondary may take over; it re-prepares what is uncommitted.
                commit(s, c.next(|c| {
                    c.primary = Some(new);
                    c.secondaries = live_secs.clone();
                }), o);
            } else if c.ballot == 0 {
                if let Some(&first) = s.alive.keys().next() {
                    commit(s, c.next(|c| c.primary = Some(first)), o);
                }
            }
            // Otherwise wait: only the last primary holds the data; it re-registers.
            continue;
        }
        if live_secs.len() != c.secondaries.len() {
            commit(s, c.next(|c| c.secondaries = live_secs.clone()), o);
            continue;
        }
        if c.member_count() < c.max_replica_count as usize && !s.adding.contains_key(&gpid) {
            if let Some(&node) = cfg.replicas.iter().find(|r| alive(r) && !c.is_member(**r)) {
                if let Some((p, &incarnation)) = c.primary.and_then(|p| s.alive.get(&p).map(|i| (p, i))) {
                    o.send(p, Msg::AddSecondary { config: c.clone(), node, incarnation });
                }
                s.adding.insert(gpid, node);
            }
        }
    }
}
