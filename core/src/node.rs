//! One actor type for every role, so one model (and one node binary) can host them all.
use crate::client::{self, ClientCfg, ClientState};
use crate::meta::{self, MetaCfg, MetaState, MetaStorage};
use crate::msg::{Msg, Timer};
use crate::replica::{self, ReplicaCfg, ReplicaState, ReplicaStorage};
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Node {
    Meta(MetaCfg),
    Replica(ReplicaCfg),
    Client(ClientCfg),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeState {
    Meta(MetaState),
    Replica(ReplicaState),
    Client(ClientState),
}

impl NodeState {
    /// The life of this node that a driver announces to its peers (a replica's durable
    /// boot count). A peer's `PeerDown` names the life it saw die.
    pub fn incarnation(&self) -> u32 {
        match self {
            NodeState::Replica(r) => r.incarnation,
            _ => 1,
        }
    }
}

/// What survives a crash. Clients keep nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeStorage {
    Meta(MetaStorage),
    Replica(ReplicaStorage),
}

impl Actor for Node {
    type Msg = Msg;
    type Timer = Timer;
    type State = NodeState;
    type Storage = NodeStorage;
    type Random = ();

    fn name(&self) -> String {
        match self {
            Node::Meta(_) => "meta",
            Node::Replica(_) => "replica",
            Node::Client(_) => "client",
        }
        .to_string()
    }

    fn on_start(&self, id: Id, storage: &Option<NodeStorage>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Meta(cfg) => {
                let st = match storage {
                    Some(NodeStorage::Meta(m)) => Some(m),
                    _ => None,
                };
                NodeState::Meta(meta::on_start(cfg, st, o))
            }
            Node::Replica(cfg) => {
                let st = match storage {
                    Some(NodeStorage::Replica(r)) => Some(r),
                    _ => None,
                };
                NodeState::Replica(replica::on_start(cfg, id, st, o))
            }
            Node::Client(cfg) => NodeState::Client(client::on_start(cfg, o)),
        }
    }

    fn on_msg(&self, id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, state.to_mut()) {
            (Node::Meta(cfg), NodeState::Meta(s)) => meta::on_msg(cfg, id, s, src, msg, o),
            (Node::Replica(cfg), NodeState::Replica(s)) => replica::on_msg(cfg, id, s, src, msg, o),
            (Node::Client(cfg), NodeState::Client(s)) => client::on_msg(cfg, s, src, msg, o),
            _ => {}
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<NodeState>, timer: &Timer, o: &mut Out<Self>) {
        match (self, state.to_mut()) {
            (Node::Client(cfg), NodeState::Client(s)) => client::on_timeout(cfg, s, timer, o),
            (Node::Meta(cfg), NodeState::Meta(s)) => meta::on_timeout(cfg, id, s, timer, o),
            (Node::Replica(cfg), NodeState::Replica(s)) => replica::on_timeout(cfg, s, timer, o),
            _ => {}
        }
    }
}
