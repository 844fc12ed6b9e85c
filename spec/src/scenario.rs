//! The scenario catalogue: small, exhaustively checkable deployments, each tied to what it
//! is meant to exercise (a seed incident where there is one).
use petrel_core::dup::{DupStatus, FailMode};
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
    /// A second cluster holding a follower table of a duplication of the table.
    pub follower: Option<Follower>,
    /// Replicas garbage-collect their committed log (as far as duplications allow).
    pub gc: bool,
    /// Messages a node of the partner cluster may forge and send to cluster A (0: no
    /// foreign sender).
    pub forges: u8,
    /// Disks the environment may replace (a crash and an immediate restart with empty
    /// storage), besides `crashes`.
    pub replaces: u8,
    /// Meta↔replica links the environment may cut (for good).
    pub cuts: u8,
    /// Replicas hold leases from the meta server (beacons), and the meta server detects
    /// failures by a grace timer; otherwise the lease is abstracted away (SPEC.md).
    pub leases: bool,
    /// Which nodes the environment may crash (within `crashes`) and, with `recover`,
    /// restart.
    pub crashable: Crashable,
    /// A crashed replica's connections break at its peers too: the other replicas of its
    /// cluster (and, for a follower replica, the source primaries shipping to it) get
    /// `PeerDown`, and so does a replica whose message to a crashed node bounced, as the
    /// node's driver does. Off in the scenarios that predate it: on, they grow 2.5–7×
    /// (replication 0.25M → 1.6M states) and find nothing new (SPEC.md, "Environment").
    pub replica_peer_down: bool,
    /// LIVE-5 applies: every partition of cluster A gets back to its replica count.
    pub expect_full_replication: bool,
    /// Connections between two live replicas the environment may break (SPEC.md, "Fault
    /// model"): the messages in flight between them are lost and each gets the other's
    /// `PeerDown`. What a partition shorter than the failure detector does to a node.
    pub link_breaks: u8,
    /// The crash is certain, not just possible: crashes are weakly fair (while one may
    /// happen, one eventually does), and LIVE-5 is judged after it — so a table that was
    /// whole at boot must be whole again *after* the fault, not merely once.
    pub crash_certain: bool,
}

/// The nodes a scenario's environment may crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crashable {
    /// Cluster A's replica servers.
    pub replicas: bool,
    /// Cluster A's meta server (it restarts from its storage).
    pub meta: bool,
    /// The follower cluster's meta server.
    pub follower_meta: bool,
    /// The follower cluster's replica servers.
    pub follower_replicas: bool,
}

impl Crashable {
    pub const REPLICAS: Crashable = Crashable {
        replicas: true,
        meta: false,
        follower_meta: false,
        follower_replicas: false,
    };
}

/// The follower cluster of a duplication scenario.
#[derive(Clone, Debug)]
pub struct Follower {
    pub replicas: u8,
    /// The follower table's replica count.
    pub replica_count: u8,
    /// The follower meta server accepts the source cluster's create request.
    pub meta_accepts: bool,
    /// The follower replicas accept the source cluster's checkpoint.
    pub replicas_accept: bool,
    /// Create-follower replies the network may lose.
    pub lose_create_replies: u8,
    /// The duplication's status at boot: PREPARE (full duplication: the follower table
    /// is created and the checkpoint copied) or LOG (log-only, added while the table was
    /// empty: the follower table exists at boot and mutations ship from decree 1).
    pub start: DupStatus,
    /// What the source primaries do with a batch the follower refuses.
    pub fail_mode: FailMode,
}

impl Follower {
    fn ok() -> Follower {
        Follower {
            replicas: 1,
            replica_count: 1,
            meta_accepts: true,
            replicas_accept: true,
            lose_create_replies: 0,
            start: DupStatus::Prepare,
            fail_mode: FailMode::Slow,
        }
    }
}

impl Scenario {
    fn base(name: &'static str, description: &'static str) -> Scenario {
        Scenario {
            name,
            description,
            replicas: 3,
            max_replica_count: 3,
            bootstrap_members: 3,
            clients: vec![vec![ClientOp::put("k", "1")]],
            max_attempts: 3,
            crashes: 1,
            recover: false,
            request_timeout: false,
            expect_success: true,
            follower: None,
            gc: false,
            forges: 0,
            replaces: 0,
            cuts: 0,
            leases: false,
            crashable: Crashable::REPLICAS,
            replica_peer_down: false,
            expect_full_replication: false,
            link_breaks: 0,
            crash_certain: false,
        }
    }

    fn dup(name: &'static str, description: &'static str, follower: Follower) -> Scenario {
        Scenario {
            replicas: 1,
            max_replica_count: 1,
            bootstrap_members: 1,
            clients: vec![],
            crashes: 0,
            follower: Some(follower),
            ..Scenario::base(name, description)
        }
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1")], vec![ClientOp::get("k"), ClientOp::get("k")]],
            ..Scenario::base(
                "replication",
                "1 meta, 3 replicas, 1 partition, 2 clients (put; get, get), 1 crash of any replica",
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1")], vec![ClientOp::put("k", "2")]],
            ..Scenario::base(
                "two-writers",
                "3 replicas, two concurrent writers, 1 crash: a deposed primary's prepares still in flight",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1")], vec![ClientOp::put("k", "2")]],
            recover: true,
            max_attempts: 1,
            expect_success: false,
            ..Scenario::base(
                "stale-learner",
                "2 replicas, two writers, 1 crash with restart: the restarted node holds an entry the new primary replaced",
            )
        },
        Scenario {
            bootstrap_members: 2,
            ..Scenario::base(
                "grow-while-failing",
                "3 replicas, table at 2 of 3: a learner is added while a member crashes",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 1,
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::get("k")]],
            recover: true,
            ..Scenario::base(
                "learner-primary-dies",
                "S4: a learner is being added when the primary dies; the learner is promoted and must serve reads",
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::get("k")]],
            ..Scenario::base(
                "client-primary-crash",
                "S5: the primary crashes under a client; the client must fail fast, refresh and finish on the new primary",
            )
        },
        Scenario {
            crashes: 1,
            recover: true,
            ..Scenario::dup(
                "dup-restart-in-prepare",
                "S1: A's only replica restarts while the duplication is in PREPARE because B refuses A",
                Follower { meta_accepts: false, ..Follower::ok() },
            )
        },
        Scenario::dup(
            "dup-create-reply-lost",
            "S2: B creates the follower table, the reply is lost, A retries and must progress",
            Follower { lose_create_replies: 1, ..Follower::ok() },
        ),
        Scenario::dup(
            "dup-single-replica-follower",
            "S3: a follower table of one replica must be found ready and reach LOG",
            Follower::ok(),
        ),
        Scenario::dup(
            "dup-auth-mismatch",
            "B's replicas may not read A: the duplication must show a stall reason, not hang",
            Follower { replicas_accept: false, ..Follower::ok() },
        ),
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::put("k", "2")]],
            crashes: 1,
            gc: true,
            ..Scenario::dup(
                "dup-log-shipping",
                "LOG: two writes on A ship to B while A's primary may crash; replicas collect the log as far as B confirmed",
                Follower { start: DupStatus::Log, ..Follower::ok() },
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::del("k")]],
            ..Scenario::dup(
                "dup-log-refused",
                "LOG, fail mode slow: B's replicas refuse A's mutations; the duplication must say why while it retries",
                Follower { start: DupStatus::Log, replicas_accept: false, ..Follower::ok() },
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::del("k")]],
            ..Scenario::dup(
                "dup-log-skip",
                "LOG, fail mode skip: B's replicas refuse A's mutations; A gives them up, counted, and moves on",
                Follower { start: DupStatus::Log, replicas_accept: false, fail_mode: FailMode::Skip, ..Follower::ok() },
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1")], vec![ClientOp::get("k")]],
            crashes: 0,
            cuts: 1,
            leases: true,
            ..Scenario::base(
                "partition-meta-primary",
                "2 replicas with leases: the meta server may lose its link to the primary, which still reaches clients and its secondary",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1")]],
            replaces: 1,
            crashes: 0,
            ..Scenario::base(
                "disk-replaced",
                "2 replicas: a member's disk is replaced at any moment (it restarts empty before the meta notices); it must rejoin as a new life and learn",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1")]],
            forges: 1,
            ..Scenario::dup(
                "foreign-sender",
                "a node of the partner cluster B, holding a valid certificate, sends A any message kind while A writes and ships to B",
                Follower { start: DupStatus::Log, ..Follower::ok() },
            )
        },
        Scenario {
            replica_peer_down: true,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1")]],
            crashable: Crashable { replicas: false, meta: true, ..Crashable::REPLICAS },
            recover: true,
            expect_full_replication: true,
            ..Scenario::base(
                "meta-restart-reconfig",
                "3 replicas, table at 2 of 3: the meta server restarts while it adds the third (a proposal lost with it); the table must get back to 3",
            )
        },
        Scenario {
            replica_peer_down: true,
            clients: vec![vec![ClientOp::put("k", "1")]],
            crashes: 1,
            recover: true,
            crashable: Crashable {
                replicas: false,
                meta: false,
                follower_meta: true,
                follower_replicas: true,
            },
            ..Scenario::dup(
                "dup-follower-crash",
                "LOG: A writes and ships while B's meta server or B's primary crashes and restarts; A must find B's primary again and B converge",
                Follower { start: DupStatus::Log, ..Follower::ok() },
            )
        },
        Scenario {
            replica_peer_down: true,
            replicas: 3,
            max_replica_count: 3,
            bootstrap_members: 3,
            clients: vec![vec![ClientOp::put("k", "1")]],
            crashes: 1,
            gc: true,
            ..Scenario::dup(
                "dup-log-promote",
                "LOG with 3 replicas: A's primary crashes after B confirmed a write its secondaries hold uncommitted; the promoted primary must not count it as shipped before it re-commits",
                Follower { start: DupStatus::Log, ..Follower::ok() },
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::get("k")]],
            link_breaks: 1,
            replica_peer_down: true,
            ..Scenario::base(
                "link-break-crash",
                "3 replicas, a client writes then reads: one replica crashes and one connection between two live replicas breaks",
            )
        },
        Scenario {
            bootstrap_members: 2,
            link_breaks: 1,
            crashes: 0,
            replica_peer_down: true,
            expect_full_replication: true,
            ..Scenario::base(
                "link-break-learn",
                "3 replicas, table at 2 of 3, a client writes: the primary↔learner connection breaks once (lessons, reports and prepares lost or crossed); the table must get back to 3 and keep the write",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![vec![ClientOp::put("k", "1"), ClientOp::get("k")]],
            crashes: 0,
            link_breaks: 1,
            ..Scenario::base(
                "link-break-prepare",
                "2 replicas, a client writes then reads: the primary↔secondary connection breaks once (a partition that timed it out), losing prepares or their ACKs; the write must still commit",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 2,
            clients: vec![],
            recover: true,
            expect_full_replication: true,
            crash_certain: true,
            ..Scenario::base(
                "restart-before-detected",
                "2 replicas: a member crashes and its new life registers before the meta learnt the old one is gone (its PeerDown, or with leases its grace timer, comes later); the table must get back to 2",
            )
        },
        Scenario {
            replicas: 2,
            max_replica_count: 2,
            bootstrap_members: 1,
            clients: vec![],
            recover: true,
            expect_full_replication: true,
            crash_certain: true,
            ..Scenario::base(
                "learner-restart",
                "2 replicas, table at 1 of 2: a replica crashes (the learner while it learns, or the primary) and restarts; the table must get back to 2",
            )
        },
        Scenario {
            clients: vec![vec![ClientOp::put("k", "1")]],
            link_breaks: 1,
            replica_peer_down: true,
            ..Scenario::dup(
                "dup-link-break",
                "LOG: A writes and ships while a connection breaks once (A↔B shipping, or within B's partition); B must converge",
                Follower { start: DupStatus::Log, replicas: 2, replica_count: 2, ..Follower::ok() },
            )
        },
    ]
}

pub fn scenario(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}
