//! `petrel campaign`: fault campaigns on real processes.
//!
//! A campaign is a fresh cluster `a` (a meta server and three replicas, table 1 with
//! several partitions) and, with duplication, a cluster `b` following `a`'s table 1, every
//! node a real `petrel` process in its own network namespace ([`netns`]). A seed gives a
//! schedule of faults ([`nemesis`]) that runs while many library clients do put/get/delete
//! on per-key registers with unique values ([`workload`]); then every fault is healed and
//! the campaign is judged ([`verdict`]):
//!
//! 1. the history is linearizable (per-key registers; the harness's own checker);
//! 2. every acknowledged write is still readable (final reads after heal);
//! 3. every partition is back to its replica count within a bound (the time is measured);
//! 4. with duplication, b's follower table equals a's table key by key within a bound;
//! 5. `petrel-check validate` accepts every node's event log and the client history
//!    (conformance to the core, the SAFE properties, linearizability again);
//! 6. no node exited on its own and every restart succeeded.
//!
//! A failing campaign's directory (node logs, event logs, data, the history, the
//! schedule, the verdict and, when validation failed, a `petrel-trace/1` file) is kept.
pub mod cluster;
pub mod inject;
pub mod nemesis;
pub mod netns;
pub mod verdict;
pub mod workload;

use anyhow::{bail, Context, Result};
use cluster::{Clusters, REPLICAS};
use nemesis::{Kind, Shape, Side};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use verdict::{Act, End, Lin};

/// Set on Ctrl-C / SIGTERM: campaigns stop early and clean up.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Seeds to run: `A..B` (inclusive) or one number.
    #[arg(long, default_value = "1..10")]
    pub seeds: String,
    /// Seconds of workload under faults per campaign.
    #[arg(long, default_value_t = 6.0)]
    pub duration: f64,
    /// Fault kinds, comma separated: kill, pause, meta-primary, isolate, one-way,
    /// primary-secondaries, clusters, netem, wipe, torn; `partition` (every partition
    /// kind) or `all`.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Print the results as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Campaigns run at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Where campaigns run; failing ones are kept here (default: a new temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep passing campaigns' directories too.
    #[arg(long)]
    pub keep: bool,
    /// One cluster only (no cluster b, no duplication).
    #[arg(long)]
    pub no_dup: bool,
    /// Process faults (kill, pause, torn, …) never hit a meta server.
    #[arg(long)]
    pub spare_meta: bool,
    /// Concurrent clients of the workload.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Keys (per-key registers).
    #[arg(long, default_value_t = 24)]
    pub keys: usize,
    /// Partitions of table 1.
    #[arg(long, default_value_t = 4)]
    pub partitions: u8,
    /// Seconds allowed after heal for every partition to be back to its replica count
    /// (and for b to equal a).
    #[arg(long, default_value_t = 30.0)]
    pub recovery_bound: f64,
    /// Skip `petrel-check validate` of the nodes' event logs.
    #[arg(long)]
    pub no_validate: bool,
    /// The `petrel-check` binary (default: next to this `petrel`, else on PATH).
    #[arg(long)]
    pub petrel_check: Option<PathBuf>,
    /// Print each fault as it is injected.
    #[arg(long, short)]
    pub verbose: bool,
    /// Test only: run every node with this core mutant (`petrel_core::Bug`, e.g.
    /// `CommitWithoutAllAcks`), to show that campaigns catch it.
    #[arg(long, hide = true)]
    pub bug: Option<String>,
}

/// Parse `A..B` (inclusive) or `N`.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let s = s.trim();
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim().trim_start_matches('=')),
        None => (s, s),
    };
    let a: u64 = a
        .parse()
        .with_context(|| format!("--seeds {s:?}: expected A..B or N"))?;
    let b: u64 = b
        .parse()
        .with_context(|| format!("--seeds {s:?}: expected A..B or N"))?;
    if b < a || b - a >= 100_000 {
        bail!("--seeds {s:?}: the range must be ascending and at most 100000 seeds");
    }
    Ok((a..=b).collect())
}

/// One campaign's result.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub seed: u64,
    pub pass: bool,
    /// Why it failed (empty when it passed).
    pub failures: Vec<String>,
    pub faults: Vec<inject::Injected>,
    pub ops: usize,
    pub acked_writes: usize,
    pub unknown: usize,
    pub lost: usize,
    pub lost_detail: Vec<String>,
    pub linearizable: String,
    pub lin_detail: Vec<String>,
    /// Keys where b differs from a after the bound (None: no duplication, or not judged).
    pub dup_diff: Option<usize>,
    /// Seconds from heal until every partition had its replica count.
    pub recovery_s: Option<f64>,
    /// `petrel-check validate`'s verdict: ok, exit N, skipped, not found, timeout.
    pub validate: String,
    pub wall_s: f64,
    /// Where its logs are (kept only for failing campaigns, or with --keep).
    pub dir: Option<PathBuf>,
}

impl Outcome {
    fn applied_by_kind(&self) -> BTreeMap<Kind, usize> {
        let mut m = BTreeMap::new();
        for f in self.faults.iter().filter(|f| f.applied) {
            *m.entry(f.fault.kind).or_insert(0) += 1;
        }
        m
    }
}

/// `petrel campaign …`.
pub async fn main(args: Args) -> Result<ExitCode> {
    let seeds = parse_seeds(&args.seeds)?;
    let kinds = nemesis::parse_list(&args.nemesis).map_err(anyhow::Error::msg)?;
    if !(1.0..=600.0).contains(&args.duration) {
        bail!("--duration must be between 1 and 600 seconds");
    }
    if args.jobs == 0 || args.jobs > 8 {
        bail!("--jobs must be between 1 and 8");
    }
    if args.clients == 0 || args.keys == 0 || args.partitions == 0 {
        bail!("--clients, --keys and --partitions must be at least 1");
    }
    if let Some(b) = &args.bug {
        serde_json::from_value::<petrel_core::Bug>(serde_json::Value::String(b.clone()))
            .with_context(|| format!("--bug {b} names no petrel_core::Bug"))?;
    }
    netns::check_available()?;
    for r in netns::sweep_stale() {
        eprintln!("campaign: removed {r}, left by a harness that no longer runs");
    }
    tokio::spawn(async {
        watch_signals().await;
        if !STOP.swap(true, Ordering::SeqCst) {
            eprintln!("campaign: stopping (cleaning up namespaces and processes)…");
        }
    });
    let rt = tokio::runtime::Handle::current();
    let started = Instant::now();
    let json = args.json;
    let results = tokio::task::spawn_blocking(move || run_all(&args, &seeds, &kinds, rt))
        .await
        .context("the campaign runner failed")??;
    let (outcomes, dir) = results;
    let wall = started.elapsed().as_secs_f64();
    report(&outcomes, &dir, wall, json)
}

async fn watch_signals() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

struct Shared {
    args: Args,
    kinds: Vec<Kind>,
    exe: PathBuf,
    checker: Option<PathBuf>,
    dir: PathBuf,
    rt: tokio::runtime::Handle,
}

type RunAll = (Vec<Outcome>, PathBuf);

fn run_all(
    args: &Args,
    seeds: &[u64],
    kinds: &[Kind],
    rt: tokio::runtime::Handle,
) -> Result<RunAll> {
    let exe = std::env::current_exe().context("cannot find the petrel binary")?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("petrel-campaign-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let checker = if args.no_validate {
        None
    } else {
        let c = find_checker(args.petrel_check.as_deref(), &exe);
        if c.is_none() {
            eprintln!("campaign: petrel-check not found (next to petrel or on PATH; --petrel-check PATH): event logs are not validated");
        }
        c
    };
    let shared = Arc::new(Shared {
        args: args.clone(),
        kinds: kinds.to_vec(),
        exe,
        checker,
        dir: dir.clone(),
        rt,
    });
    let queue: Arc<Mutex<Vec<(usize, u64)>>> = Arc::new(Mutex::new(
        seeds.iter().copied().enumerate().rev().collect(),
    ));
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(AtomicUsize::new(0));
    let total = seeds.len();
    let mut threads = Vec::new();
    for _ in 0..args.jobs.min(total.max(1)) {
        let (queue, results, shared, finished) = (
            queue.clone(),
            results.clone(),
            shared.clone(),
            finished.clone(),
        );
        threads.push(std::thread::spawn(move || loop {
            if STOP.load(Ordering::Relaxed) {
                return;
            }
            let next = queue.lock().ok().and_then(|mut q| q.pop());
            let Some((k, seed)) = next else {
                return;
            };
            let o = campaign(&shared, k as u64, seed);
            let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
            eprintln!("[{n}/{total}] {}", line(&o));
            if let Ok(mut r) = results.lock() {
                r.push(o);
            }
        }));
    }
    for t in threads {
        if t.join().is_err() {
            eprintln!("campaign: a runner thread panicked");
        }
    }
    let mut outcomes = results.lock().map(|r| r.clone()).unwrap_or_default();
    outcomes.sort_by_key(|o| o.seed);
    Ok((outcomes, dir))
}

fn find_checker(given: Option<&Path>, exe: &Path) -> Option<PathBuf> {
    if let Some(p) = given {
        return p.exists().then(|| p.to_path_buf());
    }
    let beside = exe.parent().map(|d| d.join("petrel-check"));
    if let Some(b) = beside.filter(|b| b.exists()) {
        return Some(b);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("petrel-check"))
            .find(|p| p.exists())
    })
}

fn line(o: &Outcome) -> String {
    let faults: Vec<String> = o
        .applied_by_kind()
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect();
    format!(
        "seed {} {}: {} ops, {} acked, {} lost, linearizable {}, dup diff {}, recovery {}, validate {}, faults [{}], {:.1} s{}",
        o.seed,
        if o.pass { "pass" } else { "FAIL" },
        o.ops,
        o.acked_writes,
        o.lost,
        o.linearizable,
        o.dup_diff.map_or("-".into(), |d| d.to_string()),
        o.recovery_s.map_or("-".into(), |r| format!("{r:.1} s")),
        o.validate,
        faults.join(" "),
        o.wall_s,
        if o.pass {
            String::new()
        } else {
            format!(" — {}", o.failures.join("; "))
        }
    )
}

/// One campaign, start to verdict; never panics on a failing system (a failure is a
/// verdict), and always removes its namespaces and processes.
fn campaign(shared: &Shared, k: u64, seed: u64) -> Outcome {
    let started = Instant::now();
    let run_dir = shared.dir.join(format!("seed-{seed}"));
    let mut o = Outcome {
        seed,
        pass: false,
        failures: Vec::new(),
        faults: Vec::new(),
        ops: 0,
        acked_writes: 0,
        unknown: 0,
        lost: 0,
        lost_detail: Vec::new(),
        linearizable: "-".into(),
        lin_detail: Vec::new(),
        dup_diff: None,
        recovery_s: None,
        validate: "-".into(),
        wall_s: 0.0,
        dir: None,
    };
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut ops = Vec::new();
    if let Err(e) = campaign_inner(shared, k, seed, &run_dir, &mut o, &mut ops) {
        o.failures.push(format!("harness: {e:#}"));
    }
    if STOP.load(Ordering::Relaxed) {
        o.failures.push("interrupted".into());
    }
    o.pass = o.failures.is_empty();
    o.wall_s = started.elapsed().as_secs_f64();
    if o.pass && !shared.args.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        let _ = save(&run_dir, &o, &ops);
        o.dir = Some(run_dir);
    }
    o
}

fn save(dir: &Path, o: &Outcome, ops: &[verdict::Op]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(o)?)?;
    let mut text = String::new();
    for op in ops {
        text.push_str(&serde_json::to_string(op)?);
        text.push('\n');
    }
    std::fs::write(dir.join("ops.jsonl"), text)?;
    Ok(())
}

fn campaign_inner(
    shared: &Shared,
    k: u64,
    seed: u64,
    run_dir: &Path,
    o: &mut Outcome,
    ops_out: &mut Vec<verdict::Op>,
) -> Result<()> {
    let args = &shared.args;
    let dup = !args.no_dup;
    let hosts = if dup {
        2 * (REPLICAS + 1)
    } else {
        REPLICAS + 1
    };
    let shape = Shape {
        partitions: args.partitions,
        replicas: REPLICAS,
        dup,
        spare_meta: args.spare_meta,
    };
    let schedule = nemesis::schedule(seed, &shared.kinds, args.duration, shape);
    std::fs::create_dir_all(run_dir)?;
    std::fs::write(
        run_dir.join("schedule.txt"),
        schedule
            .iter()
            .map(|f| format!("{f}\n"))
            .collect::<String>(),
    )?;
    if args.verbose {
        for f in &schedule {
            eprintln!("[seed {seed}] planned {f}");
        }
    }
    let net = netns::Net::create(k, hosts)?;
    let env: Vec<(String, String)> = args
        .bug
        .iter()
        .map(|b| (crate::runtime::TEST_BUG_ENV.to_string(), b.clone()))
        .collect();
    let clusters = Clusters::lay_out(run_dir, &net, args.partitions, dup, &shared.exe, env)?;
    let clusters = Arc::new(Mutex::new(clusters));
    let lock = || match clusters.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    lock().start_all(&net)?;
    let load = |side: Side| -> Result<Option<crate::config::Config>> {
        lock()
            .client_config(side)
            .map(crate::config::Config::load)
            .transpose()
    };
    let cfg_a = load(Side::A)?.context("no cluster a")?;
    let cfg_b = if dup { load(Side::B)? } else { None };
    let rt = shared.rt.clone();
    if dup {
        let admin = lock()
            .admin_config(Side::A)
            .map(crate::config::Config::load)
            .transpose()?
            .context("no admin config")?;
        start_duplication(&rt, &admin, cfg_b.as_ref(), args.partitions)?;
    }
    if STOP.load(Ordering::Relaxed) {
        return Ok(());
    }
    // The workload and the nemesis start together.
    let history = crate::client::History::open(&run_dir.join("a").join("client-history.jsonl"))
        .context("cannot open the client history")?;
    let clients: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..args.clients {
            if let Some(c) = workload::connect(&cfg_a, &history, Duration::from_secs(10)).await {
                v.push(c);
            }
        }
        v
    });
    if clients.len() < args.clients {
        bail!(
            "only {} of {} clients could connect before any fault",
            clients.len(),
            args.clients
        );
    }
    let rec = workload::Recorder::new();
    let plan = workload::Plan {
        seed,
        clients: args.clients,
        keys: args.keys,
        duration: Duration::from_secs_f64(args.duration),
        op_deadline: Duration::from_secs(2),
    };
    let t0 = Instant::now();
    let (injected, mut errors) = std::thread::scope(|s| {
        let nemesis = s.spawn(|| {
            let mut inj = inject::Injector {
                net: &net,
                clusters: clusters.clone(),
                rt: rt.clone(),
                run_dir,
                configs: [Some(cfg_a.clone()), cfg_b.clone()],
                rng: nemesis::Rng::new(seed ^ 0xFA17),
                verbose: args.verbose.then_some(seed),
            };
            inj.run(&schedule, t0, &STOP)
        });
        rt.block_on(workload::run(&plan, clients, rec.clone(), &STOP));
        nemesis
            .join()
            .unwrap_or_else(|_| (Vec::new(), vec!["the nemesis thread panicked".into()]))
    });
    o.faults = injected;
    if STOP.load(Ordering::Relaxed) {
        // Interrupted: no verdict; the guards remove the processes and namespaces.
        return Ok(());
    }
    errors.extend(inject::heal_all(&net, &clusters));
    let healed = Instant::now();
    // Recovery: every partition of a (and of b's follower table) back to its replica count.
    let recovered = wait_recovery(
        &rt,
        &[Some(&cfg_a), cfg_b.as_ref()],
        args.partitions,
        Duration::from_secs_f64(args.recovery_bound),
    );
    match recovered {
        Some(()) => o.recovery_s = Some(healed.elapsed().as_secs_f64()),
        None => {
            o.failures.push(format!(
                "not every partition was back to {REPLICAS} replicas within {} s of heal (see status-after-heal.txt)",
                args.recovery_bound
            ));
            let mut text = String::new();
            for (name, cfg) in [("a", Some(&cfg_a)), ("b", cfg_b.as_ref())] {
                if let Some(cfg) = cfg {
                    let status = inject::cluster_status(&rt, cfg);
                    text.push_str(&format!("cluster {name}: {status:#?}\n"));
                }
            }
            let _ = std::fs::write(run_dir.join("status-after-heal.txt"), text);
        }
    }
    // Final reads of every key on a.
    let keys = workload::keys(args.keys);
    let finals: BTreeMap<String, Option<String>> = rt.block_on(async {
        let mut out = BTreeMap::new();
        let Some(client) = workload::connect(&cfg_a, &history, Duration::from_secs(10)).await
        else {
            return out;
        };
        // Bounded: 20 s for all of them (an unavailable cluster fails the campaign).
        let until = Instant::now() + Duration::from_secs(20);
        for key in &keys {
            if STOP.load(Ordering::Relaxed) || Instant::now() > until {
                break;
            }
            for _ in 0..4 {
                if let End::Read(_, v) = workload::call(
                    &rec,
                    &client,
                    usize::MAX,
                    key,
                    Act::Get,
                    Duration::from_secs(3),
                    true,
                )
                .await
                {
                    out.insert(key.clone(), v);
                    break;
                }
            }
        }
        client.close().await;
        out
    });
    // b's follower table equals a's, key by key, within the bound.
    if let Some(b) = &cfg_b {
        let diff = compare_follower(
            &rt,
            b,
            &finals,
            Duration::from_secs_f64(args.recovery_bound),
        );
        if diff > 0 {
            o.failures.push(format!(
                "b's follower table differs from a's on {diff} keys (see dup-list.txt)"
            ));
            if let Some(admin) = lock().admin_config(Side::A).map(Path::to_path_buf) {
                if let Ok(admin) = crate::config::Config::load(&admin) {
                    let listed = rt.block_on(crate::admin::run(
                        &admin,
                        &crate::admin::Request::DupList,
                        Duration::from_secs(3),
                    ));
                    let text = match listed {
                        Ok(out) => format!("{}\n{:#}\n", out.text, out.json),
                        Err(e) => format!("dup list: {e}\n"),
                    };
                    let _ = std::fs::write(run_dir.join("dup-list.txt"), text);
                }
            }
        }
        o.dup_diff = Some(diff);
    }
    errors.extend(lock().crashed());
    lock().stop_all();
    drop(history);
    // Judge the history.
    let ops = rec.take();
    let work: Vec<&verdict::Op> = ops.iter().filter(|op| !op.final_read).collect();
    o.ops = work.len();
    o.acked_writes = work.iter().filter(|op| op.acked_write()).count();
    o.unknown = work
        .iter()
        .filter(|op| matches!(op.end, End::Unknown(_)))
        .count();
    let lin = verdict::linearizable(&ops);
    o.linearizable = lin.short().into();
    match &lin {
        Lin::Yes => {}
        Lin::No(d) | Lin::Inconclusive(d) => {
            o.lin_detail = d.clone();
            o.failures.push(format!(
                "history not linearizable{}: {}",
                if matches!(lin, Lin::Inconclusive(_)) {
                    " (inconclusive)"
                } else {
                    ""
                },
                d.first().cloned().unwrap_or_default()
            ));
        }
    }
    let (lost, unread) = verdict::lost_writes(&ops);
    o.lost = lost.len();
    if !lost.is_empty() {
        o.failures.push(format!(
            "{} acknowledged writes lost: {}",
            lost.len(),
            lost[0]
        ));
    }
    o.lost_detail = lost.into_iter().take(20).collect();
    if finals.len() < keys.len() || !unread.is_empty() {
        o.failures.push(format!(
            "{} of {} keys could not be read after heal",
            keys.len() - finals.len(),
            keys.len()
        ));
    }
    for e in errors {
        o.failures.push(e);
    }
    // Validate every node's event log and the client history.
    o.validate = match &shared.checker {
        _ if STOP.load(Ordering::Relaxed) => "skipped (interrupted)".into(),
        None if args.no_validate => "skipped".into(),
        None => "not found".into(),
        Some(checker) => {
            let v = validate(checker, run_dir, None);
            if v != "ok" {
                o.failures.push(format!("petrel-check validate: {v}"));
                let _ = validate(checker, run_dir, Some(&run_dir.join("trace.json")));
            }
            v
        }
    };
    *ops_out = ops;
    drop(clusters);
    drop(net);
    Ok(())
}

/// `dup add --table 1 --remote-cluster b --full`, then wait (bounded) until it is in LOG
/// and b's follower table has every partition.
fn start_duplication(
    rt: &tokio::runtime::Handle,
    admin: &crate::config::Config,
    b: Option<&crate::config::Config>,
    partitions: u8,
) -> Result<()> {
    use crate::admin::{run, Request};
    let add = Request::DupAdd {
        table: 1,
        remote_cluster: "b".into(),
        full: true,
        remote_table: None,
        remote_replicas: None,
    };
    let out = rt
        .block_on(run(admin, &add, Duration::from_secs(10)))
        .map_err(|e| anyhow::anyhow!("dup add: {e}"))?;
    if !out.ok {
        bail!("dup add refused: {}", out.text);
    }
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = rt
            .block_on(run(admin, &Request::DupList, Duration::from_secs(2)))
            .ok();
        let in_log = listed.is_some_and(|l| {
            l.json["duplications"]
                .as_array()
                .is_some_and(|d| !d.is_empty() && d.iter().all(|x| x["status"] == "LOG"))
        });
        let follower = b.is_some_and(|b| {
            inject::cluster_status(rt, b).is_some_and(|(configs, _)| {
                configs.len() == partitions as usize && configs.iter().all(|c| c.primary.is_some())
            })
        });
        if in_log && follower {
            return Ok(());
        }
        if Instant::now() > until || STOP.load(Ordering::Relaxed) {
            bail!("the duplication a→b did not reach LOG with a follower table within 20 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until every partition of table 1 of each cluster has a live primary and its
/// `REPLICAS - 1` live secondaries; `None` if not within `bound`.
fn wait_recovery(
    rt: &tokio::runtime::Handle,
    configs: &[Option<&crate::config::Config>],
    partitions: u8,
    bound: Duration,
) -> Option<()> {
    let until = Instant::now() + bound;
    loop {
        let full = configs.iter().flatten().all(|cfg| {
            inject::cluster_status(rt, cfg).is_some_and(|(parts, alive)| {
                let live =
                    |id: stateright::actor::Id| alive.contains(&crate::transport::raw_of(id));
                parts.len() == partitions as usize
                    && parts.iter().all(|c| {
                        c.primary.is_some_and(live)
                            && c.secondaries.len() == REPLICAS - 1
                            && c.secondaries.iter().all(|s| live(*s))
                    })
            })
        });
        if full {
            return Some(());
        }
        if Instant::now() > until || STOP.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Read every key from b's follower table until it equals `want` (bounded); the number
/// of keys that still differ.
fn compare_follower(
    rt: &tokio::runtime::Handle,
    b: &crate::config::Config,
    want: &BTreeMap<String, Option<String>>,
    bound: Duration,
) -> usize {
    let until = Instant::now() + bound;
    rt.block_on(async {
        let mut cfg = b.clone();
        cfg.client.table = Some(1);
        cfg.client.deadline_ms = Some(2000);
        let mut diff = want.len();
        while Instant::now() < until && !STOP.load(Ordering::Relaxed) {
            if let Ok(client) = crate::client::Client::connect(&cfg).await {
                diff = 0;
                for (key, value) in want {
                    let got = client.get(key.as_str()).await;
                    match got {
                        Ok(v) if v.as_ref().map(|v| v.to_text()) == *value => {}
                        _ => diff += 1,
                    }
                }
                client.close().await;
                if diff == 0 {
                    return 0;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        diff
    })
}

/// Run `petrel-check validate DIR [--trace-out F]` (bounded: 180 s); "ok" or what failed.
fn validate(checker: &Path, dir: &Path, trace: Option<&Path>) -> String {
    let out_path = dir.join(if trace.is_some() {
        "validate-trace.txt"
    } else {
        "validate.txt"
    });
    let Ok(out) = std::fs::File::create(&out_path) else {
        return "cannot write its report".into();
    };
    let Ok(err) = out.try_clone() else {
        return "cannot write its report".into();
    };
    let mut cmd = std::process::Command::new(checker);
    cmd.arg("validate").arg(dir);
    if let Some(t) = trace {
        cmd.arg("--trace-out").arg(t);
    }
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let Ok(mut child) = child else {
        return "could not be started".into();
    };
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return "ok".into(),
            Ok(Some(s)) => {
                return match s.code() {
                    Some(c) => format!("exit {c} (see {})", out_path.display()),
                    None => format!("killed ({s})"),
                }
            }
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return "timeout (180 s)".into();
            }
        }
    }
}

fn report(outcomes: &[Outcome], dir: &Path, wall: f64, as_json: bool) -> Result<ExitCode> {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.pass).collect();
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for o in outcomes {
        for (k, n) in o.applied_by_kind() {
            *by_kind.entry(k).or_insert(0) += n;
        }
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let recovery_max = outcomes
        .iter()
        .filter_map(|o| o.recovery_s)
        .fold(0.0_f64, f64::max);
    let summary = serde_json::json!({
        "campaigns": outcomes.len(),
        "passed": outcomes.len() - failed.len(),
        "failed": failed.len(),
        "faults_by_kind": by_kind.iter().map(|(k, n)| (k.name().to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "ops": sum(|o| o.ops),
        "acked_writes": sum(|o| o.acked_writes),
        "unknown": sum(|o| o.unknown),
        "lost": sum(|o| o.lost),
        "not_linearizable": outcomes.iter().filter(|o| o.linearizable != "yes").count(),
        "dup_mismatches": outcomes.iter().filter(|o| o.dup_diff.is_some_and(|d| d > 0)).count(),
        "recovery_max_s": recovery_max,
        "wall_s": wall,
    });
    if outcomes.is_empty() {
        eprintln!("campaign: no campaign ran");
    }
    if failed.is_empty() && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(dir);
    }
    if crate::campaign::STOP.load(Ordering::Relaxed) {
        eprintln!("campaign: interrupted");
    }
    if outcomes.iter().any(|o| o.validate == "not found") {
        eprintln!("campaign: event logs were not validated (petrel-check not found)");
    }
    let json = serde_json::json!({ "campaigns": outcomes, "summary": summary });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "{:>6} {:>5} {:<40} {:>6} {:>6} {:>5} {:>6} {:>4} {:>9} {:>9}",
            "seed", "pass", "faults", "ops", "acked", "lost", "lin", "dup", "recovery", "validate"
        );
        for o in outcomes {
            let faults: Vec<String> = o
                .applied_by_kind()
                .iter()
                .map(|(k, n)| {
                    if *n > 1 {
                        format!("{k}×{n}")
                    } else {
                        k.to_string()
                    }
                })
                .collect();
            println!(
                "{:>6} {:>5} {:<40} {:>6} {:>6} {:>5} {:>6} {:>4} {:>9} {:>9}",
                o.seed,
                if o.pass { "yes" } else { "NO" },
                faults.join(","),
                o.ops,
                o.acked_writes,
                o.lost,
                o.linearizable,
                o.dup_diff.map_or("-".into(), |d| d.to_string()),
                o.recovery_s.map_or("-".into(), |r| format!("{r:.1} s")),
                if o.validate.starts_with("exit") {
                    "FAIL".to_string()
                } else {
                    o.validate.clone()
                },
            );
        }
        println!(
            "\n{} campaigns, {} passed, {} failed; faults {}; {} ops, {} acknowledged writes, {} lost; {} not linearizable; {} dup mismatches; slowest recovery {:.1} s; {:.0} s wall",
            outcomes.len(),
            outcomes.len() - failed.len(),
            failed.len(),
            by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            sum(|o| o.ops),
            sum(|o| o.acked_writes),
            sum(|o| o.lost),
            summary["not_linearizable"],
            summary["dup_mismatches"],
            recovery_max,
            wall
        );
    }
    if !failed.is_empty() {
        eprintln!("\nfailing campaigns (logs, event logs, history, schedule, verdict):");
        for o in &failed {
            eprintln!(
                "  seed {}: {}\n    {}",
                o.seed,
                o.dir
                    .as_ref()
                    .map_or("-".into(), |d| d.display().to_string()),
                o.failures.join("\n    ")
            );
        }
    }
    Ok(
        if failed.is_empty() && !outcomes.is_empty() && !STOP.load(Ordering::Relaxed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seeds("1..3").ok(), Some(vec![1, 2, 3]));
        assert_eq!(parse_seeds("7").ok(), Some(vec![7]));
        assert_eq!(parse_seeds("1..=2").ok(), Some(vec![1, 2]));
        assert!(parse_seeds("3..1").is_err());
        assert!(parse_seeds("a..b").is_err());
        assert!(parse_seeds("").is_err());
    }
}
