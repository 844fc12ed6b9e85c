//! Durable save throughput of the snapshot log (`storage.rs`) against the obvious
//! alternative (write a new file, fsync, rename, fsync the directory), for snapshot sizes
//! from a fresh replica to a long log. Each case runs for a bounded time.
//!
//! `cargo bench -p petrel-node --bench storage` (set PETREL_BENCH_DIR to measure another
//! disk; the default is the system temp directory).
use petrel_node::storage::{Store, StoreOptions};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// A stand-in for a replica's durable value: `n` log entries (decree, ballot, client, req,
/// value), shaped like the core's.
fn snapshot(n: usize, round: u32) -> Vec<(u32, u32, u64, u32, u8)> {
    (0..n).map(|i| (i as u32, round, (1u64 << 40) + i as u64, i as u32, (i % 251) as u8)).collect()
}

fn run(limit: Duration, max: usize, mut f: impl FnMut(u32)) -> (usize, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while n < max && (n < 3 || start.elapsed() < limit) {
        f(n as u32);
        n += 1;
    }
    (n, start.elapsed())
}

fn replace_file(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join("snap.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("snap"))?;
    File::open(dir)?.sync_all()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let limit = if quick { Duration::from_millis(200) } else { Duration::from_secs(3) };
    let base = std::env::var_os("PETREL_BENCH_DIR").map(Into::into).unwrap_or_else(std::env::temp_dir);
    println!(
        "{:<10} {:>10} {:>12} {:>14} {:>12} {:>16} {:>12}",
        "entries", "bytes", "encode ms", "log saves/s", "ms/save", "replace saves/s", "ms/save"
    );
    for entries in [1usize, 100, 1_000, 10_000, 100_000] {
        let value = snapshot(entries, 0);
        let bytes = postcard::to_stdvec(&value).map(|v| v.len()).unwrap_or(0);
        let dir = match tempfile::tempdir_in(&base) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot create a temp dir in {}: {e}", base.display());
                return;
            }
        };
        let (mut store, _, _) = match Store::<Vec<(u32, u32, u64, u32, u8)>>::open(dir.path(), StoreOptions::default()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot open the store: {e}");
                return;
            }
        };
        let values: Vec<_> = (0..4).map(|r| snapshot(entries, r)).collect();
        let (n, t) = run(limit, 5_000, |i| {
            if let Err(e) = store.save(&values[i as usize % 4]) {
                eprintln!("save failed: {e}");
            }
        });
        let log_rate = n as f64 / t.as_secs_f64();
        let dir2 = tempfile::tempdir_in(&base).expect("tempdir");
        let (m, u) = run(limit, 5_000, |i| {
            // Encoding is part of a save in both cases.
            let encoded = postcard::to_stdvec(&values[i as usize % 4]).unwrap_or_default();
            if let Err(e) = replace_file(dir2.path(), &encoded) {
                eprintln!("replace failed: {e}");
            }
        });
        let rep_rate = m as f64 / u.as_secs_f64();
        let (k, w) = run(limit, 5_000, |i| {
            std::hint::black_box(postcard::to_stdvec(&values[i as usize % 4]).map(|v| v.len()).unwrap_or(0));
        });
        let encode_ms = w.as_secs_f64() * 1000.0 / k as f64;
        println!(
            "{:<10} {:>10} {:>12.3} {:>14.0} {:>12.2} {:>16.0} {:>12.2}",
            entries,
            bytes,
            encode_ms,
            log_rate,
            1000.0 / log_rate,
            rep_rate,
            1000.0 / rep_rate
        );
    }
}
