//! The duplication rules as tables: every status pair, the follower meta's answer for
//! every (existing owner × request) case, and the follower-ready rule for 1–3 replicas.
use petrel_core::dup::*;
use petrel_core::*;
use stateright::actor::Id;

const ALL: [DupStatus; 6] = [
    DupStatus::Init,
    DupStatus::Prepare,
    DupStatus::App,
    DupStatus::Log,
    DupStatus::Pause,
    DupStatus::Removed,
];

#[test]
fn status_transition_table_every_pair() {
    use DupStatus::*;
    let allowed = [
        (Init, Prepare),
        (Prepare, App),
        (App, Log),
        (Pause, Log),
        (Init, Log),
        (Log, Pause),
    ];
    for from in ALL {
        for to in ALL {
            let expect = from == to || to == Removed || allowed.contains(&(from, to));
            assert_eq!(from.can_become(to), expect, "{from:?} -> {to:?}");
        }
    }
    // The ones Pegasus users trip over:
    assert!(!Prepare.can_become(Log));
    assert!(!Prepare.can_become(Pause));
    assert!(!App.can_become(Pause));
    assert!(!Init.is_valid() && !Removed.is_valid() && Log.is_valid());
}

#[test]
fn follower_answer_table() {
    let me = DupIdent {
        source_meta: Id::from(0),
        table: 0,
        dupid: 1,
    };
    let other_dup = DupIdent { dupid: 2, ..me };
    let other_cluster = DupIdent {
        source_meta: Id::from(9),
        ..me
    };
    // No table: create.
    assert_eq!(follower_answer(None, &me), Ok(()));
    // A repeat of a request that already took effect for the same duplication: success (S2).
    assert_eq!(follower_answer(Some(&me), &me), Ok(()));
    // Another duplication or another source cluster owns it: exists.
    assert_eq!(
        follower_answer(Some(&other_dup), &me),
        Err(CreateError::Exists)
    );
    assert_eq!(
        follower_answer(Some(&other_cluster), &me),
        Err(CreateError::Exists)
    );
}

#[test]
fn ready_rule_for_replica_counts_1_2_3() {
    let p = |primary: Option<usize>, secs: &[usize], max: u8| PartitionConfig {
        gpid: Gpid {
            table: 1,
            partition: 0,
        },
        ballot: 1,
        primary: primary.map(Id::from),
        secondaries: secs.iter().map(|s| Id::from(*s)).collect(),
        max_replica_count: max,
        source: None,
    };
    for max in 1..=3u8 {
        // A primary that applied the checkpoint is enough; secondaries are the follower
        // cluster's business, and a 1-replica table has none (S3).
        assert!(
            follower_partition_ready(&p(Some(1), &[], max), false),
            "max {max}"
        );
        assert!(
            follower_partition_ready(&p(Some(1), &[2], max), false),
            "max {max}"
        );
        assert!(
            !follower_partition_ready(&p(None, &[2], max), false),
            "max {max}: no primary"
        );
    }
    // The S3 bug: demanding a secondary makes a 1-replica follower never ready.
    assert!(!follower_partition_ready(&p(Some(1), &[], 1), true));
}
