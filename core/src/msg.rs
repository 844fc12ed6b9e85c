//! Every message and timer of the protocol. Each message carries what its receiver needs
//! to reject it when stale (a ballot, a request id).
use crate::dup::{CreateError, DupEntry, DupId, DupIdent, DupRecord, DupStatus, FailMode};
use crate::map::Map;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    // ---- client <-> meta ----
    /// Ask the meta server for a partition's configuration.
    QueryConfig {
        gpid: Gpid,
    },
    /// `None`: the meta server does not know the partition. `incarnation`: the life of
    /// the primary that the meta server believes alive (a client tells a restarted primary
    /// from the dead one it saw fail).
    QueryConfigReply {
        gpid: Gpid,
        config: Option<PartitionConfig>,
        incarnation: Option<u32>,
    },

    // ---- client <-> replica ----
    /// Set `key` to `value`, or delete it (`None`).
    Write {
        gpid: Gpid,
        req: ReqId,
        key: Key,
        value: Option<Value>,
    },
    WriteReply {
        gpid: Gpid,
        req: ReqId,
        result: Result<(), ErrorCode>,
    },
    Read {
        gpid: Gpid,
        req: ReqId,
        key: Key,
    },
    /// Ok(None): the key is absent.
    ReadReply {
        gpid: Gpid,
        req: ReqId,
        result: Result<Option<Value>, ErrorCode>,
    },

    // ---- replica <-> meta ----
    /// A replica server started with this incarnation (first boot or restart): it holds no
    /// volatile role state.
    Register {
        incarnation: u32,
    },
    /// A replica renews its lease (`seq` names the beacon; see `LeaseCfg`).
    Beacon {
        incarnation: u32,
        seq: u32,
    },
    /// The meta server heard beacon `seq` of life `incarnation`. `alive: false`: that life
    /// was declared dead (its roles were given away); the replica starts a new life.
    BeaconAck {
        incarnation: u32,
        seq: u32,
        alive: bool,
    },
    /// Life 0 in a `Register` means "no storage: assign me a life". The meta server
    /// answers with the new life, which the replica persists and then registers.
    Registered {
        incarnation: u32,
    },
    // Meta-to-replica messages name the incarnation they are meant for: a restarted
    // replica must not act on what the meta server decided about its previous life.
    /// A configuration the meta server committed; the receiver adopts it if newer.
    ConfigUpdate {
        config: PartitionConfig,
        incarnation: u32,
    },
    /// The meta server asks the primary to add `node` as a learner (potential secondary).
    AddSecondary {
        config: PartitionConfig,
        node: Id,
        incarnation: u32,
    },
    /// A primary proposes `config` (its ballot must be exactly the current one + 1).
    ProposeConfig {
        config: PartitionConfig,
        incarnation: u32,
    },
    /// Ok: the committed config. Err: the meta's current config.
    ProposeConfigReply {
        result: Result<PartitionConfig, PartitionConfig>,
        incarnation: u32,
    },

    // ---- replica <-> replica (PacificA) ----
    /// Two-phase write, phase one; carries the sender's config, commit point and `base`
    /// (see `GroupCheck`).
    /// `retain`: members keep their log above this decree (duplications still need it).
    Prepare {
        config: PartitionConfig,
        decree: Decree,
        entry: Entry,
        committed: Decree,
        base: Decree,
        retain: Decree,
    },
    PrepareAck {
        gpid: Gpid,
        ballot: Ballot,
        decree: Decree,
        ok: bool,
    },
    /// Propagates a new configuration (and the commit point) to the members. `base` is
    /// the primary's last decree when it adopted `config`: a member that adopts the
    /// ballot drops its entries beyond `base` from older ballots (never committed: the
    /// primary, a former member that ACKed every commit, would hold them). Every message
    /// of a ballot carries it, so whichever arrives first truncates, before any entry of
    /// the new ballot is taken.
    GroupCheck {
        config: PartitionConfig,
        committed: Decree,
        base: Decree,
        retain: Decree,
    },
    /// The primary's state up to its last prepared decree: its collapsed prefix and the
    /// log after it.
    Learn {
        config: PartitionConfig,
        snapshot: Snapshot,
        log: BTreeMap<Decree, Entry>,
        committed: Decree,
        retain: Decree,
    },
    /// The learner holds everything up to `learned`.
    LearnDone {
        gpid: Gpid,
        ballot: Ballot,
        learned: Decree,
    },

    // ---- duplication (source meta <-> source primary) ----
    /// The duplications of the receiver's partition, for the life `incarnation`.
    DupUpdate {
        gpid: Gpid,
        dups: BTreeMap<DupId, DupEntry>,
        incarnation: u32,
    },
    /// A source primary's progress on one duplication.
    DupReport {
        gpid: Gpid,
        dupid: DupId,
        progress: DupProgress,
    },

    // ---- duplication (source meta <-> follower meta) ----
    CreateFollower {
        source: DupIdent,
        table: u8,
        partitions: u8,
        replica_count: u8,
    },
    CreateFollowerReply {
        source: DupIdent,
        result: Result<(), CreateError>,
    },
    QueryFollower {
        table: u8,
    },
    QueryFollowerReply {
        table: u8,
        configs: Vec<PartitionConfig>,
    },

    // ---- duplication (source primary <-> follower primary) ----
    /// The source checkpoint of a follower partition, written through the follower's own
    /// replication as a mutation of `origin` (the source meta server) numbered `decree`.
    Checkpoint {
        gpid: Gpid,
        origin: Id,
        decree: Decree,
        data: Map<Key, Value>,
    },
    /// LOG: committed source mutations, consecutive decrees in order, each applied once
    /// through the follower's replication as a mutation of `origin` numbered by decree.
    Ship {
        gpid: Gpid,
        origin: Id,
        entries: Vec<(Decree, Op)>,
    },
    /// The follower committed the checkpoint or shipped mutation `decree` (and, since it
    /// applies them in order, everything of `origin` before it). Err(None): not the
    /// primary (ask again); Err(Some(reason)): refused.
    ApplyReply {
        gpid: Gpid,
        decree: Decree,
        result: Result<(), Option<String>>,
    },

    // ---- operator -> meta ----
    /// Create a table; its partitions get primaries as replicas are alive.
    CreateTable {
        table: u8,
        partitions: u8,
        replica_count: u8,
    },
    CreateTableReply {
        table: u8,
        result: Result<(), String>,
    },
    /// Duplicate `table` to `remote_table` of the cluster whose meta server is
    /// `remote_meta`. Full: starts in PREPARE (the follower table is created and the
    /// checkpoint copied). Log-only: starts in LOG; the follower table must exist, and the
    /// mutations still in each primary's log ship.
    AddDup {
        table: u8,
        remote_meta: Id,
        remote_table: u8,
        remote_replica_count: u8,
        full: bool,
    },
    AddDupReply {
        table: u8,
        result: Result<DupId, String>,
    },
    /// Change a duplication's status (the allowed table is `DupStatus::can_become`).
    ModifyDup {
        dupid: DupId,
        status: DupStatus,
    },
    ModifyDupReply {
        dupid: DupId,
        result: Result<DupStatus, String>,
    },
    /// What a duplication's primaries do with a batch the follower refuses.
    SetFailMode {
        dupid: DupId,
        mode: FailMode,
    },
    SetFailModeReply {
        dupid: DupId,
        result: Result<FailMode, String>,
    },
    /// What the meta server knows: configurations, live replicas, duplications.
    QueryCluster,
    ClusterStatus {
        configs: Vec<PartitionConfig>,
        alive: Vec<(Id, u32)>,
        dups: Vec<DupRecord>,
        followers: Vec<(u8, DupIdent)>,
    },

    // ---- from the driver ----
    /// The connection to `src` broke or could not be made (the node's QUIC driver), or the
    /// meta's failure detector declared `src` dead after its grace period (which is longer
    /// than the replica's lease, so `src` has stopped serving). `incarnation` identifies
    /// which life of `src` died.
    PeerDown {
        incarnation: u32,
    },
}

impl Msg {
    /// The variant name, for traces and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::QueryConfig { .. } => "QueryConfig",
            Msg::QueryConfigReply { .. } => "QueryConfigReply",
            Msg::Write { .. } => "Write",
            Msg::WriteReply { .. } => "WriteReply",
            Msg::Read { .. } => "Read",
            Msg::ReadReply { .. } => "ReadReply",
            Msg::Register { .. } => "Register",
            Msg::Registered { .. } => "Registered",
            Msg::Beacon { .. } => "Beacon",
            Msg::BeaconAck { .. } => "BeaconAck",
            Msg::ConfigUpdate { .. } => "ConfigUpdate",
            Msg::AddSecondary { .. } => "AddSecondary",
            Msg::ProposeConfig { .. } => "ProposeConfig",
            Msg::ProposeConfigReply { .. } => "ProposeConfigReply",
            Msg::Prepare { .. } => "Prepare",
            Msg::PrepareAck { .. } => "PrepareAck",
            Msg::GroupCheck { .. } => "GroupCheck",
            Msg::Learn { .. } => "Learn",
            Msg::LearnDone { .. } => "LearnDone",
            Msg::PeerDown { .. } => "PeerDown",
            Msg::DupUpdate { .. } => "DupUpdate",
            Msg::DupReport { .. } => "DupReport",
            Msg::CreateFollower { .. } => "CreateFollower",
            Msg::CreateFollowerReply { .. } => "CreateFollowerReply",
            Msg::QueryFollower { .. } => "QueryFollower",
            Msg::QueryFollowerReply { .. } => "QueryFollowerReply",
            Msg::Checkpoint { .. } => "Checkpoint",
            Msg::Ship { .. } => "Ship",
            Msg::ApplyReply { .. } => "ApplyReply",
            Msg::CreateTable { .. } => "CreateTable",
            Msg::CreateTableReply { .. } => "CreateTableReply",
            Msg::AddDup { .. } => "AddDup",
            Msg::AddDupReply { .. } => "AddDupReply",
            Msg::QueryCluster => "QueryCluster",
            Msg::ClusterStatus { .. } => "ClusterStatus",
            Msg::ModifyDup { .. } => "ModifyDup",
            Msg::ModifyDupReply { .. } => "ModifyDupReply",
            Msg::SetFailMode { .. } => "SetFailMode",
            Msg::SetFailModeReply { .. } => "SetFailModeReply",
        }
    }
}

/// Timers are abstract: one may fire at any time after it is set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// The client's per-request deadline.
    RequestTimeout,
    /// The source meta server's retry of an unanswered create-follower request.
    DupRetry,
    /// A client's pause before asking the meta server again.
    QueryBackoff,
    /// A source primary's pause before asking the follower cluster again where a
    /// follower primary is (none assigned yet).
    DupQuery,
    /// A source meta server's pause before asking again whether the follower table is
    /// ready.
    FollowerCheck,
    /// A replica's pause before registering again with a meta server it lost.
    Reregister,
    /// A restarted meta server's grace period: replicas that were alive re-register
    /// before it judges who is dead.
    MetaGrace,
    /// A replica's next beacon to the meta server.
    Beacon,
    /// A replica's lease ends (it stops serving until a beacon is acknowledged).
    LeaseExpiry,
    /// The meta server's failure detector for one replica: armed on every beacon it hears
    /// from it, for longer than the lease (SPEC.md, "Timing"); firing declares it dead.
    Grace(Id),
}

/// What a source primary reports about one duplication.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DupProgress {
    /// The checkpoint for the duplication is made, covering this decree.
    Checkpoint(Decree),
    /// The follower primary applied the checkpoint, which covers this decree.
    Applied(Decree),
    /// LOG: the follower committed every mutation up to this decree.
    Confirmed(Decree),
    /// The follower refused the checkpoint (the reason is for the operator).
    Refused(String),
    /// LOG, `FailMode::Slow`: the follower refused the batch starting at `from`; it is
    /// sent again after a pause. (`from` lets the meta server ignore a late report about
    /// a batch confirmed since.)
    Rejected { from: Decree, reason: String },
    /// `FailMode::Skip`: the follower refused the batch ending at `upto`; its `count`
    /// mutations are given up and count as confirmed.
    Skipped { upto: Decree, count: u32 },
}
