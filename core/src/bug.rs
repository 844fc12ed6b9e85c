//! Deliberately wrong transitions ("mutants"), off unless a checker switches them on.
//!
//! Each bug re-introduces a known failure so the checker can show that the property meant
//! to catch it bites. A deployed node always runs with `Bugs::none()`.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// S4 (Garnet): a learner promoted straight to primary keeps its `recovering` flag.
    RecoveringNotCleared,
    /// S5 (Pegasus Go client): on failure the client retries the same node, never
    /// refreshing its routing from the meta server.
    ClientNoRefresh,
    /// S5 root cause: a broken connection does not fail the pending request.
    ClientIgnoresPeerDown,
    /// The primary commits after ACKs from all but one secondary.
    CommitWithoutAllAcks,
    /// A secondary accepts a prepare carrying an older ballot.
    AcceptStalePrepare,
    /// The meta server accepts a proposal whose ballot is not exactly current + 1.
    MetaAcceptsStaleBallot,
    /// The meta server's failure detector declares a replica dead without its lease having
    /// expired (the replica is still serving).
    FdSkipLease,
    /// A replica adopts a new configuration without persisting it.
    ForgetToPersistBallot,
    /// A learner copies only the primary's uncommitted entries (an incremental learn that
    /// skips the checkpoint) yet takes the primary's commit point.
    LearnSkipsCheckpoint,
    /// The primary serves reads from the latest prepared (uncommitted) value.
    ReadUncommitted,
    /// A learner keeps a log entry it already had instead of taking the primary's.
    LearnerKeepsStaleEntries,
    /// S1 (Pegasus): a duplicator restored on restart or primary switch leaves
    /// `min_checkpoint_decree` invalid and triggers a checkpoint with it.
    MinCheckpointReset,
    /// S2 (Pegasus): the follower meta answers "exists" to a repeat of the same
    /// duplication's create request, and the source treats that as a failure and retries.
    AppExistIsFailure,
    /// S3 (Pegasus): the follower-ready check demands a secondary.
    ReadyNeedsSecondary,
    /// A refused checkpoint or creation sets no stall reason.
    DupAuthSilent,
    /// The source meta server moves a duplication from PREPARE straight to LOG.
    DupPrepareToLog,
    /// Log garbage collection ignores duplications: entries not yet confirmed by the
    /// follower are collected.
    DupGcBeforeConfirm,
    /// The duplicator ships prepared but uncommitted mutations.
    DupShipUncommitted,
    /// A duplicator restored on a primary switch or restart does not look up the
    /// follower primary; it waits for one that never comes.
    DupSwitchForgetsFollower,
    /// The follower primary applies a repeated source mutation again instead of
    /// answering it as done (a resend after a source primary switch).
    FollowerNoDedup,
    /// The source meta server ignores a follower's refusal of shipped mutations: the
    /// duplication stays in LOG, retrying forever, with no stall reason.
    DupLogRefusalSilent,
    /// Under `FailMode::Skip` a refused batch counts as confirmed but is not counted as
    /// skipped: the record claims the follower holds what it never applied.
    DupSkipUncounted,
    /// A replica adopts a `ConfigUpdate` from any sender, not only from its meta server.
    ConfigFromAnyone,
    /// A replica applies a duplication checkpoint from any sender into any partition, not
    /// only from the cluster its follower table was created for.
    CheckpointFromAnySource,
    /// A replica whose disk was wiped or replaced takes life 1 again instead of asking the
    /// meta server for a new one: the meta takes it for the member that held the data.
    EmptyDiskSameLife,
    /// A primary serves reads and writes after its lease lapsed.
    LeaseIgnored,
    /// A duplicator asking the follower cluster for its primary gives up when the follower
    /// meta server cannot be reached (its query lost with the connection): it asks again
    /// only if a later reply comes, and none does.
    DupQueryNotRetried,
    /// A primary restoring its duplicators takes the meta server's confirmed decree even
    /// beyond its own commit point (a promoted primary that has not yet re-committed what
    /// it inherited), and counts it as shipped.
    DupConfirmedUnclamped,
    /// A primary asked to add a secondary it is already teaching ignores the request: a
    /// caught-up learner whose proposal died with a restarted meta server never joins.
    AddSecondaryIgnoresLearner,
    /// A client waiting for the meta server's routing answer ignores the meta server's
    /// `PeerDown`: when the meta restarts, the question is lost and the client waits forever.
    ClientIgnoresMetaDown,
    /// A learner taught twice takes whichever lesson arrives last, even the older one: it
    /// loses what it reported learned after the primary counted it as caught up.
    LearnerTakesStaleLearn,
    /// A primary whose connection to a live secondary broke does not prepare again what
    /// that secondary has not acknowledged: the prepares or their ACKs died with the
    /// connection, and the partition never commits again.
    PrepareNotResent,
    /// A learner refuses an older lesson only while it is still learning: once its
    /// primary's connection broke and it aborted, the older lesson arriving late is taken,
    /// while its report of the newer one is still on its way.
    LessonForgottenOnAbort,
    /// The meta server takes one repair step per event: after promoting a secondary (or
    /// dropping a dead one) it waits for another event before adding a replica, and when
    /// the restarted node's `Register` was that event, none comes: the table stays short.
    CureOneStepPerEvent,
    /// The meta server keeps waiting for a learner it asked a primary to add after that
    /// node registered a new life: the restarted node forgot the lesson, nobody asks again.
    AddingKeptOnRestart,
}

/// The set of enabled bugs (a bit set; `Bugs::none()` in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bugs(u64);

impl Bugs {
    pub const fn none() -> Self {
        Bugs(0)
    }
    pub fn with(self, bug: Bug) -> Self {
        Bugs(self.0 | 1 << bug as u32)
    }
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }
}
