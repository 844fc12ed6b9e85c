//! `petrel-check bench`: Petrel's engine against stateright's own `spawn_bfs` and `spawn_dfs`
//! on the same `Model`, in unique states per CPU-second.
//!
//! Every (round, model, engine) run is a child process (this binary, `bench --child`), so
//! each engine starts from a fresh heap and its CPU time (`getrusage(RUSAGE_SELF)`: user +
//! system, all threads) and peak RSS are its own. Rounds are interleaved (round 1 runs every
//! model on every engine, then round 2, ...; the engine order rotates from round to round) so
//! that the machine's background load spreads over all engines alike. A model's rate for an
//! engine is the unique states of all its rounds over their CPU seconds; the ratios divide
//! Petrel's rate by stateright's. The unique and total state counts of every run are printed
//! and must agree across engines (exit 1 otherwise).
//!
//! Models: any Petrel scenario (no mutant; Petrel checks every property including the
//! `eventually` ones under fairness, stateright its own way), `paxos` (stateright's paxos
//! example, `--paxos-clients`, default 3) and `2pc` (its two-phase-commit example, `--rms`,
//! default 9), in this crate's copies (`bench_paxos.rs`, `bench_2pc.rs`).

#[path = "bench_paxos.rs"]
mod paxos;
#[path = "bench_2pc.rs"]
mod twopc;

use petrel_checks::engine::{self, Fairness, Options};
use petrel_core::Bugs;
use petrel_spec::{scenario, PetrelModel};
use serde_json::{json, Value};
use stateright::{Checker, HasDiscoveries};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Models, comma-separated: Petrel scenarios, `paxos`, `2pc`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "replication,dup-log-shipping,paxos,2pc"
    )]
    models: Vec<String>,
    /// Engines, comma-separated: `petrel`, `bfs` (stateright spawn_bfs), `dfs` (spawn_dfs).
    #[arg(long, value_delimiter = ',', default_value = "petrel,bfs,dfs")]
    engines: Vec<String>,
    /// Rounds (each runs every model on every engine once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads per engine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Clients of the paxos model.
    #[arg(long, default_value_t = 3)]
    paxos_clients: usize,
    /// Resource managers of the 2pc model.
    #[arg(long, default_value_t = 9)]
    rms: usize,
    /// One JSON object per model instead of the table.
    #[arg(long)]
    json: bool,
    /// Internal: run ENGINE on the single model of `--models` in this process, print one
    /// JSON line.
    #[arg(long, hide = true, value_name = "ENGINE")]
    child: Option<String>,
}

/// What one child run reports.
#[derive(Clone, Debug)]
struct RunResult {
    unique: u64,
    total: u64,
    cpu_s: f64,
    wall_s: f64,
    peak_rss: u64,
    base_rss: u64,
    complete: bool,
}

/// CPU seconds (user + system, every thread) and peak RSS in bytes of this process.
fn rusage() -> (f64, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (f64::NAN, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as u64 * 1024,
    )
}

/// Current RSS in bytes (`VmRSS` of /proc/self/status), 0 if unknown.
fn current_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs one engine on one model in this process.
fn run_engine<M>(model: M, engine_name: &str, threads: usize) -> Result<RunResult, String>
where
    M: Fairness + Send + Sync + 'static,
    M::State: Clone + Hash + Debug + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    let base_rss = current_rss();
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    let (unique, total, complete) = match engine_name {
        "petrel" => {
            let opts = Options {
                threads: threads.max(1),
                stop_when_decided: false,
                ..Options::default()
            };
            let r = engine::check(&model, &opts);
            (r.unique_states as u64, r.total_states as u64, r.complete)
        }
        "bfs" | "dfs" => {
            // Never stop early on discoveries: explore everything, like Petrel does.
            let b = model
                .checker()
                .threads(threads.max(1))
                .finish_when(HasDiscoveries::AnyOf(BTreeSet::new()));
            let c: Box<dyn Checker<M>> = if engine_name == "bfs" {
                Box::new(b.spawn_bfs().join())
            } else {
                Box::new(b.spawn_dfs().join())
            };
            (
                c.unique_state_count() as u64,
                c.state_count() as u64,
                c.is_done(),
            )
        }
        other => return Err(format!("unknown engine `{other}` (petrel, bfs, dfs)")),
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let (cpu1, peak_rss) = rusage();
    Ok(RunResult {
        unique,
        total,
        cpu_s: cpu1 - cpu0,
        wall_s,
        peak_rss,
        base_rss,
        complete,
    })
}

fn child(args: &BenchArgs, engine_name: &str) -> Result<u8, String> {
    let [model] = args.models.as_slice() else {
        return Err("--child needs exactly one model".into());
    };
    let r = match model.as_str() {
        "paxos" => run_engine(
            paxos::Paxos::new(args.paxos_clients),
            engine_name,
            args.threads,
        )?,
        "2pc" => run_engine(twopc::TwoPc { rms: args.rms }, engine_name, args.threads)?,
        name => {
            let sc = scenario(name).ok_or_else(|| {
                format!("unknown model `{name}` (a Petrel scenario, paxos or 2pc)")
            })?;
            run_engine(
                PetrelModel::new(&sc, Bugs::none()),
                engine_name,
                args.threads,
            )?
        }
    };
    println!(
        "{}",
        json!({
            "unique": r.unique, "total": r.total, "cpu_s": r.cpu_s, "wall_s": r.wall_s,
            "peak_rss": r.peak_rss, "base_rss": r.base_rss, "complete": r.complete,
        })
    );
    Ok(0)
}

fn spawn_child(args: &BenchArgs, model: &str, engine_name: &str) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let out = Command::new(exe)
        .args(["bench", "--child", engine_name, "--models", model])
        .args(["--threads", &args.threads.to_string()])
        .args(["--paxos-clients", &args.paxos_clients.to_string()])
        .args(["--rms", &args.rms.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the bench child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bench child {engine_name} on {model} failed ({})",
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("bench child {engine_name} on {model} printed no result"))?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(RunResult {
        unique: v["unique"].as_u64().unwrap_or(0),
        total: v["total"].as_u64().unwrap_or(0),
        cpu_s: num("cpu_s"),
        wall_s: num("wall_s"),
        peak_rss: v["peak_rss"].as_u64().unwrap_or(0),
        base_rss: v["base_rss"].as_u64().unwrap_or(0),
        complete: v["complete"].as_bool().unwrap_or(false),
    })
}

/// Aggregate of one engine's rounds on one model.
struct Agg {
    unique_per_cpu_s: f64,
    per_round: Vec<f64>,
    cpu_s: f64,
    wall_s: f64,
    unique: BTreeSet<u64>,
    total: BTreeSet<u64>,
    bytes_per_state: f64,
    complete: bool,
}

fn aggregate(runs: &[RunResult]) -> Agg {
    let unique: u64 = runs.iter().map(|r| r.unique).sum();
    let cpu: f64 = runs.iter().map(|r| r.cpu_s).sum();
    let peak = runs
        .iter()
        .map(|r| r.peak_rss.saturating_sub(r.base_rss))
        .max()
        .unwrap_or(0);
    let n = runs.first().map_or(1, |r| r.unique.max(1));
    Agg {
        unique_per_cpu_s: unique as f64 / cpu.max(1e-9),
        per_round: runs
            .iter()
            .map(|r| r.unique as f64 / r.cpu_s.max(1e-9))
            .collect(),
        cpu_s: cpu / runs.len().max(1) as f64,
        wall_s: runs.iter().map(|r| r.wall_s).sum::<f64>() / runs.len().max(1) as f64,
        unique: runs.iter().map(|r| r.unique).collect(),
        total: runs.iter().map(|r| r.total).collect(),
        bytes_per_state: peak as f64 / n as f64,
        complete: runs.iter().all(|r| r.complete),
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn set_str(s: &BTreeSet<u64>) -> String {
    s.iter().map(u64::to_string).collect::<Vec<_>>().join("/")
}

/// `petrel-check bench`.
pub fn run(args: &BenchArgs) -> Result<u8, String> {
    if let Some(e) = &args.child {
        return child(args, e);
    }
    for e in &args.engines {
        if !matches!(e.as_str(), "petrel" | "bfs" | "dfs") {
            return Err(format!("unknown engine `{e}` (petrel, bfs, dfs)"));
        }
    }
    for m in &args.models {
        if m != "paxos" && m != "2pc" && scenario(m).is_none() {
            return Err(format!(
                "unknown model `{m}` (a Petrel scenario, paxos or 2pc)"
            ));
        }
    }
    let n_eng = args.engines.len();
    // runs[model][engine]
    let mut runs: Vec<Vec<Vec<RunResult>>> = vec![vec![Vec::new(); n_eng]; args.models.len()];
    for round in 0..args.rounds {
        for (mi, model) in args.models.iter().enumerate() {
            for k in 0..n_eng {
                let ei = (k + round) % n_eng;
                let e = &args.engines[ei];
                let r = spawn_child(args, model, e)?;
                eprintln!(
                    "round {}/{} {model:<20} {e:<6} unique {:>10} total {:>11} cpu {:>8.2}s wall {:>8.2}s peak RSS {:>6} MB  {:>8} unique/CPU-s",
                    round + 1,
                    args.rounds,
                    r.unique,
                    r.total,
                    r.cpu_s,
                    r.wall_s,
                    r.peak_rss / (1 << 20),
                    fmt_rate(r.unique as f64 / r.cpu_s.max(1e-9)),
                );
                runs[mi][ei].push(r);
            }
        }
    }
    let mut all_agree = true;
    let idx = |name: &str| args.engines.iter().position(|e| e == name);
    if !args.json {
        println!(
            "\n{:<20} {:>10} {:>12}  {:>30}  {:>8} {:>8}  counts",
            "model",
            "unique",
            "total",
            args.engines
                .iter()
                .map(|e| format!("{e:>9}"))
                .collect::<Vec<_>>()
                .join(" "),
            "÷ BFS",
            "÷ DFS"
        );
    }
    for (mi, model) in args.models.iter().enumerate() {
        let aggs: Vec<Agg> = runs[mi].iter().map(|r| aggregate(r)).collect();
        let uniq: BTreeSet<u64> = aggs.iter().flat_map(|a| a.unique.iter().copied()).collect();
        let tot: BTreeSet<u64> = aggs.iter().flat_map(|a| a.total.iter().copied()).collect();
        let agree = uniq.len() == 1 && tot.len() == 1 && aggs.iter().all(|a| a.complete);
        all_agree &= agree;
        let ratio = |other: &str| -> Option<f64> {
            let p = idx("petrel")?;
            let o = idx(other)?;
            Some(aggs[p].unique_per_cpu_s / aggs[o].unique_per_cpu_s)
        };
        if args.json {
            let engines: serde_json::Map<String, Value> = args
                .engines
                .iter()
                .zip(&aggs)
                .map(|(e, a)| {
                    (
                        e.clone(),
                        json!({
                            "unique_per_cpu_s": a.unique_per_cpu_s,
                            "unique_per_cpu_s_per_round": a.per_round,
                            "cpu_s_mean": a.cpu_s,
                            "wall_s_mean": a.wall_s,
                            "unique_states": a.unique.iter().collect::<Vec<_>>(),
                            "total_states": a.total.iter().collect::<Vec<_>>(),
                            "peak_rss_bytes_per_unique_state": a.bytes_per_state,
                            "complete": a.complete,
                        }),
                    )
                })
                .collect();
            println!(
                "{}",
                json!({
                    "model": model,
                    "rounds": args.rounds,
                    "threads": args.threads,
                    "engines": engines,
                    "ratio_vs_stateright_bfs": ratio("bfs"),
                    "ratio_vs_stateright_dfs": ratio("dfs"),
                    "counts_agree": agree,
                })
            );
        } else {
            println!(
                "{:<20} {:>10} {:>12}  {:>30}  {:>8} {:>8}  {}",
                model,
                set_str(&uniq),
                set_str(&tot),
                aggs.iter()
                    .map(|a| format!("{:>9}", fmt_rate(a.unique_per_cpu_s)))
                    .collect::<Vec<_>>()
                    .join(" "),
                ratio("bfs").map_or("-".into(), |r| format!("{r:.2}×")),
                ratio("dfs").map_or("-".into(), |r| format!("{r:.2}×")),
                if agree { "agree" } else { "DIFFER" }
            );
        }
    }
    if !args.json {
        println!(
            "\n(unique states per CPU-second; {} rounds, {} thread(s) per engine)",
            args.rounds, args.threads
        );
        println!("peak RSS per unique state (above the process's start):");
        for (mi, model) in args.models.iter().enumerate() {
            let parts: Vec<String> = args
                .engines
                .iter()
                .zip(&runs[mi])
                .map(|(e, r)| format!("{e} {:.0} B", aggregate(r).bytes_per_state))
                .collect();
            println!("  {:<20} {}", model, parts.join(", "));
        }
    }
    Ok(if all_agree { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example copies have the state counts stateright's own tests give for its examples
    /// (paxos with 2 clients: 16,668), and all three engines agree on them.
    #[test]
    fn example_models_agree_across_engines() {
        for engine_name in ["petrel", "bfs", "dfs"] {
            let r = run_engine(paxos::Paxos::new(2), engine_name, 1).expect("run");
            assert_eq!(r.unique, 16_668, "{engine_name} on paxos(2)");
        }
        let counts: Vec<(u64, u64)> = ["petrel", "bfs", "dfs"]
            .iter()
            .map(|e| {
                let r = run_engine(twopc::TwoPc { rms: 4 }, e, 1).expect("run");
                (r.unique, r.total)
            })
            .collect();
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
    }
}
