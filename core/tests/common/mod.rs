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

pub const G: Gpid = Gpid { table: 1, partition: 0 };

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
    PartitionConfig { gpid, ballot, primary: primary.map(id), secondaries, max_replica_count: 3 }
}

pub fn mutation(client: usize, req: ReqId, value: Value) -> Mutation {
    Mutation { client: id(client), req, value }
}

pub fn replica_cfg(bootstrap: Vec<PartitionConfig>, bugs: Bugs) -> ReplicaCfg {
    ReplicaCfg { meta: id(0), bootstrap, accept_duplication: false, bugs }
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
    sends(o).into_iter().filter(|(d, _)| *d == dst).map(|(_, m)| m).collect()
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
            Msg::PrepareAck { ballot, decree, ok: true, .. } => Some((dst, ballot, decree)),
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
/// holds (with the ballot saved), a prepare the primary sends carries a mutation its
/// saved log holds, a `LearnDone` reports what the saved log holds, a `Register` names
/// the saved incarnation, a write's success names a mutation the saved log holds.
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
                Command::Save(NodeStorage::Meta(_)) => return Err("replica saved meta storage".into()),
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
            Msg::PrepareAck { gpid, ballot, decree, ok: true } => {
                let p = part(gpid).ok_or_else(|| format!("ACK of {decree} with nothing saved"))?;
                if !p.log.contains_key(decree) {
                    return Err(format!("ACK of decree {decree} to {dst:?} before it is saved: {p:?}"));
                }
                if p.config.ballot < *ballot {
                    return Err(format!("ACK at ballot {ballot} while the saved ballot is {}", p.config.ballot));
                }
            }
            Msg::Prepare { config, decree, entry, .. } => {
                let p = part(&config.gpid).ok_or_else(|| format!("prepare of {decree} with nothing saved"))?;
                if p.log.get(decree).map(|e| e.mutation) != Some(entry.mutation) {
                    return Err(format!("prepare of decree {decree} ({entry:?}) before the primary saved it: {p:?}"));
                }
                if p.config.ballot != config.ballot {
                    return Err(format!("prepare at ballot {} while the saved ballot is {}", config.ballot, p.config.ballot));
                }
            }
            Msg::GroupCheck { config, .. } => {
                let p = part(&config.gpid).ok_or("group check with nothing saved")?;
                if p.config != *config {
                    return Err(format!("group check for {config:?} while the saved config is {:?}", p.config));
                }
            }
            Msg::LearnDone { gpid, ballot, learned } => {
                let p = part(gpid).ok_or("LearnDone with nothing saved")?;
                if p.log.keys().next_back().copied().unwrap_or(0) < *learned || p.config.ballot != *ballot {
                    return Err(format!("LearnDone {{ballot {ballot}, learned {learned}}} ahead of the saved state {p:?}"));
                }
            }
            Msg::Register { incarnation } => {
                let saved = self.saved.as_ref().map(|s| s.incarnation);
                if saved != Some(*incarnation) {
                    return Err(format!("Register {{{incarnation}}} while the saved incarnation is {saved:?}"));
                }
            }
            Msg::WriteReply { gpid, req, result: Ok(()) } => {
                let p = part(gpid).ok_or("write success with nothing saved")?;
                if !p.log.values().any(|e| e.mutation.client == dst && e.mutation.req == *req) {
                    return Err(format!("write success for ({dst:?}, {req}) not in the saved log"));
                }
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
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// A deterministic runner, for "this property fails when the mutant is on" checks.
pub fn deterministic_runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 64, ..Config::default() };
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

pub fn meta_cfg(replicas: &[usize], tables: Vec<TableSpec>, bootstrap_members: u8, bugs: Bugs) -> MetaCfg {
    MetaCfg {
        replicas: replicas.iter().map(|r| id(*r)).collect(),
        tables,
        bootstrap_members,
        dups: Vec::new(),
        accept_duplication: false,
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
        (Sim { node, id: me, state }, o)
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
