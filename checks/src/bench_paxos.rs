//! Single-decree Paxos behind a linearizable register, for `petrel-check bench`.
//!
//! The same protocol and system as stateright 0.31's `examples/paxos.rs` (three servers,
//! `clients` register clients that each put once and then get, an unordered non-duplicating
//! network, a linearizability history), written for this bench so that every engine runs the
//! very same `Model`. Properties: `linearizable` (always) and `value chosen` (sometimes).
//! With 2 clients it has 16,668 unique states, as stateright's own test of its example says.

use petrel_checks::engine::{ActorCodec, Codec, Fairness};
use stateright::actor::register::{RegisterActor, RegisterMsg};
use stateright::actor::{
    majority, model_peers, Actor, ActorModel, ActorModelAction, ActorModelState, Id, Network, Out,
};
use stateright::semantics::register::Register;
use stateright::semantics::LinearizabilityTester;
use stateright::{Model, Property};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// `(round, proposer)`, ordered by round first.
type Ballot = (u32, Id);
/// `(request id, requesting client, value)`.
type Proposal = (u64, Id, char);
type Accepted = Option<(Ballot, Proposal)>;

/// Messages between the Paxos servers.
#[derive(Clone, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub enum Px {
    /// Phase 1a.
    Prepare { ballot: Ballot },
    /// Phase 1b: the promise, with what the acceptor last accepted.
    Promise { ballot: Ballot, accepted: Accepted },
    /// Phase 2a.
    Accept { ballot: Ballot, proposal: Proposal },
    /// Phase 2b.
    Accepted { ballot: Ballot },
    /// The value is chosen.
    Decided { ballot: Ballot, proposal: Proposal },
}

/// One server: proposer and acceptor at once.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct Server {
    /// Highest ballot seen (promised).
    ballot: Ballot,
    /// What this server proposes in its current ballot.
    proposal: Option<Proposal>,
    /// Promises collected for the current ballot (with each promiser's accepted value).
    promises: BTreeMap<Id, Accepted>,
    /// Servers that accepted the current ballot's proposal.
    accepts: BTreeSet<Id>,
    /// What this server last accepted.
    accepted: Accepted,
    decided: bool,
}

/// The server actor.
#[derive(Clone)]
pub struct PaxosServer {
    peers: Vec<Id>,
}

type Msg = RegisterMsg<u64, char, Px>;

impl Actor for PaxosServer {
    type Msg = Msg;
    type State = Server;
    type Timer = ();
    type Random = ();
    type Storage = ();

    fn on_start(&self, _: Id, _: &Option<()>, _: &mut Out<Self>) -> Server {
        Server {
            ballot: (0, Id::from(0)),
            proposal: None,
            promises: BTreeMap::new(),
            accepts: BTreeSet::new(),
            accepted: None,
            decided: false,
        }
    }

    fn on_msg(&self, me: Id, st: &mut Cow<Server>, src: Id, msg: Msg, o: &mut Out<Self>) {
        use RegisterMsg::{Get, GetOk, Internal, Put, PutOk};
        let quorum = majority(self.peers.len() + 1);
        if st.decided {
            // Once decided, a server only answers reads.
            if let Get(req) = msg {
                if let Some((_, (_, _, v))) = st.accepted {
                    o.send(src, GetOk(req, v));
                }
            }
            return;
        }
        match msg {
            Put(req, v) if st.proposal.is_none() => {
                let s = st.to_mut();
                s.ballot = (s.ballot.0 + 1, me);
                s.proposal = Some((req, src, v));
                s.promises = BTreeMap::from([(me, s.accepted)]);
                s.accepts = BTreeSet::new();
                let ballot = s.ballot;
                o.broadcast(&self.peers, &Internal(Px::Prepare { ballot }));
            }
            Internal(Px::Prepare { ballot }) if st.ballot < ballot => {
                st.to_mut().ballot = ballot;
                let accepted = st.accepted;
                o.send(src, Internal(Px::Promise { ballot, accepted }));
            }
            Internal(Px::Promise { ballot, accepted }) if ballot == st.ballot => {
                let s = st.to_mut();
                s.promises.insert(src, accepted);
                if s.promises.len() == quorum {
                    // The highest accepted proposal among the promises wins over our own.
                    let highest = s.promises.values().max().copied().flatten();
                    let proposal = match highest {
                        Some((_, p)) => p,
                        None => match s.proposal {
                            Some(p) => p,
                            None => return,
                        },
                    };
                    s.proposal = Some(proposal);
                    s.accepted = Some((ballot, proposal));
                    s.accepts.insert(me);
                    o.broadcast(&self.peers, &Internal(Px::Accept { ballot, proposal }));
                }
            }
            Internal(Px::Accept { ballot, proposal }) if st.ballot <= ballot => {
                let s = st.to_mut();
                s.ballot = ballot;
                s.accepted = Some((ballot, proposal));
                o.send(src, Internal(Px::Accepted { ballot }));
            }
            Internal(Px::Accepted { ballot }) if ballot == st.ballot => {
                let s = st.to_mut();
                s.accepts.insert(src);
                if s.accepts.len() == quorum {
                    s.decided = true;
                    if let Some(proposal) = s.proposal {
                        o.broadcast(&self.peers, &Internal(Px::Decided { ballot, proposal }));
                        o.send(proposal.1, PutOk(proposal.0));
                    }
                }
            }
            Internal(Px::Decided { ballot, proposal }) => {
                let s = st.to_mut();
                s.ballot = ballot;
                s.accepted = Some((ballot, proposal));
                s.decided = true;
            }
            _ => {}
        }
    }
}

type Inner = ActorModel<RegisterActor<PaxosServer>, (), LinearizabilityTester<Id, Register<char>>>;

/// The bench model: three servers and `clients` clients.
pub struct Paxos {
    inner: Inner,
}

impl Paxos {
    pub fn new(clients: usize) -> Paxos {
        let servers = 3;
        let inner = ActorModel::new((), LinearizabilityTester::new(Register('\0')))
            .actors((0..servers).map(|i| {
                RegisterActor::Server(PaxosServer {
                    peers: model_peers(i, servers),
                })
            }))
            .actors((0..clients).map(|_| RegisterActor::Client {
                put_count: 1,
                server_count: servers,
            }))
            .init_network(Network::new_unordered_nonduplicating([]))
            .record_msg_in(RegisterMsg::record_returns)
            .record_msg_out(RegisterMsg::record_invocations);
        Paxos { inner }
    }
}

impl Model for Paxos {
    type State =
        ActorModelState<RegisterActor<PaxosServer>, LinearizabilityTester<Id, Register<char>>>;
    type Action = ActorModelAction<Msg, (), ()>;

    fn init_states(&self) -> Vec<Self::State> {
        self.inner.init_states()
    }

    fn actions(&self, s: &Self::State, actions: &mut Vec<Self::Action>) {
        self.inner.actions(s, actions)
    }

    fn next_state(&self, s: &Self::State, a: Self::Action) -> Option<Self::State> {
        self.inner.next_state(s, a)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("linearizable", |_, s: &Self::State| {
                s.history.serialized_history().is_some()
            }),
            Property::sometimes("value chosen", |_, s: &Self::State| {
                s.network
                    .iter_deliverable()
                    .any(|e| matches!(e.msg, RegisterMsg::GetOk(_, v) if *v != '\0'))
            }),
        ]
    }
}

impl Fairness for Paxos {
    /// No `eventually` property: fairness is never asked for.
    fn fair_class(&self, _: &Self::State, _: &Self::Action) -> Option<u64> {
        None
    }

    fn codec(&self) -> Box<dyn Codec<Self::State>> {
        Box::new(ActorCodec::default())
    }
}
