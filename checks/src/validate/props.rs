//! The SAFE properties of `spec/` that mean something on a real run, judged on the
//! replayed states after every step of the merged run (`merge.rs`).
//!
//! The model's properties read a model `State` (one partition, its own actor layout); a
//! real run has several partitions, clusters and lives, so each is restated here over
//! every `(cluster, partition)`, with the same meaning (SPEC.md has the paragraph per
//! property and says which are not checked on real runs, and why). A cluster is named by
//! its meta server's id; a replica belongs to the cluster of `ReplicaCfg::meta`.
//!
//! A node counts as up with its last replayed state until its next life starts: the log
//! does not say when a killed process died, and its last state is one it really held.
//! This is why SAFE-1 is checked as "one primary per ballot" (history-wide) rather than
//! "one primary at a time": the latter needs the failure detector's timing, which a
//! happens-before order cannot see.
use super::replay::Replayer;
use petrel_core::dup::DupStatus;
use petrel_core::meta::MetaState;
use petrel_core::replica::{Part, Status};
use petrel_core::{Ballot, Decree, Gpid, Msg, Mutation, Node, NodeState, PartitionConfig};
use stateright::actor::{Command, Id, Out};
use std::collections::BTreeMap;

/// The properties judged on a real run: (id, name).
pub const REAL: [(&str, &str); 10] = [
    ("SAFE-1", "one-primary-per-ballot"),
    ("SAFE-2", "committed-never-lost"),
    ("SAFE-3", "log-agreement"),
    ("SAFE-4", "ballot-monotonic"),
    ("SAFE-5", "committed-le-prepared"),
    ("SAFE-6", "no-broken-invariant"),
    ("SAFE-8", "one-config-per-ballot"),
    ("SAFE-9", "primary-not-recovering"),
    ("SAFE-13", "confirmed-le-shipped-le-committed"),
    ("SAFE-14", "no-gc-of-unconfirmed-log"),
];

#[derive(Clone, Debug)]
pub struct Violation {
    pub property: &'static str,
    /// Index into the merged order.
    pub step: usize,
    pub node: u64,
    pub detail: String,
}

/// A configuration's members as one node knew them: (primary, secondaries, that node).
type Known = (Option<Id>, Vec<Id>, u64);

#[derive(Default)]
pub struct Props {
    primary_of: BTreeMap<(u64, Gpid, Ballot), u64>,
    config_of: BTreeMap<(u64, Gpid, Ballot), Known>,
    last_ballot: BTreeMap<(u64, Gpid), Ballot>,
    /// The first violation of each property.
    pub violations: BTreeMap<&'static str, Violation>,
    /// States judged.
    pub evaluated: u64,
}

fn raw(id: Id) -> u64 {
    usize::from(id) as u64
}

/// The cluster (its meta server's id) a replayed node belongs to.
fn cluster_of(r: &Replayer) -> Option<u64> {
    match r.actor.as_ref()? {
        Node::Meta(_) => Some(r.id),
        Node::Replica(cfg) => Some(raw(cfg.dir.meta)),
        Node::Client(_) => None,
    }
}

fn parts(r: &Replayer) -> Option<&BTreeMap<Gpid, Part>> {
    match r.state.as_ref()? {
        NodeState::Replica(s) => Some(&s.parts),
        _ => None,
    }
}

/// A replica process without a life yet (0): its disk was wiped or replaced, and it asks
/// the meta server for a new life. It holds nothing and is no holder of any commit.
fn lifeless(r: &Replayer) -> bool {
    matches!(r.state.as_ref(), Some(NodeState::Replica(s)) if s.incarnation == 0)
}

fn meta(r: &Replayer) -> Option<&MetaState> {
    match r.state.as_ref()? {
        NodeState::Meta(s) => Some(s),
        _ => None,
    }
}

impl Props {
    fn fail(&mut self, property: &'static str, step: usize, node: u64, detail: String) {
        self.violations.entry(property).or_insert(Violation {
            property,
            step,
            node,
            detail,
        });
    }

    /// Judge the run after `step`, which node `at` took, producing `out`.
    pub fn observe(&mut self, step: usize, at: usize, reps: &[Replayer], out: &Out<Node>) {
        self.evaluated += 1;
        let r = &reps[at];
        let Some(cluster) = cluster_of(r) else { return };
        self.local(step, r, cluster, out);
        let members: Vec<&Replayer> = reps
            .iter()
            .filter(|x| cluster_of(x) == Some(cluster))
            .collect();
        self.cluster(step, r.id, cluster, &members);
    }

    /// Properties of the node that moved.
    fn local(&mut self, step: usize, r: &Replayer, cluster: u64, out: &Out<Node>) {
        let mut configs: Vec<&PartitionConfig> = Vec::new();
        for c in out.iter() {
            if let Command::Send(
                _,
                Msg::ConfigUpdate { config, .. }
                | Msg::ProposeConfigReply {
                    result: Ok(config), ..
                },
            ) = c
            {
                configs.push(config);
            }
        }
        if let Some(m) = meta(r) {
            configs.extend(m.configs.values());
            for c in m.configs.values() {
                self.ballot_step(step, r.id, c, "the meta server's");
            }
        }
        if let Some(ps) = parts(r) {
            if let Some(NodeState::Replica(s)) = &r.state {
                if let Some(b) = &s.broken {
                    self.fail(
                        "SAFE-6",
                        step,
                        r.id,
                        format!("node {} is broken: {b:?}", r.id),
                    );
                }
            }
            for (g, p) in ps {
                configs.push(&p.config);
                self.ballot_step(step, r.id, &p.config, "its");
                if p.status == Status::Primary {
                    let key = (cluster, *g, p.config.ballot);
                    match self.primary_of.get(&key) {
                        Some(other) if *other != r.id => {
                            let d = format!(
                                "nodes {other} and {} were both primary of {g:?} in ballot {}",
                                r.id, p.config.ballot
                            );
                            self.fail("SAFE-1", step, r.id, d);
                        }
                        Some(_) => {}
                        None => {
                            self.primary_of.insert(key, r.id);
                        }
                    }
                    if p.recovering {
                        self.fail(
                            "SAFE-9",
                            step,
                            r.id,
                            format!("node {} serves {g:?} as primary while recovering", r.id),
                        );
                    }
                }
                if let Some(d) = (p.snapshot.decree.saturating_add(1)..=p.committed)
                    .find(|d| !p.log.contains_key(d))
                {
                    let detail = format!(
                        "node {} {g:?}: committed {} but decree {d} is not in its log",
                        r.id, p.committed
                    );
                    self.fail("SAFE-5", step, r.id, detail);
                }
                for (id, d) in &p.dups {
                    if d.entry.status == DupStatus::Log
                        && !(d.confirmed <= d.shipped && d.shipped <= p.committed)
                    {
                        let detail = format!(
                            "node {} {g:?} dup {id:?}: confirmed {} shipped {} committed {}",
                            r.id, d.confirmed, d.shipped, p.committed
                        );
                        self.fail("SAFE-13", step, r.id, detail);
                    }
                }
            }
        }
        for c in configs {
            if c.ballot == 0 {
                continue;
            }
            let key = (cluster, c.gpid, c.ballot);
            match self.config_of.get(&key) {
                Some((p, s, who)) if (p, s) != (&c.primary, &c.secondaries) => {
                    let detail = format!(
                        "{:?} ballot {}: node {who} knew primary {:?} secondaries {:?}, node {} knows primary {:?} secondaries {:?}",
                        c.gpid, c.ballot, p, s, r.id, c.primary, c.secondaries
                    );
                    self.fail("SAFE-8", step, r.id, detail);
                }
                Some(_) => {}
                None => {
                    self.config_of
                        .insert(key, (c.primary, c.secondaries.clone(), r.id));
                }
            }
        }
    }

    fn ballot_step(&mut self, step: usize, node: u64, c: &PartitionConfig, whose: &str) {
        let last = self.last_ballot.entry((node, c.gpid)).or_insert(c.ballot);
        if c.ballot < *last {
            let detail = format!(
                "node {node}: {whose} ballot of {:?} went from {} back to {}",
                c.gpid, *last, c.ballot
            );
            self.fail("SAFE-4", step, node, detail);
        } else {
            *last = c.ballot;
        }
    }

    /// Properties across the replicas of the mover's cluster.
    fn cluster(&mut self, step: usize, node: u64, cluster: u64, members: &[&Replayer]) {
        let meta_state = members
            .iter()
            .find(|r| r.id == cluster)
            .and_then(|r| meta(r));
        let replicas: Vec<(u64, &BTreeMap<Gpid, Part>)> = members
            .iter()
            .filter_map(|r| Some((r.id, parts(r)?)))
            .collect();
        // SAFE-3: committed prefixes agree.
        let mut by_gpid: BTreeMap<Gpid, Vec<(u64, &Part)>> = BTreeMap::new();
        for (id, ps) in &replicas {
            for (g, p) in *ps {
                by_gpid.entry(*g).or_default().push((*id, p));
            }
        }
        for (g, holders) in &by_gpid {
            for (i, (ia, a)) in holders.iter().enumerate() {
                for (ib, b) in holders.iter().skip(i + 1) {
                    let upto = a.committed.min(b.committed);
                    let from = a.snapshot.decree.max(b.snapshot.decree).saturating_add(1);
                    let ma = |d: Decree| a.log.get(&d).map(|e| &e.mutation);
                    let mb = |d: Decree| b.log.get(&d).map(|e| &e.mutation);
                    if let Some(d) = (from..=upto).find(|d| ma(*d) != mb(*d)) {
                        let detail = format!(
                            "{g:?} decree {d}: node {ia} holds {:?}, node {ib} holds {:?}",
                            ma(d),
                            mb(d)
                        );
                        self.fail("SAFE-3", step, node, detail);
                    }
                }
            }
        }
        let Some(m) = meta_state else { return };
        // SAFE-2: every committed mutation is held by every member of the meta's config.
        for (g, config) in &m.configs {
            let Some(holders) = by_gpid.get(g) else {
                continue;
            };
            let mut committed: BTreeMap<Decree, &Mutation> = BTreeMap::new();
            let mut top: Decree = 0;
            for (_, p) in holders {
                top = top.max(p.committed);
                for (d, e) in p.log.range(..=p.committed) {
                    committed.insert(*d, &e.mutation);
                }
            }
            for member in config.members() {
                // As in the model (SAFE-2): a lost disk is not a lost commit.
                if members.iter().any(|r| r.id == raw(member) && lifeless(r)) {
                    continue;
                }
                let Some((_, p)) = holders.iter().find(|(id, _)| *id == raw(member)) else {
                    if top > 0 && members.iter().any(|r| r.id == raw(member)) {
                        let detail = format!(
                            "{g:?}: member {} of ballot {} holds no replica of it",
                            raw(member),
                            config.ballot
                        );
                        self.fail("SAFE-2", step, node, detail);
                    }
                    continue;
                };
                let last = p
                    .snapshot
                    .decree
                    .max(p.log.keys().next_back().copied().unwrap_or(0));
                let missing = committed.iter().find(|(d, mu)| {
                    **d > p.snapshot.decree && p.log.get(d).map(|e| &e.mutation) != Some(**mu)
                });
                if last < top || missing.is_some() {
                    let detail = match missing {
                        Some((d, _)) => {
                            format!("{g:?}: member {} lost committed decree {d}", raw(member))
                        }
                        None => format!(
                            "{g:?}: member {} holds up to {last}, decree {top} is committed",
                            raw(member)
                        ),
                    };
                    self.fail("SAFE-2", step, node, detail);
                }
            }
        }
        // SAFE-14: no replica collected log a LOG or PAUSE duplication has not confirmed.
        for d in m
            .dups
            .values()
            .filter(|d| matches!(d.status, DupStatus::Log | DupStatus::Pause))
        {
            for (id, ps) in &replicas {
                for (g, p) in ps.iter().filter(|(g, _)| g.table == d.table) {
                    let bound = d.confirmed.get(&g.partition).copied().unwrap_or(0);
                    if p.snapshot.decree > bound {
                        let detail = format!(
                            "node {id} collected {g:?} up to {} but dup {:?} confirmed only {bound}",
                            p.snapshot.decree, d.dupid
                        );
                        self.fail("SAFE-14", step, node, detail);
                    }
                }
            }
        }
    }
}
