//! The scenario catalogue: small, exhaustively checkable deployments, each tied to what it
//! is meant to exercise (a seed incident where there is one).
use petrel_core::ClientOp;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    /// Replica servers of the (single) cluster.
    pub replicas: u8,
    pub max_replica_count: u8,
    /// Members per partition at boot (0: the meta server assigns at run time).
    pub bootstrap_members: u8,
    /// One entry per client: its operations on the partition's register.
    pub clients: Vec<Vec<ClientOp>>,
    /// Sends per client operation before it gives up.
    pub max_attempts: u8,
    /// Total replica crashes the environment may inject (not just concurrent ones).
    pub crashes: u8,
    /// Crashed replicas may restart (and, for liveness, eventually do).
    pub recover: bool,
    /// Clients arm a request deadline (a timer that may fire any time).
    pub request_timeout: bool,
    /// LIVE-2 applies: every client operation eventually succeeds.
    pub expect_success: bool,
}

impl Scenario {
    fn base(name: &'static str, description: &'static str) -> Scenario {
        Scenario {
            name,
            description,
            replicas: 3,
            max_replica_count: 3,
            bootstrap_members: 3,
            clients: vec![vec![ClientOp::Put(1)]],
            max_attempts: 3,
            crashes: 1,
            recover: false,
            request_timeout: false,
            expect_success: true,
        }
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            clients: vec![vec![ClientOp::Put(1)], vec![ClientOp::Get]],
            ..Scenario::base(
                "replication",
                "1 meta, 3 replicas, 1 partition, 2 clients (put, get), 1 crash of any replica",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 1,
            clients: vec![vec![ClientOp::Put(1), ClientOp::Get]],
            recover: true,
            ..Scenario::base(
                "learner-primary-dies",
                "S4: a learner is being added when the primary dies; the learner is promoted and must serve reads",
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::Put(1), ClientOp::Get]],
            ..Scenario::base(
                "client-primary-crash",
                "S5: the primary crashes under a client; the client must fail fast, refresh and finish on the new primary",
            )
        },
    ]
}

pub fn scenario(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}
