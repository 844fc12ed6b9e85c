//! Durable save cost of the storage log (`storage.rs`) for a replica whose partition holds
//! N keys, each save being one more write (a new log entry, a changed key, a dedup entry):
//! full records every time (the store before change records) against change records, side
//! by side in one run. Each case runs for a bounded time.
//!
//! `cargo bench -p petrel-node --bench storage` (set PETREL_BENCH_DIR to measure another
//! disk; the default is the system temp directory).
use petrel_core::replica::{PartDurable, ReplicaStorage};
use petrel_core::{Entry, Gpid, Key, Mutation, NodeStorage, Op, PartitionConfig, Snapshot, Value};
use petrel_node::delta::Incremental;
use petrel_node::storage::{Store, StoreOptions};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::path::Path;
use std::time::{Duration, Instant};

/// The same value, always saved whole: what every save cost before change records.
#[derive(Clone, Serialize, Deserialize)]
struct Whole(NodeStorage);

impl Incremental for Whole {
    type Delta = ();
    fn delta(_: &Whole, _: &Whole) -> Option<()> {
        None
    }
    fn apply(&mut self, _: ()) -> Result<(), String> {
        Err("never written".into())
    }
}

/// A replica with one partition of `keys` keys and a short log.
fn replica(keys: usize) -> ReplicaStorage {
    let gpid = Gpid {
        table: 1,
        partition: 0,
    };
    let data = (0..keys)
        .map(|i| {
            (
                Key::from(format!("bench-key-{i:08}").as_str()),
                Value::from(format!("value {i}").as_str()),
            )
        })
        .collect();
    let last_req = (0..64).map(|c| (Id::from(1_000_000 + c), 1)).collect();
    let part = PartDurable {
        config: PartitionConfig {
            gpid,
            ballot: 2,
            primary: Some(Id::from(1)),
            secondaries: vec![Id::from(2), Id::from(3)],
            max_replica_count: 3,
            source: None,
        },
        snapshot: Snapshot {
            decree: 1,
            data,
            last_req,
        },
        log: Default::default(),
        committed: 1,
        retain: u32::MAX,
        dups: Default::default(),
    };
    ReplicaStorage {
        incarnation: 1,
        parts: [(gpid, part)].into(),
    }
}

/// Write number `i`: a log entry, committed; every 16 writes the log is collected into the
/// map (what the core's GC does), changing one key.
fn write(r: &mut ReplicaStorage, i: u32) {
    let p = r.parts.values_mut().next().expect("one partition");
    let key = Key::from(format!("bench-key-{:08}", i % 1000).as_str());
    let op = Op::Put(key, Value::from(format!("new {i}").as_str()));
    let d = p.committed + 1;
    p.log.insert(
        d,
        Entry {
            ballot: 2,
            mutation: Mutation {
                client: Id::from(1_000_000 + (i as usize % 64)),
                req: i + 2,
                op,
            },
        },
    );
    p.committed = d;
    if p.log.len() >= 16 {
        for (d, e) in std::mem::take(&mut p.log) {
            if let Op::Put(k, v) = e.mutation.op {
                p.snapshot.data.insert(k, v);
            }
            p.snapshot
                .last_req
                .insert(e.mutation.client, e.mutation.req);
            p.snapshot.decree = d;
        }
    }
}

fn measure<T: Incremental>(
    dir: &Path,
    limit: Duration,
    keys: usize,
    wrap: impl Fn(ReplicaStorage) -> T,
) -> Result<(f64, u64), String> {
    let (mut store, _, _) =
        Store::<T>::open(dir, StoreOptions::default()).map_err(|e| e.to_string())?;
    let mut r = replica(keys);
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || (start.elapsed() < limit && n < 20_000) {
        write(&mut r, n);
        store.save(wrap(r.clone())).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok((
        f64::from(n) / start.elapsed().as_secs_f64(),
        store.file_len(),
    ))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let limit = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3)
    };
    let base = std::env::var_os("PETREL_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    println!(
        "{:>8} {:>11} {:>15} {:>10} {:>17} {:>10}",
        "keys", "value bytes", "whole saves/s", "ms/save", "change saves/s", "ms/save"
    );
    for keys in [10usize, 1_000, 10_000, 100_000] {
        let bytes = postcard::to_stdvec(&replica(keys))
            .map(|v| v.len())
            .unwrap_or(0);
        let (Ok(d1), Ok(d2)) = (tempfile::tempdir_in(&base), tempfile::tempdir_in(&base)) else {
            eprintln!("cannot create temp dirs in {}", base.display());
            return;
        };
        let whole = measure(d1.path(), limit, keys, |r| Whole(NodeStorage::Replica(r)));
        let change = measure(d2.path(), limit, keys, NodeStorage::Replica);
        match (whole, change) {
            (Ok((w, _)), Ok((c, _))) => println!(
                "{keys:>8} {bytes:>11} {w:>15.0} {:>10.2} {c:>17.0} {:>10.2}",
                1000.0 / w,
                1000.0 / c
            ),
            (Err(e), _) | (_, Err(e)) => eprintln!("save failed: {e}"),
        }
    }
}
