//! The mutant catalogue: a deliberately wrong transition (a core `Bug`), the scenario in
//! which it shows, and the property expected to catch it.
use petrel_core::Bug;

#[derive(Clone, Debug)]
pub struct Mutant {
    pub name: &'static str,
    pub bug: Bug,
    pub scenario: &'static str,
    /// The property ID that must be violated.
    pub caught_by: &'static str,
    pub description: &'static str,
}

pub fn mutants() -> Vec<Mutant> {
    let m = |name, bug, scenario, caught_by, description| Mutant {
        name,
        bug,
        scenario,
        caught_by,
        description,
    };
    vec![
        m("s4-recovering-not-cleared", Bug::RecoveringNotCleared, "learner-primary-dies", "SAFE-9",
          "S4: a learner promoted to primary keeps its recovering flag and refuses reads"),
        m("s5-client-no-refresh", Bug::ClientNoRefresh, "client-primary-crash", "LIVE-2",
          "S5: the client retries the dead primary instead of refreshing its routing"),
        m("s5-client-ignores-peer-down", Bug::ClientIgnoresPeerDown, "client-primary-crash", "LIVE-1",
          "S5: a broken connection does not fail the pending request; the client waits forever"),
        m("commit-without-all-acks", Bug::CommitWithoutAllAcks, "replication", "SAFE-2",
          "the primary commits after ACKs from all but one secondary"),
        m("accept-stale-prepare", Bug::AcceptStalePrepare, "two-writers", "SAFE-6",
          "a secondary accepts a prepare from a deposed primary (older ballot)"),
        m("meta-accepts-stale-ballot", Bug::MetaAcceptsStaleBallot, "grow-while-failing", "SAFE-8",
          "the meta server accepts a proposal whose ballot is not exactly current + 1"),
        m("fd-skip-lease", Bug::FdSkipLease, "client-primary-crash", "SAFE-1",
          "the failure detector declares a replica dead before its lease expired"),
        m("forget-to-persist-ballot", Bug::ForgetToPersistBallot, "learner-primary-dies", "SAFE-4",
          "a replica does not persist the ballot of the configuration it adopts"),
        m("learn-skips-checkpoint", Bug::LearnSkipsCheckpoint, "learner-primary-dies", "SAFE-5",
          "a learner copies only uncommitted entries but takes the primary's commit point"),
        m("read-uncommitted", Bug::ReadUncommitted, "replication", "SAFE-7",
          "the primary serves reads of prepared but uncommitted writes"),
        m("learner-keeps-stale-entries", Bug::LearnerKeepsStaleEntries, "stale-learner", "SAFE-3",
          "a learner keeps its own stale log entries instead of the primary's"),
        m("s1-min-checkpoint-reset", Bug::MinCheckpointReset, "dup-restart-in-prepare", "SAFE-6",
          "S1: a duplicator restored after a restart leaves min_checkpoint_decree invalid; the checkpoint assertion fires"),
        m("s2-app-exist-is-failure", Bug::AppExistIsFailure, "dup-create-reply-lost", "SAFE-11",
          "S2: B answers a repeat create request \"exists\" and A retries forever"),
        m("s3-ready-needs-secondary", Bug::ReadyNeedsSecondary, "dup-single-replica-follower", "LIVE-3",
          "S3: the follower-ready check demands a secondary; a 1-replica follower never reaches LOG"),
        m("dup-auth-silent", Bug::DupAuthSilent, "dup-auth-mismatch", "LIVE-3",
          "a refused checkpoint sets no stall reason: the duplication hangs silently"),
        m("dup-prepare-to-log", Bug::DupPrepareToLog, "dup-single-replica-follower", "SAFE-10",
          "the source meta moves a duplication from PREPARE straight to LOG"),
        m("dup-gc-before-confirm", Bug::DupGcBeforeConfirm, "dup-log-shipping", "SAFE-14",
          "log garbage collection ignores duplications and collects mutations B has not confirmed"),
        m("dup-ship-uncommitted", Bug::DupShipUncommitted, "dup-log-shipping", "SAFE-13",
          "the duplicator ships prepared but uncommitted mutations"),
        m("follower-no-dedup", Bug::FollowerNoDedup, "dup-log-shipping", "SAFE-12",
          "the follower applies a mutation resent after a source primary switch a second time"),
        m("dup-switch-forgets-follower", Bug::DupSwitchForgetsFollower, "dup-log-shipping", "LIVE-4",
          "a duplicator restored on a primary switch never looks up the follower primary: shipping stops"),
        m("dup-log-refusal-silent", Bug::DupLogRefusalSilent, "dup-log-refused", "LIVE-4",
          "the source meta ignores B's refusal of shipped mutations: LOG retries forever with no stall reason"),
        m("dup-skip-uncounted", Bug::DupSkipUncounted, "dup-log-skip", "SAFE-13",
          "fail mode skip counts a refused batch as confirmed without counting it as skipped"),
        m("config-from-anyone", Bug::ConfigFromAnyone, "foreign-sender", "SAFE-15",
          "a replica adopts a configuration from any sender: the partner cluster's node makes a secondary a second primary"),
        m("checkpoint-from-any-source", Bug::CheckpointFromAnySource, "foreign-sender", "SAFE-15",
          "a replica applies a duplication checkpoint from any sender into any table: the partner cluster's node replaces A's data"),
        m("lease-ignored", Bug::LeaseIgnored, "partition-meta-primary", "SAFE-7",
          "a primary serves after its lease lapsed: cut off from the meta server, it answers a read with a value its successor overwrote"),
        m("empty-disk-same-life", Bug::EmptyDiskSameLife, "disk-replaced", "SAFE-2",
          "a replica whose disk was replaced comes back as life 1, holding nothing, and the meta keeps it as a member"),
        m("dup-query-not-retried", Bug::DupQueryNotRetried, "dup-follower-crash", "LIVE-4",
          "a duplicator whose question to B's meta server died with the connection never asks again: B never converges"),
        m("dup-confirmed-unclamped", Bug::DupConfirmedUnclamped, "dup-log-promote", "SAFE-13",
          "a promoted primary counts B's confirmation as shipped beyond its own commit point"),
        m("add-secondary-ignores-learner", Bug::AddSecondaryIgnoresLearner, "meta-restart-reconfig", "LIVE-5",
          "asked again for a learner it already teaches, the primary ignores it: after a meta restart the table stays short"),
        m("client-ignores-meta-down", Bug::ClientIgnoresMetaDown, "meta-restart-reconfig", "LIVE-1",
          "a client asking the meta server for its route ignores the meta's PeerDown: its question died with the restart, it waits forever"),
        m("learner-takes-stale-learn", Bug::LearnerTakesStaleLearn, "meta-restart-reconfig", "SAFE-2",
          "a learner taught twice (the meta server restarted and asked again) takes the older lesson last and becomes a secondary without the committed write"),
        m("prepare-not-resent", Bug::PrepareNotResent, "link-break-prepare", "LIVE-1",
          "the primary does not prepare again what a secondary whose connection broke has not ACKed: the write never commits"),
        m("lesson-forgotten-on-abort", Bug::LessonForgottenOnAbort, "link-break-learn", "SAFE-2",
          "a learner refuses an older lesson only while learning: after its primary's connection broke it takes a late one and joins without the committed write"),
        m("follower-prepare-not-resent", Bug::PrepareNotResent, "dup-link-break", "LIVE-4",
          "B's primary does not prepare again what its secondary has not ACKed after their connection broke: B never applies A's write"),
    ]
}

pub fn mutant(name: &str) -> Option<Mutant> {
    mutants().into_iter().find(|m| m.name == name)
}
