//! Authorization: who may send which message. The transport authenticates (a verified
//! certificate names a cluster and a role, and the driver maps it to an id in that role's
//! range); the core decides what each role may do, here, where the checker sees it.
//!
//! The table (SPEC.md, "Authorization"):
//!
//! | from | may send |
//! |---|---|
//! | our meta server | `ConfigUpdate`, `AddSecondary`, `ProposeConfigReply`, `Registered`, `BeaconAck`, `DupUpdate` (to replicas); replies to clients and operators |
//! | a replica of our cluster | `Register`, `Beacon`, `ProposeConfig`, `DupReport` (to the meta); `Prepare`, `PrepareAck`, `GroupCheck`, `Learn`, `LearnDone` (to replicas) |
//! | a node of another cluster | `CreateFollower`, `QueryFollower`, `QueryConfig` (to the meta); `Checkpoint`, `Ship` (to a follower primary, only from the cluster its table was created for); the replies to our duplication requests, only from the cluster they were sent to |
//! | a client | `QueryConfig`, `Write`, `Read`, `QueryCluster` |
//! | an operator | what a client may, and `CreateTable`, `AddDup`, `ModifyDup`, `SetFailMode` |
//!
//! `PeerDown` is never a message from the network: the driver produces it, naming the
//! peer whose connection broke as its source, whatever that peer's role.
use crate::msg::Msg;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;

/// Ids from here up are clients (a node driver draws them at random per session).
pub const CLIENT_ID_BASE: u64 = 1 << 32;
/// Ids from here up are operators (`petrel admin` sessions with an operator certificate).
pub const OPERATOR_ID_BASE: u64 = 1 << 48;

/// The ids a node knows and their roles: its own cluster's meta server and replica
/// servers, and the nodes of other clusters with the meta server of each one's cluster.
/// Anything else is a client or, from [`OPERATOR_ID_BASE`] on, an operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Directory {
    pub meta: Id,
    pub replicas: Vec<Id>,
    /// A node of another cluster → that cluster's meta server (which names the cluster).
    pub remote: BTreeMap<Id, Id>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Meta,
    Replica,
    /// A node of the cluster whose meta server is `cluster`.
    Remote {
        cluster: Id,
    },
    Client,
    Operator,
}

impl Directory {
    pub fn role(&self, id: Id) -> Role {
        if id == self.meta {
            Role::Meta
        } else if self.replicas.contains(&id) {
            Role::Replica
        } else if let Some(cluster) = self.remote.get(&id) {
            Role::Remote { cluster: *cluster }
        } else if usize::from(id) as u64 >= OPERATOR_ID_BASE {
            Role::Operator
        } else {
            Role::Client
        }
    }

    /// The cluster (named by its meta server) `id` belongs to, if it is a node.
    pub fn cluster_of(&self, id: Id) -> Option<Id> {
        match self.role(id) {
            Role::Meta | Role::Replica => Some(self.meta),
            Role::Remote { cluster } => Some(cluster),
            Role::Client | Role::Operator => None,
        }
    }
}

/// The coarse rule: may a sender of `role` send `msg` at all? Handlers add the finer
/// checks that need state (the configured primary, the follower table's source, the
/// cluster a duplication request went to).
pub fn may_send(role: Role, msg: &Msg) -> bool {
    use Role::*;
    match msg {
        Msg::PeerDown { .. } => true,
        Msg::QueryConfig { .. } => true,
        Msg::Write { .. } | Msg::Read { .. } => matches!(role, Client | Operator),
        // What the cluster looks like (the client library asks it to route keys).
        Msg::QueryCluster => matches!(role, Client | Operator),
        Msg::CreateTable { .. }
        | Msg::AddDup { .. }
        | Msg::ModifyDup { .. }
        | Msg::SetFailMode { .. } => role == Operator,
        Msg::ConfigUpdate { .. }
        | Msg::AddSecondary { .. }
        | Msg::ProposeConfigReply { .. }
        | Msg::Registered { .. }
        | Msg::BeaconAck { .. }
        | Msg::DupUpdate { .. } => role == Meta,
        Msg::Register { .. }
        | Msg::Beacon { .. }
        | Msg::ProposeConfig { .. }
        | Msg::DupReport { .. } => role == Replica,
        Msg::Prepare { .. }
        | Msg::PrepareAck { .. }
        | Msg::GroupCheck { .. }
        | Msg::Learn { .. }
        | Msg::LearnDone { .. } => role == Replica,
        Msg::CreateFollower { .. }
        | Msg::QueryFollower { .. }
        | Msg::Checkpoint { .. }
        | Msg::Ship { .. }
        | Msg::CreateFollowerReply { .. }
        | Msg::QueryFollowerReply { .. }
        | Msg::ApplyReply { .. } => matches!(role, Remote { .. }),
        // Replies to clients and operators: a node answers them; a client's core checks
        // that the answer comes from where it asked.
        Msg::QueryConfigReply { .. } => matches!(role, Meta | Remote { .. }),
        Msg::WriteReply { .. } | Msg::ReadReply { .. } => role == Replica,
        Msg::CreateTableReply { .. }
        | Msg::AddDupReply { .. }
        | Msg::ModifyDupReply { .. }
        | Msg::SetFailModeReply { .. }
        | Msg::ClusterStatus { .. } => role == Meta,
    }
}
