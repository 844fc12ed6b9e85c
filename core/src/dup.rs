//! Cross-cluster duplication: the status machine, the meta server's record of a
//! duplication, and the follower side's bookkeeping. The transitions live in `meta.rs`
//! (source and follower meta server) and `replica.rs` (source primary's duplicator,
//! follower primary); this module holds the types and the pure rules they share.
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

pub type DupId = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DupStatus {
    Init,
    /// Every source primary makes a checkpoint covering `min_checkpoint_decree`.
    Prepare,
    /// The follower table exists; the checkpoint is copied to its primaries.
    App,
    /// Mutations after the checkpoint are shipped.
    Log,
    Pause,
    Removed,
}

impl DupStatus {
    /// The allowed status changes: any→itself, INIT→PREPARE, PREPARE→APP,
    /// APP|PAUSE|INIT→LOG, LOG→PAUSE, any→REMOVED.
    pub fn can_become(self, to: DupStatus) -> bool {
        use DupStatus::*;
        self == to
            || to == Removed
            || matches!(
                (self, to),
                (Init, Prepare) | (Prepare, App) | (App | Pause | Init, Log) | (Log, Pause)
            )
    }
    /// Init and Removed are invalid: no duplicator exists for them.
    pub fn is_valid(self) -> bool {
        !matches!(self, DupStatus::Init | DupStatus::Removed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FailMode {
    /// A batch the follower refuses is sent again after a pause, forever, with the
    /// refusal shown as the duplication's stall reason (the default: nothing is lost).
    Slow,
    /// A batch the follower refuses is skipped: counted as confirmed and counted in the
    /// record's `skipped`, accepting that the follower misses it.
    Skip,
}

impl FailMode {
    /// The operator's name.
    pub fn name(self) -> &'static str {
        match self {
            FailMode::Slow => "slow",
            FailMode::Skip => "skip",
        }
    }
    pub fn parse(s: &str) -> Option<FailMode> {
        match s.to_ascii_lowercase().as_str() {
            "slow" => Some(FailMode::Slow),
            "skip" => Some(FailMode::Skip),
            _ => None,
        }
    }
}

impl std::fmt::Display for FailMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a follower table belongs to: the source meta server, table and duplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DupIdent {
    pub source_meta: Id,
    pub table: u8,
    pub dupid: DupId,
}

/// What the source meta server's duplicators need to know (pushed to primaries).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DupEntry {
    pub status: DupStatus,
    pub remote_meta: Id,
    pub remote_table: u8,
    /// Bumped on every status or fail-mode change: a primary takes the settings of the
    /// highest version it heard (announcements may arrive out of order).
    pub version: u32,
    pub fail_mode: FailMode,
    /// The receiving partition's confirmed decree as the meta server persisted it: the
    /// follower holds every source mutation up to here. A LOG duplicator resumes after it,
    /// and no replica collects log entries above it.
    pub confirmed: Decree,
}

/// The source meta server's record of one duplication (durable).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DupRecord {
    pub dupid: DupId,
    pub table: u8,
    pub status: DupStatus,
    /// Status and fail-mode changes so far (see `DupEntry::version`).
    pub version: u32,
    pub remote_meta: Id,
    pub remote_table: u8,
    pub remote_replica_count: u8,
    pub fail_mode: FailMode,
    /// Partitions whose primary reported a checkpoint, with its decree.
    pub checkpoints: BTreeMap<u8, Decree>,
    /// Partitions whose follower primary applied the checkpoint.
    pub applied: BTreeSet<u8>,
    /// Per partition: the follower holds every source mutation up to this decree (set
    /// from the applied checkpoint, then advanced by the primaries' reports).
    pub confirmed: BTreeMap<u8, Decree>,
    /// Source mutations given up under `FailMode::Skip` (the follower refused them).
    pub skipped: u32,
    /// Partitions whose follower refuses shipped mutations, with the follower's reason,
    /// until one of their batches is confirmed again. The stall names the lowest.
    pub refusing: BTreeMap<u8, String>,
    /// Create-follower requests sent without an answer.
    pub create_attempts: u8,
    /// Why the duplication cannot progress (shown to the operator), if it cannot.
    pub stall: Option<String>,
}

impl DupRecord {
    /// The stall while followers refuse mutations: derived from `refusing`, so it always
    /// names a partition that still refuses, with that partition's own reason.
    pub fn refusal_stall(&self) -> Option<String> {
        let (p, reason) = self.refusing.iter().next()?;
        let more = match self.refusing.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        Some(format!(
            "follower refused mutations of partition {p}{more}: {reason}"
        ))
    }

    /// What the primary of `partition` needs to know.
    pub fn entry(&self, partition: u8) -> DupEntry {
        DupEntry {
            status: self.status,
            remote_meta: self.remote_meta,
            remote_table: self.remote_table,
            version: self.version,
            fail_mode: self.fail_mode,
            confirmed: self.confirmed.get(&partition).copied().unwrap_or(0),
        }
    }
    pub fn set_fail_mode(&mut self, mode: FailMode) {
        if mode != self.fail_mode {
            self.fail_mode = mode;
            self.version = self.version.saturating_add(1);
        }
    }
    pub fn set_status(&mut self, status: DupStatus) {
        if status != self.status {
            self.status = status;
            self.version = self.version.saturating_add(1);
        }
    }
}

impl DupEntry {
    /// Merge an announcement into what a replica knows: the newer status wins, and the
    /// confirmed decree only grows (an older announcement may arrive late).
    pub fn merge(known: Option<&DupEntry>, heard: &DupEntry) -> DupEntry {
        match known {
            Some(k) if k.version > heard.version => DupEntry {
                confirmed: k.confirmed.max(heard.confirmed),
                ..k.clone()
            },
            Some(k) => DupEntry {
                confirmed: k.confirmed.max(heard.confirmed),
                ..heard.clone()
            },
            None => heard.clone(),
        }
    }
}

/// Create-follower requests are retried this many times before the record stalls.
pub const MAX_CREATE_ATTEMPTS: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CreateError {
    /// The follower cluster does not accept duplication from the source.
    Refused(String),
    /// A table of that name exists and belongs to another duplication.
    Exists,
}

/// The follower meta server's answer to a create-follower request, given what it holds
/// under that name: a repeat of a request that already took effect for the same source
/// duplication is success (seed S2); "exists" is only for another owner.
pub fn follower_answer(existing: Option<&DupIdent>, source: &DupIdent) -> Result<(), CreateError> {
    match existing {
        None => Ok(()),
        Some(owner) if owner == source => Ok(()),
        Some(_) => Err(CreateError::Exists),
    }
}

/// The "follower ready" rule for one follower partition: it has a primary, and (since
/// each follower primary has applied the checkpoint before the source asks) nothing more.
/// Secondaries are the follower cluster's own business: its meta server adds them, and a
/// table of one replica has none (seed S3).
pub fn follower_partition_ready(config: &PartitionConfig, demand_secondary: bool) -> bool {
    config.primary.is_some() && (!demand_secondary || !config.secondaries.is_empty())
}

/// The source primary's duplicator for one duplication.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Duplicator {
    pub entry: DupEntry,
    /// The decree the checkpoint must cover; derived from the applied state on every
    /// start of the duplicator (seed S1: never left at an invalid value).
    pub min_checkpoint_decree: Option<Decree>,
    /// The checkpoint made for this duplication.
    pub checkpoint: Option<Decree>,
    /// APP and LOG: the follower primary the checkpoint or mutations go to, once known.
    pub target: Option<Id>,
    /// A follower configuration query is outstanding.
    pub asking: bool,
    /// APP: the follower applied the checkpoint.
    pub applied: bool,
    /// LOG: the follower committed every mutation up to here (starts at the meta's
    /// persisted value); `confirmed <= shipped <= committed` always.
    pub confirmed: Decree,
    /// LOG: the last decree sent. One batch is in flight at a time, so the follower sees
    /// decrees in order; a lost batch is resent from `confirmed` once the link resets.
    pub shipped: Decree,
    /// LOG: the follower's refusal of the batch after `confirmed` was reported. Retries
    /// report it once, not once per retry (reports to a meta server that is not reading
    /// them would pile up without bound).
    pub rejected: bool,
}

/// Mutations per shipped batch in the model (a deployment chooses its own).
pub const SHIP_BATCH: u32 = 2;

impl DupStatus {
    /// The operator's name (errors, the admin CLI, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            DupStatus::Init => "INIT",
            DupStatus::Prepare => "PREPARE",
            DupStatus::App => "APP",
            DupStatus::Log => "LOG",
            DupStatus::Pause => "PAUSE",
            DupStatus::Removed => "REMOVED",
        }
    }
}

impl std::fmt::Display for DupStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
