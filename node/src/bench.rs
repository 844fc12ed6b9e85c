//! `petrel bench`: closed-loop write load through the client library, one row per
//! concurrency level.
//!
//! N tasks share one [`Client`]; each writes its keys `bench-<task>-<i>` one after the
//! other (one write in flight per task), so N is the number of concurrent writes. Keys are
//! routed like any client's (`partition_of`), so they spread over the table's partitions.
//! The latency of a write is the whole library call, as an application sees it: the core
//! client's configuration query, the write, the primary's fsync and its secondaries'
//! (prepare, ACK), the commit, and the call's own connection setup (see `client.rs`).
use crate::client::Client;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one concurrency level measured.
#[derive(Debug, Default)]
pub struct Level {
    pub clients: usize,
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Latency of every acknowledged write, sorted.
    pub latencies: Vec<Duration>,
    /// Acknowledged writes per partition.
    pub per_partition: BTreeMap<u8, usize>,
    /// The first error, to show why writes failed.
    pub first_error: Option<String>,
}

impl Level {
    pub fn writes_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The nearest-rank percentile `p` (0 < p ≤ 100) of the acknowledged writes.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies.get(rank.clamp(1, n) - 1).copied()
    }

    pub fn max(&self) -> Option<Duration> {
        self.latencies.last().copied()
    }
}

/// `clients` tasks, each writing `ops` keys in sequence; `round` makes the values of
/// different levels differ.
pub async fn run_level(client: Arc<Client>, clients: usize, ops: usize, round: usize) -> Level {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::with_capacity(ops);
            let mut failed = 0;
            let mut first_error = None;
            for i in 0..ops {
                let key = format!("bench-{c}-{i}");
                let partition = client.gpid_of(key.as_bytes()).partition;
                let t0 = Instant::now();
                match client.put(key.as_str(), format!("r{round}-{c}-{i}").as_str()).await {
                    Ok(()) => done.push((t0.elapsed(), partition)),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (done, failed, first_error)
        }));
    }
    let mut level = Level { clients, ..Level::default() };
    for t in tasks {
        match t.await {
            Ok((done, failed, err)) => {
                level.ok += done.len();
                level.failed += failed;
                for (latency, partition) in done {
                    level.latencies.push(latency);
                    *level.per_partition.entry(partition).or_default() += 1;
                }
                if level.first_error.is_none() {
                    level.first_error = err;
                }
            }
            Err(e) => {
                level.failed += ops;
                level.first_error.get_or_insert_with(|| format!("a bench task failed: {e}"));
            }
        }
    }
    level.elapsed = start.elapsed();
    level.latencies.sort();
    level
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

/// The levels as a table, one row each.
pub fn table(levels: &[Level]) -> String {
    let mut out = format!(
        "{:>7} {:>7} {:>6} {:>8} {:>9} {:>7} {:>7} {:>7}\n",
        "clients", "writes", "failed", "seconds", "writes/s", "p50 ms", "p99 ms", "max ms"
    );
    for l in levels {
        out.push_str(&format!(
            "{:>7} {:>7} {:>6} {:>8.2} {:>9.0} {:>7} {:>7} {:>7}\n",
            l.clients,
            l.ok,
            l.failed,
            l.elapsed.as_secs_f64(),
            l.writes_per_sec(),
            ms(l.percentile(50.0)),
            ms(l.percentile(99.0)),
            ms(l.max())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let level = Level { latencies: (1..=100).map(Duration::from_millis).collect(), ..Level::default() };
        assert_eq!(level.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(level.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(level.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(level.max(), Some(Duration::from_millis(100)));
        let one = Level { latencies: vec![Duration::from_millis(7)], ..Level::default() };
        assert_eq!((one.percentile(50.0), one.percentile(99.0)), (Some(Duration::from_millis(7)), Some(Duration::from_millis(7))));
        assert_eq!(Level::default().percentile(50.0), None);
        let t = table(&[Level { clients: 4, ok: 10, elapsed: Duration::from_secs(2), ..one }]);
        assert!(t.lines().nth(1).is_some_and(|row| row.contains("   5 ") && row.contains("7.0")), "{t}");
    }
}
