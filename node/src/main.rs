//! `petrel`: run a Petrel meta or replica server, call a cluster as a client, issue
//! certificates, or launch a local cluster. See node/README.md.
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use petrel_core::{ClientOp, Gpid, OpResult, Value};
use petrel_node::config::Config;
use petrel_node::launch::{self, Role};
use petrel_node::up;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "petrel", version, about = "Petrel node: meta and replica servers, client, certificates, local cluster")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Issue a cluster CA (reused if DIR/ca.key exists), node and client certificates (PEM).
    Certs {
        #[arg(long)]
        cluster: String,
        /// Node ids, comma separated (certificate names n<id>.<cluster>.petrel).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
        /// Client certificates to issue (client.<cluster>.petrel).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the meta server described by a config file (until Ctrl-C / SIGTERM).
    Meta {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a replica server described by a config file (until Ctrl-C / SIGTERM).
    Replica {
        #[arg(long)]
        config: PathBuf,
    },
    /// One client call. Exit status: 0 success, 1 failure (the reason is printed), 2 the
    /// deadline passed.
    Client {
        #[arg(long)]
        config: PathBuf,
        /// Override the config's whole-call deadline (milliseconds).
        #[arg(long)]
        deadline_ms: Option<u64>,
        #[command(subcommand)]
        op: ClientCmd,
    },
    /// Closed-loop write load: N concurrent clients in this process, each writing M values.
    Bench {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Writes per client (at most 250).
        #[arg(long, default_value_t = 100)]
        ops: usize,
    },
    /// Launch a local cluster on 127.0.0.1 (1 meta + N replicas) until Ctrl-C.
    Up {
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value_t = 1)]
        partitions: u8,
        #[arg(long, default_value = "local")]
        cluster: String,
        /// Where certificates, configs, data and logs go (default: a new temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Write a value to the partition's register.
    Put { value: String },
    /// Read the partition's register.
    Get,
    /// Print the meta server's configuration of the partition (JSON).
    Config,
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    // Both ring and (if anything enabled it) aws-lc-rs may be compiled in; pick ring
    // explicitly so rustls never has to guess (see shared/design/dependencies.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logs(match cli.cmd {
        Cmd::Client { .. } | Cmd::Certs { .. } | Cmd::Bench { .. } => "warn",
        _ => "info",
    });
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Certs { cluster, nodes, clients, out } => {
            let issued = petrel_node::certs::issue(&cluster, &nodes, clients, &out)?;
            println!(
                "{} CA {}",
                if issued.reused_ca { "reused" } else { "created" },
                issued.ca_cert.display()
            );
            for (id, cert, _) in &issued.nodes {
                println!("node {id}: {} ({})", cert.display(), petrel_node::certs::node_name(&cluster, *id));
            }
            for (cert, _) in &issued.clients {
                println!("client: {} ({})", cert.display(), petrel_node::certs::client_name(&cluster));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Meta { config } => node(Role::Meta, &config).await,
        Cmd::Replica { config } => node(Role::Replica, &config).await,
        Cmd::Client { config, deadline_ms, op } => client(&config, deadline_ms, op).await,
        Cmd::Up { replicas, partitions, cluster, dir } => up_cluster(replicas, partitions, &cluster, dir).await,
        Cmd::Bench { config, clients, ops } => {
            let mut cfg = Config::load(&config)?;
            // The whole run shares one deadline per client: allow for the load.
            cfg.client.deadline_ms = Some(cfg.client.deadline_ms.unwrap_or(15_000).max(60_000));
            let r = launch::run_bench(&cfg, clients.max(1), ops).await?;
            let secs = r.elapsed.as_secs_f64();
            println!(
                "{} clients x {} writes: {} ok, {} failed, {} clients unfinished in {:.2} s -> {:.0} writes/s",
                clients.max(1),
                ops.clamp(1, 250),
                r.ok,
                r.failed,
                r.unfinished,
                secs,
                r.ok as f64 / secs.max(1e-9)
            );
            Ok(if r.failed == 0 && r.unfinished == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

async fn node(role: Role, path: &std::path::Path) -> Result<ExitCode> {
    let cfg = Config::load(path)?;
    launch::run_node(role, &cfg, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Parse a value as JSON of the core's `Value` type, or as a bare string.
fn parse_value(s: &str) -> Result<Value> {
    serde_json::from_str(s)
        .or_else(|_| serde_json::from_value(serde_json::Value::String(s.to_string())))
        .map_err(|e| anyhow::anyhow!("cannot use {s:?} as a value: {e}"))
}

fn print_errors(errors: &[(u64, String)]) {
    for (_, e) in errors {
        eprintln!("  transport: {e}");
    }
}

async fn client(path: &std::path::Path, deadline_ms: Option<u64>, op: ClientCmd) -> Result<ExitCode> {
    let mut cfg = Config::load(path)?;
    if let Some(ms) = deadline_ms {
        cfg.client.deadline_ms = Some(ms);
    }
    let deadline = cfg.client_deadline();
    let ops = match op {
        ClientCmd::Put { value } => vec![ClientOp::Put(parse_value(&value)?)],
        ClientCmd::Get => vec![ClientOp::Get],
        ClientCmd::Config => {
            let table = cfg.client_cfg(Vec::new())?.gpid;
            let gpid = Gpid { table: table.table, partition: table.partition };
            let (config, incarnation) = launch::query_config(&cfg, gpid, deadline).await?;
            let out = serde_json::json!({ "config": config, "primary_incarnation": incarnation });
            println!("{}", serde_json::to_string(&out).context("cannot print the configuration")?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let started = Instant::now();
    let outcome = launch::run_client(&cfg, ops).await?;
    if !outcome.done {
        eprintln!(
            "error: no result within the deadline of {:?} ({:.1}s); the client was waiting for {}",
            deadline,
            started.elapsed().as_secs_f64(),
            outcome.waiting_for
        );
        print_errors(&outcome.errors);
        return Ok(ExitCode::from(2));
    }
    let mut failed = false;
    for r in &outcome.results {
        match r {
            OpResult::WriteOk => println!("ok"),
            OpResult::ReadOk(v) => println!("{}", serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))),
            OpResult::Failed(e) => {
                failed = true;
                eprintln!("error: the operation failed: {e:?} (the client gave up after its retry budget)");
            }
        }
    }
    if failed {
        print_errors(&outcome.errors);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

struct Children(Vec<(String, std::process::Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (name, c) in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                // SIGTERM first, for a clean close; then make sure.
                let _ = std::process::Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
                let until = Instant::now() + Duration::from_secs(5);
                while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if let Ok(None) = c.try_wait() {
                    eprintln!("{name} did not stop; killing it");
                    let _ = c.kill();
                }
                let _ = c.wait();
            }
        }
    }
}

async fn up_cluster(replicas: usize, partitions: u8, cluster: &str, dir: Option<PathBuf>) -> Result<ExitCode> {
    if replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("petrel-up-{}", std::process::id())),
    };
    let mut plan = up::Plan::new(cluster, replicas);
    plan.partitions = partitions.max(1);
    let layout = up::write_cluster(&dir, &plan)?;
    let exe = std::env::current_exe().context("cannot find the petrel binary")?;
    let logs = layout.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut children = Children(Vec::new());
    for n in &layout.nodes {
        let name = format!("{}-{}", n.role, n.id);
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = std::process::Command::new(&exe)
            .arg(n.role.to_string())
            .arg("--config")
            .arg(&n.config)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        children.0.push((name, child));
    }
    // Ready when every node has logged "ready".
    let until = Instant::now() + Duration::from_secs(30);
    for n in &layout.nodes {
        let log_path = logs.join(format!("{}-{}.log", n.role, n.id));
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(" ready") {
                break;
            }
            for (name, c) in &mut children.0 {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("{name} exited ({status}) during start; see {}", logs.join(format!("{name}.log")).display());
                }
            }
            if Instant::now() > until {
                bail!("{}-{} did not become ready within 30s; see {}", n.role, n.id, log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("Petrel cluster {:?} is up ({} replicas) in {}", layout.cluster, replicas, layout.dir.display());
    for n in &layout.nodes {
        println!("  {:<8} id {:<3} {}   log {}", n.role.to_string(), n.id, n.addr, logs.join(format!("{}-{}.log", n.role, n.id)).display());
    }
    let me = exe.display();
    println!("\nTry:\n  {me} client --config {} put 7\n  {me} client --config {} get", layout.client_config.display(), layout.client_config.display());
    println!("\nCtrl-C stops the cluster (data stays in {}).", layout.dir.display());
    // Run until Ctrl-C. A node that dies is reported (with the command that restarts it
    // from its data directory); the others keep running, as in a real deployment.
    let mut reported = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, (name, c)) in children.0.iter_mut().enumerate() {
                    if let Ok(Some(status)) = c.try_wait() {
                        if reported.insert(name.clone()) {
                            let n = &layout.nodes[i];
                            eprintln!("{name} exited ({status}); restart it with: {me} {} --config {}", n.role, n.config.display());
                        }
                    }
                }
            }
        }
    }
    println!("stopping…");
    drop(children);
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}
