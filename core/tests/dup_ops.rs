//! Operator requests for duplications, at the source meta server: a retried `AddDup` (its
//! reply lost) names the duplication it created instead of creating another, and a
//! follower table has one source table.
mod common;
use common::*;
use petrel_core::meta::TableSpec;
use petrel_core::*;

const META: usize = 0;
const REMOTE_META: usize = 30;

fn meta_with_two_tables() -> Sim {
    let table = |id| TableSpec {
        id,
        partitions: 1,
        max_replica_count: 1,
        source: None,
    };
    let cfg = meta_cfg(&[1], vec![table(1), table(2)], 1, Bugs::none());
    Sim::start(Node::Meta(cfg), id(META), None).0
}

fn add(sim: &mut Sim, table: u8, remote_table: u8) -> Result<u8, String> {
    let o = sim.msg(
        operator(),
        Msg::AddDup {
            table,
            remote_meta: id(REMOTE_META),
            remote_table,
            remote_replica_count: 1,
            full: true,
        },
    );
    match sends_to(&o, operator()).as_slice() {
        [Msg::AddDupReply { result, .. }] => result.clone(),
        other => panic!("expected one AddDupReply, got {other:?}"),
    }
}

#[test]
fn a_retried_add_names_the_duplication_it_created() {
    let mut sim = meta_with_two_tables();
    let first = add(&mut sim, 1, 1).expect("added");
    for _ in 0..2 {
        assert_eq!(add(&mut sim, 1, 1), Ok(first));
    }
    assert_eq!(sim.meta().dups.len(), 1, "{:?}", sim.meta().dups);
    // Another follower table of the same cluster is another duplication.
    let other = add(&mut sim, 1, 3).expect("added");
    assert_ne!(other, first);
    assert_eq!(sim.meta().dups.len(), 2);
}

#[test]
fn a_follower_table_has_one_source_table() {
    let mut sim = meta_with_two_tables();
    let first = add(&mut sim, 1, 1).expect("added");
    let refused = add(&mut sim, 2, 1).expect_err("a second source is refused");
    assert!(
        refused.contains("already follows table 1")
            && refused.contains(&format!("duplication {first}")),
        "{refused}"
    );
    assert_eq!(sim.meta().dups.len(), 1);
}
