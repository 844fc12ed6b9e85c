//! Helpers shared by the integration tests: ids, configs, command inspection and the
//! "durable before claimed" checker.
//!
//! The persistence contract (the node driver's rule, not the role modules'): a step's
//! `Out` is applied as a unit, and every `Save` of a step is made durable before any
//! `Send` of that step leaves. The order of saves and sends inside one `Out` therefore
//! means nothing, and no test asserts it; what a step's sends claim is checked against
//! the storage the step leaves durable (its last `Save`, or the one before the step if it
//! saves nothing). See `DurableReplica`.
#![allow(dead_code)]

use petrel_core::meta::MetaStorage;
use petrel_core::replica::{ReplicaCfg, ReplicaState, ReplicaStorage};
use petrel_core::*;
use proptest::test_runner::{Config, TestRng, TestRunner};
use stateright::actor::{Command, Id, Out};

pub const G: Gpid = Gpid {
    table: 1,
    partition: 0,
};

pub fn id(n: usize) -> Id {
    Id::from(n)
}

/// A configuration of partition `G` (secondaries sorted, as the meta server commits them).
pub fn pc(ballot: Ballot, primary: Option<usize>, secs: &[usize]) -> PartitionConfig {
    pcg(G, ballot, primary, secs)
}

pub fn pcg(gpid: Gpid, ballot: Ballot, primary: Option<usize>, secs: &[usize]) -> PartitionConfig {
    let mut secondaries: Vec<Id> = secs.iter().map(|s| id(*s)).collect();
    secondaries.sort();
    secondaries.dedup();
    PartitionConfig {
        gpid,
        ballot,
        primary: primary.map(id),
        secondaries,
        max_replica_count: 3,
        source: None,
    }
}

/// A follower partition's configuration: `pcg` whose table follows the cluster of
/// `source` (a meta server id).
pub fn follower_pc(
    gpid: Gpid,
    ballot: Ballot,
    primary: Option<usize>,
    secs: &[usize],
    source: usize,
) -> PartitionConfig {
    PartitionConfig {
        source: Some(id(source)),
        ..pcg(gpid, ballot, primary, secs)
    }
}

/// The tests' cluster A: meta 0, replicas 1–6; clients are 10–29 and 40–49; operators
/// are from `auth::OPERATOR_ID_BASE` on. Cluster B: meta 7, replicas 8 and 9; a third
/// cluster: meta 30, replica 31.
pub const OPERATOR: u64 = petrel_core::auth::OPERATOR_ID_BASE;

pub fn operator() -> Id {
    Id::from(OPERATOR as usize)
}

fn remote(metas: &[(usize, &[usize])]) -> std::collections::BTreeMap<Id, Id> {
    metas
        .iter()
        .flat_map(|(m, nodes)| {
            std::iter::once(*m)
                .chain(nodes.iter().copied())
                .map(move |n| (id(n), id(*m)))
        })
        .collect()
}

pub fn dir_a() -> petrel_core::auth::Directory {
    petrel_core::auth::Directory {
        meta: id(0),
        replicas: (1..=6).map(id).collect(),
        remote: remote(&[(7, &[8, 9]), (30, &[31])]),
    }
}

pub fn dir_b() -> petrel_core::auth::Directory {
    petrel_core::auth::Directory {
        meta: id(7),
        replicas: vec![id(8), id(9)],
        remote: remote(&[(0, &[1, 2, 3, 4, 5, 6]), (30, &[31])]),
    }
}

/// The directory of a cluster whose meta server is `meta` (0 or 7), as seen by it.
pub fn dir_of(meta: usize) -> petrel_core::auth::Directory {
    if meta == 7 {
        dir_b()
    } else {
        dir_a()
    }
}

/// The key of the tests that treat a partition as one register (the model before keys):
/// "the register's value n" is key `K` set to the text of n; "never written" is absent.
pub const K: &str = "k";

/// The key `K`.
pub fn k() -> Key {
    Key::from(K)
}

/// The text of `n` as a value (`val(7)` is "7").
pub fn val(n: impl std::fmt::Display) -> Value {
    Value::from(n.to_string().into_bytes())
}

/// Set the register: `Put(K, val(n))`.
pub fn put(n: impl std::fmt::Display) -> Op {
    Op::Put(k(), val(n))
}

/// A client's write of the register (`Put(K, val(n))`).
pub fn mutation(client: usize, req: ReqId, n: impl std::fmt::Display) -> Mutation {
    mutation_op(client, req, put(n))
}

pub fn mutation_op(client: usize, req: ReqId, op: Op) -> Mutation {
    Mutation {
        client: id(client),
        req,
        op,
    }
}

/// A client's `Write` of the register: key `K`, value `val(n)`.
pub fn write(gpid: Gpid, req: ReqId, n: impl std::fmt::Display) -> Msg {
    Msg::Write {
        gpid,
        req,
        key: k(),
        value: Some(val(n)),
    }
}

/// A client's `Read` of the register (key `K`).
pub fn read(gpid: Gpid, req: ReqId) -> Msg {
    Msg::Read {
        gpid,
        req,
        key: k(),
    }
}

/// The register's value at decree `d` of a replica (`None`: never written, or deleted).
pub fn reg(p: &petrel_core::replica::Part, d: Decree) -> Option<Value> {
    p.read(&k(), d)
}

pub fn replica_cfg(bootstrap: Vec<PartitionConfig>, bugs: Bugs) -> ReplicaCfg {
    ReplicaCfg {
        dir: dir_a(),
        bootstrap,
        bootstrap_dups: Vec::new(),
        accept_duplication: false,
        gc: false,
        ship_batch: petrel_core::dup::SHIP_BATCH,
        lease: None,
        bugs,
    }
}

pub fn new_out() -> Out<Node> {
    Out::new()
}

pub fn sends(o: &Out<Node>) -> Vec<(Id, Msg)> {
    o.iter()
        .filter_map(|c| match c {
            Command::Send(dst, m) => Some((*dst, m.clone())),
            _ => None,
        })
        .collect()
}

pub fn sends_to(o: &Out<Node>, dst: Id) -> Vec<Msg> {
    sends(o)
        .into_iter()
        .filter(|(d, _)| *d == dst)
        .map(|(_, m)| m)
        .collect()
}

pub fn saves(o: &Out<Node>) -> Vec<NodeStorage> {
    o.iter()
        .filter_map(|c| match c {
            Command::Save(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn replica_saves(o: &Out<Node>) -> Vec<ReplicaStorage> {
    saves(o)
        .into_iter()
        .map(|s| match s {
            NodeStorage::Replica(r) => r,
            NodeStorage::Meta(_) => panic!("a replica saved meta storage"),
        })
        .collect()
}

pub fn meta_saves(o: &Out<Node>) -> Vec<MetaStorage> {
    saves(o)
        .into_iter()
        .map(|s| match s {
            NodeStorage::Meta(m) => m,
            NodeStorage::Replica(_) => panic!("the meta saved replica storage"),
        })
        .collect()
}

/// The ACKs (`ok == true`) in an `Out`: (destination, ballot, decree).
pub fn ok_acks(o: &Out<Node>) -> Vec<(Id, Ballot, Decree)> {
    sends(o)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            Msg::PrepareAck {
                ballot,
                decree,
                ok: true,
                ..
            } => Some((dst, ballot, decree)),
            _ => None,
        })
        .collect()
}

/// A replica's log is `1..=last` without holes.
pub fn log_is_contiguous(p: &petrel_core::replica::Part) -> bool {
    p.log.keys().copied().eq(1..=p.last_decree())
}

/// Tracks what a replica has durably saved and checks, step by step, that every message
/// which claims something about the replica's state is backed by what is durable when the
/// message leaves: under the persistence contract (module comment) that is the step's
/// last save, wherever the send sits in the `Out`. An ACK names a decree the saved log
/// holds or the saved snapshot covers (with the ballot saved), a prepare the primary
/// sends carries a mutation its saved log holds, a `LearnDone` reports what the saved
/// state holds, a `Learn` claims no more than the saved commit point, a `Register` names
/// the saved incarnation, a write's success (a client's `WriteReply`, a follower's
/// `ApplyReply`) names a mutation the saved state holds committed, and a `Ship` carries
/// only mutations the saved state holds committed, with their operations.
#[derive(Default, Debug, Clone)]
pub struct DurableReplica {
    pub saved: Option<ReplicaStorage>,
}

impl DurableReplica {
    /// Check one step's `Out` (call it once per step, in order).
    pub fn check(&mut self, o: &Out<Node>) -> Result<(), String> {
        for c in o.iter() {
            match c {
                Command::Save(NodeStorage::Replica(r)) => self.saved = Some(r.clone()),
                Command::Save(NodeStorage::Meta(_)) => {
                    return Err("replica saved meta storage".into())
                }
                _ => {}
            }
        }
        for c in o.iter() {
            if let Command::Send(dst, m) = c {
                self.check_send(*dst, m)?;
            }
        }
        Ok(())
    }

    fn check_send(&self, dst: Id, m: &Msg) -> Result<(), String> {
        let part = |g: &Gpid| self.saved.as_ref().and_then(|s| s.parts.get(g));
        match m {
            Msg::PrepareAck {
                gpid,
                ballot,
                decree,
                ok: true,
            } => {
                let p = part(gpid).ok_or_else(|| format!("ACK of {decree} with nothing saved"))?;
                if !p.log.contains_key(decree) && *decree > p.snapshot.decree {
                    return Err(format!(
                        "ACK of decree {decree} to {dst:?} before it is saved: {p:?}"
                    ));
                }
                if p.config.ballot < *ballot {
                    return Err(format!(
                        "ACK at ballot {ballot} while the saved ballot is {}",
                        p.config.ballot
                    ));
                }
            }
            Msg::Prepare {
                config,
                decree,
                entry,
                ..
            } => {
                let p = part(&config.gpid)
                    .ok_or_else(|| format!("prepare of {decree} with nothing saved"))?;
                if p.log.get(decree).map(|e| &e.mutation) != Some(&entry.mutation) {
                    return Err(format!(
                        "prepare of decree {decree} ({entry:?}) before the primary saved it: {p:?}"
                    ));
                }
                if p.config.ballot != config.ballot {
                    return Err(format!(
                        "prepare at ballot {} while the saved ballot is {}",
                        config.ballot, p.config.ballot
                    ));
                }
            }
            Msg::GroupCheck { config, .. } => {
                let p = part(&config.gpid).ok_or("group check with nothing saved")?;
                if p.config != *config {
                    return Err(format!(
                        "group check for {config:?} while the saved config is {:?}",
                        p.config
                    ));
                }
            }
            Msg::LearnDone {
                gpid,
                ballot,
                learned,
            } => {
                let p = part(gpid).ok_or("LearnDone with nothing saved")?;
                if p.log
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(p.snapshot.decree)
                    < *learned
                    || p.config.ballot != *ballot
                {
                    return Err(format!("LearnDone {{ballot {ballot}, learned {learned}}} ahead of the saved state {p:?}"));
                }
            }
            Msg::Register { incarnation } => {
                let saved = self.saved.as_ref().map(|s| s.incarnation);
                // Life 0: a node without one asks for it; nothing needs to be durable.
                if *incarnation != 0 && saved != Some(*incarnation) {
                    return Err(format!(
                        "Register {{{incarnation}}} while the saved incarnation is {saved:?}"
                    ));
                }
            }
            Msg::WriteReply {
                gpid,
                req,
                result: Ok(()),
            } => {
                let p = part(gpid).ok_or("write success with nothing saved")?;
                let logged = p.log.iter().any(|(d, e)| {
                    *d <= p.committed && e.mutation.client == dst && e.mutation.req == *req
                });
                let collected = p.snapshot.last_req.get(&dst).is_some_and(|r| r >= req);
                if !logged && !collected {
                    return Err(format!("write success for ({dst:?}, {req}) not committed in the saved state: {p:?}"));
                }
            }
            Msg::ApplyReply {
                gpid,
                decree,
                result: Ok(()),
            } => {
                // A follower applies a source mutation as a write of the source meta
                // numbered by the source decree; the writer is not in the reply.
                let p = part(gpid).ok_or("apply success with nothing saved")?;
                let logged = p
                    .log
                    .iter()
                    .any(|(d, e)| *d <= p.committed && e.mutation.req == *decree);
                let collected = p.snapshot.last_req.values().any(|r| r >= decree);
                if !logged && !collected {
                    return Err(format!("apply success for source decree {decree} not committed in the saved state: {p:?}"));
                }
            }
            Msg::Ship { gpid, entries, .. } => {
                // The source partition has the follower partition's index.
                let saved = self.saved.as_ref().ok_or("ship with nothing saved")?;
                let backed = saved
                    .parts
                    .iter()
                    .filter(|(g, _)| g.partition == gpid.partition)
                    .any(|(_, p)| {
                        entries.iter().all(|(d, op)| {
                            *d <= p.committed && p.log.get(d).map(|e| &e.mutation.op) == Some(op)
                        })
                    });
                if !backed {
                    return Err(format!(
                        "ship of {entries:?} to {dst:?} not committed in the saved log: {saved:?}"
                    ));
                }
            }
            Msg::Learn {
                config,
                snapshot,
                committed,
                ..
            } => {
                let p = part(&config.gpid).ok_or("learn with nothing saved")?;
                if *committed > p.committed || snapshot.decree > p.committed {
                    return Err(format!(
                        "learn claims committed {committed} (snapshot {}) beyond the saved {}",
                        snapshot.decree, p.committed
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The meta server's duplication claims, checked like `DurableReplica`'s: what a step
/// tells a primary or the operator about a duplication is what the step leaves durable
/// (its last save, or the storage before it if it saves nothing). A `DupUpdate` carries,
/// for every duplication of the partition's table, exactly the saved record's entry for
/// that partition (status, version and confirmed decree: a primary collects its log up to
/// that confirmed decree, so it must never run ahead of the meta's disk); a
/// `ModifyDupReply` success names the saved status; an `AddDupReply` success a saved
/// record of that table; a `CreateFollowerReply` success a saved follower table.
#[derive(Default, Debug, Clone)]
pub struct DurableMetaDups {
    pub saved: Option<MetaStorage>,
}

impl DurableMetaDups {
    /// Check one step's `Out` (call it once per step, in order).
    pub fn check(&mut self, o: &Out<Node>) -> Result<(), String> {
        for c in o.iter() {
            match c {
                Command::Save(NodeStorage::Meta(m)) => self.saved = Some(m.clone()),
                Command::Save(NodeStorage::Replica(_)) => {
                    return Err("meta saved replica storage".into())
                }
                _ => {}
            }
        }
        for c in o.iter() {
            if let Command::Send(dst, m) = c {
                self.check_send(*dst, m)?;
            }
        }
        Ok(())
    }

    fn check_send(&self, dst: Id, m: &Msg) -> Result<(), String> {
        let saved = self.saved.as_ref();
        match m {
            Msg::DupUpdate { gpid, dups, .. } => {
                let saved =
                    saved.ok_or_else(|| format!("DupUpdate to {dst:?} with nothing saved"))?;
                let expected: std::collections::BTreeMap<_, _> = saved
                    .dups
                    .values()
                    .filter(|r| r.table == gpid.table)
                    .map(|r| (r.dupid, r.entry(gpid.partition)))
                    .collect();
                if *dups != expected {
                    return Err(format!("DupUpdate to {dst:?} for {gpid:?} carries {dups:?}, the saved records say {expected:?}"));
                }
            }
            Msg::ModifyDupReply {
                dupid,
                result: Ok(status),
            } if saved.and_then(|s| s.dups.get(dupid)).map(|r| r.status) != Some(*status) => {
                return Err(format!(
                    "ModifyDupReply {{{dupid}: {status:?}}} while the saved record is {:?}",
                    saved.map(|s| &s.dups)
                ));
            }
            Msg::AddDupReply {
                table,
                result: Ok(dupid),
            } if saved.and_then(|s| s.dups.get(dupid)).map(|r| r.table) != Some(*table) => {
                return Err(format!("AddDupReply {{{table}: {dupid}}} not saved"));
            }
            Msg::CreateFollowerReply {
                source,
                result: Ok(()),
            } if !saved.is_some_and(|s| s.followers.values().any(|f| f == source)) => {
                return Err(format!("CreateFollowerReply Ok for {source:?} not saved"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Cases per property (the whole suite stays well under the 20 s budget in release).
pub const CASES: u32 = 1024;

/// A proptest config: `cases` cases, no regression files written next to the sources.
pub fn pt_config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A deterministic runner, for "this property fails when the mutant is on" checks.
pub fn deterministic_runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let algorithm = config.rng_algorithm;
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(algorithm))
}

// ---------------------------------------------------------------------------------------
// Driving a whole node through stateright's `Actor` trait (stable across the role modules'
// own signatures).

use petrel_core::client::ClientState;
use petrel_core::meta::{MetaCfg, MetaState, TableSpec};
use stateright::actor::Actor;
use std::borrow::Cow;

pub fn meta_cfg(
    replicas: &[usize],
    tables: Vec<TableSpec>,
    bootstrap_members: u8,
    bugs: Bugs,
) -> MetaCfg {
    let mut dir = dir_of(if replicas.iter().any(|r| *r == 8 || *r == 9) {
        7
    } else {
        0
    });
    dir.replicas = replicas.iter().map(|r| id(*r)).collect();
    MetaCfg {
        dir,
        tables,
        bootstrap_members,
        dups: Vec::new(),
        accept_duplication: false,
        grace: None,
        bugs,
    }
}

/// One actor and its state, driven through the `Actor` trait.
#[derive(Clone, Debug)]
pub struct Sim {
    pub node: Node,
    pub id: Id,
    pub state: NodeState,
}

impl Sim {
    pub fn start(node: Node, me: Id, storage: Option<NodeStorage>) -> (Sim, Out<Node>) {
        let mut o = Out::new();
        let state = node.on_start(me, &storage, &mut o);
        (
            Sim {
                node,
                id: me,
                state,
            },
            o,
        )
    }

    pub fn msg(&mut self, src: Id, msg: Msg) -> Out<Node> {
        let mut o = Out::new();
        let mut cow = Cow::Borrowed(&self.state);
        self.node.on_msg(self.id, &mut cow, src, msg, &mut o);
        let new = match cow {
            Cow::Owned(s) => Some(s),
            Cow::Borrowed(_) => None,
        };
        if let Some(s) = new {
            self.state = s;
        }
        o
    }

    pub fn timeout(&mut self, timer: Timer) -> Out<Node> {
        let mut o = Out::new();
        let mut cow = Cow::Borrowed(&self.state);
        self.node.on_timeout(self.id, &mut cow, &timer, &mut o);
        let new = match cow {
            Cow::Owned(s) => Some(s),
            Cow::Borrowed(_) => None,
        };
        if let Some(s) = new {
            self.state = s;
        }
        o
    }

    pub fn replica(&self) -> &ReplicaState {
        match &self.state {
            NodeState::Replica(s) => s,
            other => panic!("not a replica: {other:?}"),
        }
    }

    pub fn meta(&self) -> &MetaState {
        match &self.state {
            NodeState::Meta(s) => s,
            other => panic!("not a meta server: {other:?}"),
        }
    }

    pub fn client(&self) -> &ClientState {
        match &self.state {
            NodeState::Client(s) => s,
            other => panic!("not a client: {other:?}"),
        }
    }
}
