//! `petrel-check`: list, check, mutants, explore, view.
use clap::{Parser, Subcommand};
mod bench;

/// mimalloc: model checking is allocation-bound (every successor is a cloned state); this
/// applies to all engines `bench` compares, as each runs in this binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use petrel_checks::engine::{self, Limits, Options, Report};
use petrel_checks::petrel::{explorer_path, print_trace, trace_json};
use petrel_checks::view;
use petrel_core::Bugs;
use petrel_spec::properties::id_of;
use petrel_spec::{mutant, mutants, scenario, scenarios, PetrelModel, Scenario};
use serde_json::json;
use stateright::{Expectation, Model};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "petrel-check",
    about = "Exhaustively check Petrel's scenarios, mutants and liveness"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop after this many unique states (the run is then incomplete: exit 2).
    #[arg(long)]
    max_states: Option<usize>,
    /// Stop after this many seconds (the run is then incomplete: exit 2).
    #[arg(long)]
    timeout: Option<u64>,
    /// Judge liveness without weak fairness (every cycle counts).
    #[arg(long)]
    no_fairness: bool,
    /// One JSON object per line instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Scenarios and mutants, one line each.
    List,
    /// Check one scenario (or all) exhaustively.
    Check {
        scenario: Option<String>,
        #[arg(long)]
        all: bool,
        /// Switch on a mutant (a deliberately wrong transition).
        #[arg(long)]
        mutant: Option<String>,
        /// Write the first counterexample as petrel-trace/1 JSON.
        #[arg(long)]
        trace_out: Option<std::path::PathBuf>,
        /// With --trace-out: write the counterexample of this violated property (ID such as
        /// LIVE-2, or the full name) instead of the first one.
        #[arg(long, value_name = "ID")]
        property: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run every mutant on its scenario and every clean scenario.
    Mutants {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a scenario, then serve stateright's Explorer (at --addr) and the counterexample
    /// viewer (at --view-addr) for its first counterexample (loopback only).
    Explore {
        scenario: String,
        #[arg(long)]
        mutant: Option<String>,
        /// The stateright Explorer's address.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// The viewer's address (default: the Explorer's port + 1).
        #[arg(long)]
        view_addr: Option<std::net::SocketAddr>,
        /// Show the counterexample of this violated property (ID such as LIVE-2) instead of
        /// the first one.
        #[arg(long, value_name = "ID")]
        property: Option<String>,
        /// Worker threads for the check (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a real run of `petrel`: replay every node's event log through the core
    /// (conformance), judge the SAFE properties on the merged run, check the clients'
    /// history for linearizability. Exit 0 all hold, 1 a violation, 2 incomplete logs.
    Validate {
        /// Node data directories, or directories above them (e.g. a `petrel up --dir`).
        #[arg(required = true)]
        dirs: Vec<std::path::PathBuf>,
        /// A client history file (also found under DIRS: `*.history.jsonl`).
        #[arg(long = "history", value_name = "FILE")]
        histories: Vec<std::path::PathBuf>,
        /// Write the run (the steps before the first violation, or its end) as
        /// petrel-trace/1 for `petrel-check view`.
        #[arg(long)]
        trace_out: Option<std::path::PathBuf>,
        /// Steps kept in --trace-out.
        #[arg(long, default_value_t = 100)]
        trace_window: usize,
        #[arg(long)]
        json: bool,
    },
    /// Petrel's engine against stateright's spawn_bfs/spawn_dfs, unique states per CPU-second.
    Bench(bench::BenchArgs),
    /// Serve the counterexample viewer for a trace file (loopback only).
    View {
        file: std::path::PathBuf,
        #[arg(long, default_value = "127.0.0.1:3001")]
        addr: std::net::SocketAddr,
    },
}

fn options(run: &RunArgs, progress_label: String) -> Options {
    let mut o = Options::default();
    if let Some(t) = run.threads {
        o.threads = t.max(1);
    }
    o.limits = Limits {
        max_states: run.max_states,
        max_depth: None,
        timeout: run.timeout.map(Duration::from_secs),
    };
    o.fairness = !run.no_fairness;
    o.stop_when_decided = false;
    // Progress on stderr (stdout carries the table or the JSON): a spinner on a terminal,
    // otherwise a plain line every 30 s so that CI logs show a long job is alive.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let next_line = std::sync::atomic::AtomicU64::new(30);
    o.progress = Some(Box::new(move |p: &engine::Progress| {
        let rate = p.unique_states as f64 / p.elapsed.as_secs_f64().max(1e-3);
        let msg = format!(
            "{progress_label}: {} {} unique, {} total, depth {}, {:.0} states/s",
            p.phase, p.unique_states, p.total_states, p.depth, rate
        );
        if tty {
            bar.set_message(msg);
            bar.tick();
        } else if p.elapsed.as_secs() >= next_line.load(std::sync::atomic::Ordering::Relaxed) {
            next_line.store(
                p.elapsed.as_secs() + 30,
                std::sync::atomic::Ordering::Relaxed,
            );
            eprintln!("  {msg} ({:.0} s)", p.elapsed.as_secs_f64());
        }
    }));
    o
}

fn bugs_for(m: Option<&str>) -> Result<Bugs, String> {
    match m {
        None => Ok(Bugs::none()),
        Some(n) => mutant(n)
            .map(|m| Bugs::none().with(m.bug))
            .ok_or_else(|| format!("unknown mutant `{n}` (see `petrel-check list`)")),
    }
}

struct Outcome {
    report: Report<PetrelModel>,
    model: PetrelModel,
    cpu_threads: usize,
}

fn run_one(sc: &Scenario, mutant: Option<&str>, run: &RunArgs) -> Result<Outcome, String> {
    let bugs = bugs_for(mutant)?;
    let model = PetrelModel::new(sc, bugs);
    let label = match mutant {
        Some(m) => format!("{} [{m}]", sc.name),
        None => sc.name.to_string(),
    };
    let opts = options(run, label);
    let report = engine::check(&model, &opts);
    Ok(Outcome {
        report,
        model,
        cpu_threads: opts.threads,
    })
}

/// 0 = complete and every property holds, 1 = a property is violated, 2 = incomplete.
fn verdict(r: &Report<PetrelModel>) -> u8 {
    let violated = r
        .properties
        .iter()
        .any(|p| p.expectation != Expectation::Sometimes && !p.holds);
    if violated {
        1
    } else if !r.complete || !r.errors.is_empty() {
        2
    } else {
        0
    }
}

fn json_of(o: &Outcome, mutant: Option<&str>) -> serde_json::Value {
    let r = &o.report;
    json!({
        "scenario": o.model.scenario.name,
        "mutant": mutant,
        "complete": r.complete,
        "stop_reason": r.stop_reason,
        "unique_states": r.unique_states,
        "total_states": r.total_states,
        "edges": r.edges,
        "scc_count": r.scc_count,
        "max_depth": r.max_depth,
        "seconds": r.seconds,
        "bytes_per_state": r.bytes_per_state,
        "bytes_per_edge": r.bytes_per_edge,
        "peak_frontier": r.peak_frontier,
        "peak_frontier_bytes": r.peak_frontier_bytes,
        "peak_rss_mib": peak_rss_mib(),
        "properties": r.properties.iter().map(|p| json!({
            "id": id_of(p.name),
            "name": p.name,
            "holds": p.holds,
            "checker": p.checker,
            "counterexample_len": p.counterexample.as_ref().filter(|_| !p.holds).map(|t| t.len()),
            "loop_start": p.counterexample.as_ref().filter(|_| !p.holds).and_then(|t| t.loop_start),
        })).collect::<Vec<_>>(),
    })
}

/// This process's peak resident memory (Linux), for the matrix's memory column.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn print_table(o: &Outcome) {
    let r = &o.report;
    let cpu = r.seconds * o.cpu_threads as f64;
    println!(
        "\n{:<24} {:>9} {:>10} {:>10} {:>6} {:>8} {:>12} {:>8}",
        "scenario", "complete", "unique", "total", "depth", "seconds", "states/CPU-s", "B/state"
    );
    println!(
        "{:<24} {:>9} {:>10} {:>10} {:>6} {:>8.2} {:>12.0} {:>8.0}",
        o.model.scenario.name,
        if r.complete { "yes" } else { "NO" },
        r.unique_states,
        r.total_states,
        r.max_depth,
        r.seconds,
        r.unique_states as f64 / cpu.max(1e-6),
        r.bytes_per_state
    );
    if let Some(why) = &r.stop_reason {
        println!("  incomplete: {why}");
    }
    for e in &r.errors {
        println!("  error: {e}");
    }
    println!(
        "  {:<34} {:<10} {:<8} counterexample",
        "property", "verdict", "checker"
    );
    for p in &r.properties {
        let verdict = if !r.complete && p.holds {
            "unknown"
        } else if p.holds {
            "holds"
        } else {
            "VIOLATED"
        };
        let cex = match (&p.counterexample, p.holds) {
            (Some(t), false) => match t.loop_start {
                Some(l) => format!("lasso: {} steps, loop from step {}", t.len(), l + 1),
                None => format!("{} steps", t.len()),
            },
            _ => String::new(),
        };
        println!("  {:<34} {:<10} {:<8} {}", p.name, verdict, p.checker, cex);
    }
}

fn check_cmd(
    names: Vec<Scenario>,
    mutant: Option<&str>,
    trace_out: Option<&std::path::Path>,
    property: Option<&str>,
    run: &RunArgs,
) -> Result<u8, String> {
    let mut worst = 0u8;
    for sc in names {
        if let Some(id) = property {
            known_property(&PetrelModel::new(&sc, bugs_for(mutant)?), id)?;
        }
        let o = run_one(&sc, mutant, run)?;
        let v = verdict(&o.report);
        if run.json {
            println!("{}", json_of(&o, mutant));
        } else {
            print_table(&o);
            for p in o
                .report
                .properties
                .iter()
                .filter(|p| !p.holds && p.expectation != Expectation::Sometimes)
            {
                if let Some(t) = &p.counterexample {
                    println!("\n{} violated; counterexample:", p.name);
                    print_trace(&o.model, t);
                    let m = mutant.map(|m| format!(" --mutant {m}")).unwrap_or_default();
                    println!(
                        "  open it: petrel-check explore {}{m} --property {}  (Explorer path {})",
                        sc.name,
                        id_of(p.name),
                        explorer_path(&o.model, t)
                    );
                }
            }
        }
        if let Some(path) = trace_out {
            if let Some((p, t)) = counterexample(&o.report, property) {
                let text = serde_json::to_string_pretty(&trace_json(&o.model, mutant, p, t))
                    .map_err(|e| e.to_string())?;
                std::fs::write(path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                if !run.json {
                    println!("trace written to {}", path.display());
                }
            } else if let Some(id) = property {
                eprintln!(
                    "petrel-check: {id} is not violated in {}: no trace written to {}",
                    sc.name,
                    path.display()
                );
            }
        }
        worst = worst.max(v);
    }
    Ok(worst)
}

/// One job of the matrix, run as a child `petrel-check check … --json`: each job gets a
/// fresh process, so the matrix's peak memory is its largest job's, not the sum of what
/// the allocator kept from every job before it.
struct Job {
    scenario: String,
    mutant: Option<String>,
    verdict: u8,
    json: serde_json::Value,
}

fn run_job(scenario: &str, mutant: Option<&str>, run: &RunArgs) -> Result<Job, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find petrel-check: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["check", scenario, "--json"]);
    if let Some(m) = mutant {
        cmd.args(["--mutant", m]);
    }
    if let Some(t) = run.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    if let Some(n) = run.max_states {
        cmd.args(["--max-states", &n.to_string()]);
    }
    if let Some(t) = run.timeout {
        cmd.args(["--timeout", &t.to_string()]);
    }
    if run.no_fairness {
        cmd.arg("--no-fairness");
    }
    let label = mutant.map_or(scenario.to_string(), |m| format!("{scenario} [{m}]"));
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the check of {label}: {e}"))?;
    let verdict = match out.status.code() {
        Some(c @ 0..=2) => c as u8,
        _ => {
            return Err(format!(
                "the check of {label} died ({}); out of memory?",
                out.status
            ))
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .ok_or_else(|| format!("the check of {label} printed no result"))?;
    Ok(Job {
        scenario: scenario.to_string(),
        mutant: mutant.map(str::to_string),
        verdict,
        json,
    })
}

impl Job {
    fn states(&self) -> u64 {
        self.json["unique_states"].as_u64().unwrap_or(0)
    }
    fn seconds(&self) -> f64 {
        self.json["seconds"].as_f64().unwrap_or(0.0)
    }
    fn peak_mib(&self) -> String {
        self.json["peak_rss_mib"]
            .as_u64()
            .map_or("-".into(), |m| m.to_string())
    }
    /// The violated property with this ID, if any.
    fn violated(&self, id: &str) -> Option<&serde_json::Value> {
        self.json["properties"]
            .as_array()?
            .iter()
            .find(|p| p["id"] == id && p["holds"] == false)
    }
}

fn mutants_cmd(run: &RunArgs) -> Result<u8, String> {
    let mut ok = true;
    let plan: Vec<(String, Option<&'static str>, Option<&'static str>)> = mutants()
        .into_iter()
        .map(|m| (m.scenario.to_string(), Some(m.name), Some(m.caught_by)))
        .chain(
            scenarios()
                .into_iter()
                .map(|s| (s.name.to_string(), None, None)),
        )
        .collect();
    let mut rows = Vec::new();
    let mut clean = Vec::new();
    let started = std::time::Instant::now();
    for (i, (sc, m, by)) in plan.iter().enumerate() {
        if scenario(sc).is_none() {
            return Err(format!(
                "mutant {} names unknown scenario {sc}",
                m.unwrap_or("")
            ));
        }
        let job = run_job(sc, *m, run)?;
        let stats = format!(
            "{} states, {:.1} s, peak {} MiB",
            job.states(),
            job.seconds(),
            job.peak_mib()
        );
        let line = match by {
            Some(by) => {
                let caught = job.violated(by).is_some();
                ok &= caught;
                if run.json {
                    let mut j = job.json.clone();
                    j["caught"] = json!(caught);
                    j["caught_by"] = json!(by);
                    println!("{j}");
                }
                rows.push((job, *by, caught));
                let how = if caught { "caught by" } else { "NOT caught by" };
                format!("{} on {sc}: {how} {by}", m.unwrap_or(""))
            }
            None => {
                ok &= job.verdict == 0;
                if run.json {
                    println!("{}", job.json);
                }
                let v = verdict_word(job.verdict);
                clean.push(job);
                format!("{sc}: {v}")
            }
        };
        // One line per job on stderr: CI logs show progress without a terminal.
        eprintln!(
            "[{}/{}] {line} ({stats}; {:.0} s so far)",
            i + 1,
            plan.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if !run.json {
        println!(
            "\n{:<30} {:<22} {:<8} {:<7} {:<8} {:>8} {:>10} {:>8} {:>9}",
            "mutant",
            "scenario",
            "expects",
            "caught",
            "checker",
            "cex len",
            "states",
            "seconds",
            "peak MiB"
        );
        for (j, by, caught) in &rows {
            let hit = j.violated(by);
            let len = hit
                .and_then(|p| p["counterexample_len"].as_u64())
                .map_or("-".into(), |l| l.to_string());
            let checker = hit.and_then(|p| p["checker"].as_str()).unwrap_or("");
            println!(
                "{:<30} {:<22} {:<8} {:<7} {:<8} {:>8} {:>10} {:>8.2} {:>9}",
                j.mutant.as_deref().unwrap_or(""),
                j.scenario,
                by,
                if *caught { "yes" } else { "NO" },
                checker,
                len,
                j.states(),
                j.seconds(),
                j.peak_mib()
            );
        }
        println!(
            "\n{:<30} {:<10} {:>10} {:>8} {:>9}",
            "clean scenario", "verdict", "states", "seconds", "peak MiB"
        );
        for j in &clean {
            println!(
                "{:<30} {:<10} {:>10} {:>8.2} {:>9}",
                j.scenario,
                verdict_word(j.verdict),
                j.states(),
                j.seconds(),
                j.peak_mib()
            );
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn verdict_word(v: u8) -> &'static str {
    match v {
        0 => "pass",
        1 => "VIOLATED",
        _ => "INCOMPLETE",
    }
}

fn main() -> ExitCode {
    // No transparent huge pages: mimalloc asks for them on its arenas, and then every 2 MiB
    // region it touches is resident in full. On `replication` that is ~10 MiB of the peak RSS
    // (40 % above the data), which is what a CI memory limit sees; measured at no loss of
    // speed. Applies to all engines `bench` compares. Best effort: a kernel without the
    // option just keeps its default.
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // `petrel-check list | head`: a closed stdout ends the process quietly, as it does a
    // Unix filter, instead of a panic in `println!` (Rust ignores SIGPIPE by default).
    // SAFETY: restores the default disposition of one signal, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::List => {
            println!("scenarios:");
            for s in scenarios() {
                println!("  {:<28} {}", s.name, s.description);
            }
            println!("mutants:");
            for m in mutants() {
                println!(
                    "  {:<28} [{} → {}] {}",
                    m.name, m.scenario, m.caught_by, m.description
                );
            }
            Ok(0)
        }
        Cmd::Check {
            scenario: name,
            all,
            mutant: mname,
            trace_out,
            property,
            run,
        } => {
            let list = if all {
                Ok(scenarios())
            } else {
                match (name.as_deref(), mname.as_deref().and_then(mutant)) {
                    (Some(n), _) => scenario(n)
                        .map(|s| vec![s])
                        .ok_or_else(|| format!("unknown scenario `{n}` (see `petrel-check list`)")),
                    (None, Some(m)) => Ok(scenario(m.scenario).into_iter().collect()),
                    (None, None) => Err("give a scenario or --all".to_string()),
                }
            };
            list.and_then(|l| {
                check_cmd(
                    l,
                    mname.as_deref(),
                    trace_out.as_deref(),
                    property.as_deref(),
                    &run,
                )
            })
        }
        Cmd::Mutants { run } => mutants_cmd(&run),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Explore {
            scenario: name,
            mutant: mname,
            addr,
            view_addr,
            property,
            threads,
        } => explore_cmd(
            &name,
            mname.as_deref(),
            addr,
            view_addr,
            property.as_deref(),
            threads,
        ),
        Cmd::Validate {
            dirs,
            histories,
            trace_out,
            trace_window,
            json,
        } => {
            let opts = petrel_checks::validate::Options {
                histories,
                trace_out,
                trace_window,
            };
            let report = petrel_checks::validate::validate(&dirs, &opts);
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            Ok(report.exit_code())
        }
        Cmd::View { file, addr } => (|| {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            view::validate(&text)?;
            let server = view::serve(text, addr, None)?;
            println!("viewer on {}", server.url());
            server.join();
            Ok(0)
        })(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("petrel-check: {e}");
            ExitCode::from(2)
        }
    }
}

/// The property named `id` (its ID, e.g. `LIVE-2`, or its full name), or an error listing them.
fn known_property(model: &PetrelModel, id: &str) -> Result<(), String> {
    let props = model.properties();
    if props.iter().any(|p| id_of(p.name) == id || p.name == id) {
        Ok(())
    } else {
        let ids: Vec<&str> = props.iter().map(|p| id_of(p.name)).collect();
        Err(format!(
            "unknown property `{id}` (this scenario has {})",
            ids.join(", ")
        ))
    }
}

/// With `id`: that property's counterexample (none if it holds). Without: the first violated
/// property's (a `sometimes` property without a witness has none).
fn counterexample<'a>(
    r: &'a Report<PetrelModel>,
    id: Option<&str>,
) -> Option<(
    &'a engine::PropertyResult<PetrelModel>,
    &'a engine::Trace<PetrelModel>,
)> {
    r.properties
        .iter()
        .filter(|p| !p.holds && p.expectation != Expectation::Sometimes)
        .filter(|p| id.is_none_or(|id| id_of(p.name) == id || p.name == id))
        .find_map(|p| p.counterexample.as_ref().map(|t| (p, t)))
}

/// `explore`: check the scenario, then serve the counterexample viewer and stateright's
/// Explorer side by side, both on loopback, the viewer's steps linking into the Explorer.
fn explore_cmd(
    name: &str,
    mutant: Option<&str>,
    addr: std::net::SocketAddr,
    view_addr: Option<std::net::SocketAddr>,
    property: Option<&str>,
    threads: Option<usize>,
) -> Result<u8, String> {
    if addr.port() == 0 {
        return Err(
            "--addr needs a port other than 0 (the Explorer's URL is printed before it serves)"
                .into(),
        );
    }
    let view_addr = match view_addr {
        Some(v) => v,
        None => {
            let port = addr
                .port()
                .checked_add(1)
                .ok_or("--addr port 65535 leaves no next port for the viewer: give --view-addr")?;
            std::net::SocketAddr::new(addr.ip(), port)
        }
    };
    for (what, a) in [("Explorer", addr), ("viewer", view_addr)] {
        if !a.ip().is_loopback() {
            return Err(format!(
                "refusing to serve the {what} on {a}: loopback addresses only"
            ));
        }
    }
    if addr == view_addr {
        return Err(format!("the Explorer and the viewer cannot share {addr}"));
    }
    // Fail before the (possibly long) check if the Explorer's port is taken.
    drop(
        std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr} for the Explorer: {e}"))?,
    );
    let sc = scenario(name)
        .ok_or_else(|| format!("unknown scenario `{name}` (see `petrel-check list`)"))?;
    let bugs = bugs_for(mutant)?;
    let model = PetrelModel::new(&sc, bugs);
    if let Some(id) = property {
        known_property(&model, id)?;
    }
    let run = RunArgs {
        threads,
        max_states: None,
        timeout: None,
        no_fairness: false,
        json: false,
    };
    let label = mutant.map_or_else(|| sc.name.to_string(), |m| format!("{} [{m}]", sc.name));
    let report = engine::check(&model, &options(&run, label));
    eprintln!();
    let explorer_base = format!("http://{addr}");
    let viewer = match counterexample(&report, property) {
        Some((p, t)) => {
            println!(
                "{} violated ({} steps{})",
                p.name,
                t.len(),
                t.loop_start
                    .map(|l| format!(", loops from step {}", l + 1))
                    .unwrap_or_default()
            );
            let text = serde_json::to_string(&trace_json(&model, mutant, p, t))
                .map_err(|e| e.to_string())?;
            let server = view::serve(text, view_addr, Some(explorer_base.clone()))?;
            Some((server, explorer_path(&model, t)))
        }
        None => {
            match property {
                Some(id) => println!("{id} is not violated: no counterexample to show"),
                None if verdict(&report) == 2 => {
                    println!("the check is incomplete and found no counterexample")
                }
                None => println!("every property holds: no counterexample to show"),
            }
            None
        }
    };
    let explorer_model = PetrelModel::new(&sc, bugs);
    let explorer = std::thread::Builder::new()
        .name("explorer".into())
        .spawn(move || {
            explorer_model.checker().serve(addr);
        })
        .map_err(|e| format!("cannot start the Explorer: {e}"))?;
    // Print the URLs once the Explorer answers (stateright binds in its own thread).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if explorer.is_finished() || std::time::Instant::now() > deadline {
            return Err(format!("the Explorer did not start on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stateright Explorer: {explorer_base}/");
    if let Some((server, path)) = &viewer {
        println!("counterexample in the Explorer: {explorer_base}/{path}");
        println!("counterexample viewer: {}", server.url());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    explorer
        .join()
        .map_err(|_| format!("the Explorer on {addr} stopped"))?;
    Ok(0)
}
