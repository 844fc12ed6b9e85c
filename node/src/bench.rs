//! `petrel bench`: closed-loop write load through the client library, one row per
//! concurrency level.
//!
//! N tasks share one [`Client`]; each writes its keys `bench-<task>-<i>` one after the
//! other (one write in flight per task), so N is the number of concurrent writes. Keys are
//! routed like any client's (`partition_of`), so they spread over the table's partitions.
//! The latency of a write is the whole library call, as an application sees it: the core
//! client's configuration query, the write, the primary's fsync and its secondaries'
//! (prepare, ACK), the commit, and the call's own connection setup (see `client.rs`).
//!
//! The same load runs against etcd (`--against-etcd`, [`crate::etcd`]): both systems are a
//! [`Target`], so they get the very same writers, keys, values and clock.
use crate::client::Client;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A store the bench writes to.
pub trait Target: Send + Sync + 'static {
    /// The partition a key's write goes to (the per-partition spread; 0 without partitions).
    fn partition(&self, key: &[u8]) -> u8;
    /// One write by writer `writer`, `failed` of whose earlier writes failed (a target
    /// with several endpoints may move such a writer on to another one).
    fn put(
        &self,
        writer: usize,
        failed: usize,
        key: &str,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

impl Target for Client {
    fn partition(&self, key: &[u8]) -> u8 {
        self.gpid_of(key).partition
    }

    async fn put(
        &self,
        _writer: usize,
        _failed: usize,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), String> {
        Client::put(self, key, value)
            .await
            .map_err(|e| e.to_string())
    }
}

/// After a failed write its writer waits this long before the next one: a store that
/// refuses at once (a dead endpoint) would otherwise be hammered by a busy loop counting
/// thousands of failures a second. Failed writes are not in the latencies either way.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(50);

/// What one concurrency level measured.
#[derive(Clone, Debug, Default)]
pub struct Level {
    pub clients: usize,
    /// Keys the store held before the level (its preload and earlier levels' writes).
    pub preload: usize,
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Latency of every acknowledged write, sorted.
    pub latencies: Vec<Duration>,
    /// Acknowledged writes per partition.
    pub per_partition: BTreeMap<u8, usize>,
    /// Acknowledged writes per whole second of the run (a rate that decays as data grows
    /// shows here: first against last).
    pub per_second: Vec<usize>,
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

    /// Writes in the first and in the last whole second (None for runs under 2 s).
    pub fn first_last_second(&self) -> Option<(usize, usize)> {
        match self.per_second.as_slice() {
            [first, .., last] => Some((*first, *last)),
            _ => None,
        }
    }
}

/// The shape of a load: how long each writer writes and what.
#[derive(Clone, Debug)]
pub struct Load {
    /// Each writer stops after this many writes …
    pub ops: usize,
    /// … or, when set, when this much time has passed (closed loop: it then writes as many
    /// keys as it can, one in flight).
    pub duration: Option<Duration>,
    /// Bytes of each value (keys are 16 bytes).
    pub value_size: usize,
}

/// A 16-byte key: the level (round), the writer and its sequence number, so every write
/// of a run adds a key (the store grows the way a real one does).
pub fn key(round: usize, writer: usize, i: usize) -> String {
    format!(
        "b{:02}{:04}{:09}",
        round % 100,
        writer % 10_000,
        i % 1_000_000_000
    )
}

/// A value of `size` bytes that names its write.
pub fn value(round: usize, writer: usize, i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("r{round}-{writer}-{i}-").into_bytes();
    v.resize(size, b'.');
    v
}

/// `clients` tasks, each writing keys in sequence as `load` says; `round` makes the keys
/// of different levels (and the preload) differ.
pub async fn run_level<T: Target>(
    client: Arc<T>,
    clients: usize,
    load: &Load,
    round: usize,
) -> Level {
    let start = Instant::now();
    let deadline = load.duration.map(|d| start + d);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let load = load.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut failed = 0;
            let mut first_error = None;
            let mut i = 0;
            loop {
                match deadline {
                    Some(end) if Instant::now() >= end => break,
                    None if i >= load.ops => break,
                    _ => {}
                }
                let key = key(round, c, i);
                let partition = client.partition(key.as_bytes());
                let t0 = Instant::now();
                match client
                    .put(c, failed, key.as_str(), value(round, c, i, load.value_size))
                    .await
                {
                    Ok(()) => {
                        let latency = t0.elapsed();
                        done.push((latency, t0 - start + latency, partition));
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                        tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                    }
                }
                i += 1;
            }
            (done, failed, first_error)
        }));
    }
    let mut level = Level {
        clients,
        ..Level::default()
    };
    let mut at = Vec::new();
    for t in tasks {
        match t.await {
            Ok((done, failed, err)) => {
                level.ok += done.len();
                level.failed += failed;
                for (latency, finished, partition) in done {
                    level.latencies.push(latency);
                    at.push(finished);
                    *level.per_partition.entry(partition).or_default() += 1;
                }
                if level.first_error.is_none() {
                    level.first_error = err;
                }
            }
            Err(e) => {
                level.failed += 1;
                level
                    .first_error
                    .get_or_insert_with(|| format!("a bench task failed: {e}"));
            }
        }
    }
    level.elapsed = start.elapsed();
    level.latencies.sort();
    let whole = level.elapsed.as_secs() as usize;
    level.per_second = vec![0; whole];
    for t in at {
        if let Some(n) = level.per_second.get_mut(t.as_secs() as usize) {
            *n += 1;
        }
    }
    level
}

/// Write `keys` keys (64 writers) before the levels: the store a level then meets.
pub async fn preload<T: Target>(client: Arc<T>, keys: usize, value_size: usize) -> Level {
    const WRITERS: usize = 64;
    let per = keys.div_ceil(WRITERS);
    let load = Load {
        ops: per,
        duration: None,
        value_size,
    };
    // Round 99: keys of its own.
    run_level(client, WRITERS.min(keys.max(1)), &load, 99).await
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

/// The levels as a table, one row each.
pub fn table(levels: &[Level]) -> String {
    let mut out = format!(
        "{:>7} {:>8} {:>7} {:>6} {:>8} {:>9} {:>15} {:>7} {:>7} {:>7}\n",
        "writers",
        "preload",
        "writes",
        "failed",
        "seconds",
        "writes/s",
        "1st/last sec/s",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    for l in levels {
        let decay = l
            .first_last_second()
            .map_or_else(|| "-".to_string(), |(a, b)| format!("{a}/{b}"));
        out.push_str(&format!(
            "{:>7} {:>8} {:>7} {:>6} {:>8.2} {:>9.0} {:>15} {:>7} {:>7} {:>7}\n",
            l.clients,
            l.preload,
            l.ok,
            l.failed,
            l.elapsed.as_secs_f64(),
            l.writes_per_sec(),
            decay,
            ms(l.percentile(50.0)),
            ms(l.percentile(99.0)),
            ms(l.max())
        ));
    }
    out
}

/// The runs of one writer count over several rounds as one: writes, failures and seconds
/// added, latencies merged (so the rate is writes over time spent, and the percentiles are
/// over every write, not an average of averages).
pub fn merge(runs: &[&Level]) -> Level {
    let mut out = Level::default();
    for l in runs {
        out.clients = l.clients;
        out.preload = out.preload.max(l.preload);
        out.ok += l.ok;
        out.failed += l.failed;
        out.elapsed += l.elapsed;
        out.latencies.extend_from_slice(&l.latencies);
        if out.first_error.is_none() {
            out.first_error.clone_from(&l.first_error);
        }
    }
    out.latencies.sort();
    out
}

/// `--against-etcd`: one row per writer count, Petrel and etcd side by side and the ratio
/// of their rates. `petrel[i]` and `etcd[i]` are the i-th level run of each, interleaved
/// (same writers, same round); a writer count repeated over rounds is merged into one row,
/// with each round's own ratio listed so the noise between rounds shows.
pub fn compare_table(preload: usize, petrel: &[Level], etcd: &[Level]) -> String {
    let mut counts: Vec<usize> = Vec::new();
    for l in petrel {
        if !counts.contains(&l.clients) {
            counts.push(l.clients);
        }
    }
    let ratio = |p: f64, e: f64| {
        if e > 0.0 {
            format!("{:.2}", p / e)
        } else {
            "-".to_string()
        }
    };
    let rounds = petrel.len() / counts.len().max(1);
    let mut out = format!(
        "{:>7} {:>8} {:>10} {:>10} {:>11} {:>10} {:>9} {:>10} {:>9} {:>13}{}\n",
        "writers",
        "preload",
        "petrel w/s",
        "etcd w/s",
        "petrel÷etcd",
        "petrel p50",
        "etcd p50",
        "petrel p99",
        "etcd p99",
        "failed p/e",
        if rounds > 1 { "  ratio per round" } else { "" }
    );
    for n in counts {
        let pairs: Vec<(&Level, &Level)> = petrel
            .iter()
            .zip(etcd)
            .filter(|(p, _)| p.clients == n)
            .collect();
        let p = merge(&pairs.iter().map(|(p, _)| *p).collect::<Vec<_>>());
        let e = merge(&pairs.iter().map(|(_, e)| *e).collect::<Vec<_>>());
        let per_round = if rounds > 1 {
            let r: Vec<String> = pairs
                .iter()
                .map(|(p, e)| ratio(p.writes_per_sec(), e.writes_per_sec()))
                .collect();
            format!("  {}", r.join(" "))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:>7} {:>8} {:>10.0} {:>10.0} {:>11} {:>10} {:>9} {:>10} {:>9} {:>13}{}\n",
            n,
            preload,
            p.writes_per_sec(),
            e.writes_per_sec(),
            ratio(p.writes_per_sec(), e.writes_per_sec()),
            ms(p.percentile(50.0)),
            ms(e.percentile(50.0)),
            ms(p.percentile(99.0)),
            ms(e.percentile(99.0)),
            format!("{}/{}", p.failed, e.failed),
            per_round
        ));
    }
    out
}

/// One JSON object per level (`--json`).
pub fn json(system: &str, l: &Level) -> serde_json::Value {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    serde_json::json!({
        "system": system,
        "writers": l.clients,
        "preload": l.preload,
        "writes": l.ok,
        "failed": l.failed,
        "seconds": l.elapsed.as_secs_f64(),
        "writes_per_sec": l.writes_per_sec(),
        "first_second": l.first_last_second().map(|f| f.0),
        "last_second": l.first_last_second().map(|f| f.1),
        "p50_ms": ms(l.percentile(50.0)),
        "p99_ms": ms(l.percentile(99.0)),
        "max_ms": ms(l.max()),
        "per_second": l.per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let level = Level {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Level::default()
        };
        assert_eq!(level.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(level.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(level.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(level.max(), Some(Duration::from_millis(100)));
        let one = Level {
            latencies: vec![Duration::from_millis(7)],
            ..Level::default()
        };
        assert_eq!(
            (one.percentile(50.0), one.percentile(99.0)),
            (
                Some(Duration::from_millis(7)),
                Some(Duration::from_millis(7))
            )
        );
        assert_eq!(Level::default().percentile(50.0), None);
        let t = table(&[Level {
            clients: 4,
            ok: 10,
            elapsed: Duration::from_secs(2),
            ..one
        }]);
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|row| row.contains("   5 ") && row.contains("7.0")),
            "{t}"
        );
    }
}

/// One trial of `petrel bench --failover`.
#[derive(Debug, Clone)]
pub struct Trial {
    pub killed: u64,
    pub new_primary: Option<u64>,
    /// From the `kill -9` of the primary to the first write acknowledged through the new
    /// primary; `None`: none within the trial's limit.
    pub failover: Option<Duration>,
    /// Writes acknowledged in the second before the kill (the load the kill interrupted).
    pub load_per_sec: usize,
    /// From the kill to the killed node's restart being a member again (3/3).
    pub rejoined: Option<Duration>,
}

/// `petrel bench --failover N`: a local cluster of one meta server and 3 replicas (the
/// `petrel up` layout and defaults, in `dir`), `writers` concurrent writers through one
/// [`Client`]; per trial, `kill -9` of the partition's primary process, the time to the
/// first write acknowledged through the new primary, then a restart of the killed node
/// and a wait until it is a member again. Only measures; decides nothing.
///
/// "Through the new primary": the first acknowledged write that *started* after the
/// kill. A write in flight at the kill may be answered by the dying primary an instant
/// after it (its reply already sent); a write started after the kill cannot be: the old
/// process is gone. Its writer was free only after its previous write finished, so this
/// adds at most one write's latency (milliseconds) to the measure.
pub async fn failover(
    exe: &std::path::Path,
    dir: &std::path::Path,
    trials: usize,
    writers: usize,
) -> anyhow::Result<Vec<Trial>> {
    use crate::config::Config;
    use anyhow::Context;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let layout = crate::up::write_cluster(dir, &crate::up::Plan::new("failover", 3))?;
    let logs = layout.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log_of = |n: &crate::up::NodeEntry| logs.join(format!("{}.log", n.name()));
    // Children are killed when this guard drops, whatever happens below.
    struct Kids(Vec<(u64, std::process::Child)>);
    impl Drop for Kids {
        fn drop(&mut self) {
            for (_, c) in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut kids = Kids(Vec::new());
    for n in &layout.nodes {
        let mut child = crate::up::spawn(exe, n, &log_of(n))?;
        crate::up::wait_ready(&mut child, &log_of(n), 1, Duration::from_secs(30)).await?;
        kids.0.push((n.id, child));
    }
    let cfg = Config::load(&layout.client_config)?;
    let client = Arc::new(Client::connect(&cfg).await?);
    let gpid = client.gpid_of(b"failover");
    // (started, acknowledged) of every write.
    let acks: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, acks, stop) = (client.clone(), acks.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                if client.put(format!("f-{w}-{i}").as_str(), "v").await.is_ok() {
                    if let Ok(mut a) = acks.lock() {
                        a.push((t0, Instant::now()));
                    }
                    i += 1;
                }
            }
        }));
    }
    // The partition's members per the meta server: (primary, secondaries).
    let members = |c: Arc<Client>| async move {
        match c.config_of(gpid).await {
            Ok((Some(config), _)) => Some((
                config.primary.map(crate::transport::raw_of),
                config
                    .secondaries
                    .iter()
                    .map(|s| crate::transport::raw_of(*s))
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        }
    };
    let healthy =
        |m: &Option<(Option<u64>, Vec<u64>)>| matches!(m, Some((Some(_), s)) if s.len() == 2);
    let mut out = Vec::new();
    for _ in 0..trials {
        // Start from a whole partition under load.
        let until = Instant::now() + Duration::from_secs(60);
        let primary = loop {
            let m = members(client.clone()).await;
            let recent = acks
                .lock()
                .map(|a| {
                    a.last()
                        .is_some_and(|(_, t)| t.elapsed() < Duration::from_millis(200))
                })
                .unwrap_or(false);
            if healthy(&m) && recent {
                break m.and_then(|(p, _)| p).context("no primary")?;
            }
            if Instant::now() > until {
                anyhow::bail!(
                    "the partition did not become whole (3 members) under load within 60 s: {m:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let load_per_sec = acks
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|(_, t)| t.elapsed() < Duration::from_secs(1))
                    .count()
            })
            .unwrap_or(0);
        let k = kids
            .0
            .iter()
            .position(|(id, _)| *id == primary)
            .context("the primary is not a child of this bench")?;
        let killed_at = Instant::now();
        kids.0[k].1.kill().context("kill -9 of the primary")?;
        let _ = kids.0[k].1.wait();
        let until = killed_at + Duration::from_secs(60);
        let failover = loop {
            let first = acks.lock().ok().and_then(|a| {
                a.iter()
                    .filter(|(s, _)| *s > killed_at)
                    .map(|(_, t)| *t)
                    .min()
            });
            if let Some(t) = first {
                break Some(t - killed_at);
            }
            if Instant::now() > until {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let new_primary = members(client.clone()).await.and_then(|(p, _)| p);
        // Restart the killed node from its data directory and wait for it to be a member.
        let n = layout
            .nodes
            .iter()
            .find(|n| n.id == primary)
            .context("node")?;
        let starts = std::fs::read_to_string(log_of(n))
            .unwrap_or_default()
            .matches(" ready")
            .count()
            + 1;
        let mut child = crate::up::spawn(exe, n, &log_of(n))?;
        crate::up::wait_ready(&mut child, &log_of(n), starts, Duration::from_secs(30)).await?;
        kids.0[k].1 = child;
        let until = Instant::now() + Duration::from_secs(60);
        let rejoined = loop {
            let m = members(client.clone()).await;
            if healthy(&m)
                && m.as_ref()
                    .is_some_and(|(p, s)| *p == Some(primary) || s.contains(&primary))
            {
                break Some(killed_at.elapsed());
            }
            if Instant::now() > until {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        out.push(Trial {
            killed: primary,
            new_primary,
            failover,
            load_per_sec,
            rejoined,
        });
        if rejoined.is_none() {
            break; // the next trial would not start from a whole partition
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await;
    }
    Ok(out)
}

/// The failover trials as a table, and the median.
pub fn failover_table(trials: &[Trial]) -> String {
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "-".to_string(), |d| format!("{:.2}", d.as_secs_f64()))
    };
    let mut out = format!(
        "{:>5} {:>6} {:>11} {:>13} {:>15} {:>11}\n",
        "trial", "killed", "new primary", "failover s", "writes/s before", "rejoined s"
    );
    for (i, t) in trials.iter().enumerate() {
        out.push_str(&format!(
            "{:>5} {:>6} {:>11} {:>13} {:>15} {:>11}\n",
            i + 1,
            t.killed,
            t.new_primary
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            secs(t.failover),
            t.load_per_sec,
            secs(t.rejoined)
        ));
    }
    let mut done: Vec<Duration> = trials.iter().filter_map(|t| t.failover).collect();
    done.sort();
    let median = match done.len() {
        0 => None,
        n if n % 2 == 1 => Some(done[n / 2]),
        n => Some((done[n / 2 - 1] + done[n / 2]) / 2),
    };
    out.push_str(&format!(
        "median failover over {} trial(s): {} s{}\n",
        done.len(),
        secs(median),
        if done.len() < trials.len() {
            format!(
                " ({} trial(s) saw no write within 60 s)",
                trials.len() - done.len()
            )
        } else {
            String::new()
        }
    ));
    out
}
