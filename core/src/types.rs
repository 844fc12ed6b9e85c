//! Value types shared by every role.
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;

/// A configuration version. Every committed configuration change increments it by one.
pub type Ballot = u32;
/// A position in a partition's mutation log (1-based; 0 = nothing).
pub type Decree = u32;
/// The value a client writes (the model uses a single register per partition; 0 = unset).
pub type Value = u8;
/// A client's request number; with the client id it identifies a mutation for dedup. A
/// duplicated mutation's is its source decree (the source meta server is the "client").
pub type ReqId = u32;

/// Global partition id: table and partition index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gpid {
    pub table: u8,
    pub partition: u8,
}

/// One partition's replica configuration, as the meta server commits it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionConfig {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub primary: Option<Id>,
    /// Sorted, never contains the primary.
    pub secondaries: Vec<Id>,
    pub max_replica_count: u8,
}

impl PartitionConfig {
    pub fn is_member(&self, id: Id) -> bool {
        self.primary == Some(id) || self.secondaries.contains(&id)
    }
    pub fn members(&self) -> impl Iterator<Item = Id> + '_ {
        self.primary.iter().copied().chain(self.secondaries.iter().copied())
    }
    pub fn member_count(&self) -> usize {
        self.secondaries.len() + usize::from(self.primary.is_some())
    }
    /// The configuration after one change: `ballot + 1`, with `f` applied.
    pub fn next(&self, f: impl FnOnce(&mut PartitionConfig)) -> PartitionConfig {
        let mut c = self.clone();
        c.ballot = c.ballot.saturating_add(1);
        f(&mut c);
        c.secondaries.sort();
        c.secondaries.dedup();
        if let Some(p) = c.primary {
            c.secondaries.retain(|s| *s != p);
        }
        c
    }
}

/// A client write: who asked, which request, what value. (client, req) is the dedup key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mutation {
    pub client: Id,
    pub req: ReqId,
    pub value: Value,
}

/// A prepared log entry: the mutation and the ballot under which it was (re)prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub ballot: Ballot,
    pub mutation: Mutation,
}

/// Errors are values: everything a peer, a disk or an operator can cause ends here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The receiver is not the serving primary of that partition.
    NotPrimary,
    /// The receiver does not host that partition / the meta does not know it.
    UnknownPartition,
    /// The primary is still catching up (learning) and may not serve reads.
    Recovering,
    /// A configuration proposal was not based on the current ballot.
    InvalidVersion,
    /// The connection to the peer broke or could not be made.
    PeerDown,
    /// No answer before the request's deadline.
    Timeout,
}

/// What a client operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpResult {
    WriteOk,
    ReadOk(Value),
    /// The client gave up after its retry budget (a definite error for the caller).
    Failed(ErrorCode),
}

/// A client operation on its partition's register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientOp {
    Put(Value),
    Get,
}

/// The collapsed prefix of a log, what garbage collection leaves of decrees 1..=`decree`:
/// the register's value there, and each writer's last request (so a retry of a mutation
/// whose entry was collected is still recognised as done).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub decree: Decree,
    pub value: Value,
    pub last_req: BTreeMap<Id, ReqId>,
}
