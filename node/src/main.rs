//! `petrel`: run a Petrel meta or replica server, call a cluster as a client, issue
//! certificates, or launch a local cluster. See node/README.md.
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use petrel_core::dup::{DupStatus, FailMode};
use petrel_core::{Bytes, ClientOp, Gpid, OpResult};
use petrel_node::admin;
use petrel_node::client::{AskError, Client, ClientError};
use petrel_node::config::Config;
use petrel_node::launch::{self, Role};
use petrel_node::up;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "petrel",
    version,
    about = "Petrel node: meta and replica servers, client, certificates, local cluster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Issue a cluster CA (reused if DIR/ca.key exists; it may certify names under
    /// <cluster>.petrel only), and meta, replica, client and operator certificates (PEM).
    Certs {
        #[arg(long)]
        cluster: String,
        /// The meta server's id (certificate name meta.n<id>.<cluster>.petrel).
        #[arg(long)]
        meta: Option<u64>,
        /// Replica ids, comma separated (certificate names replica.n<id>.<cluster>.petrel).
        #[arg(long, value_delimiter = ',')]
        replicas: Vec<u64>,
        /// Client certificates to issue (client.<cluster>.petrel: reads and writes).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Operator certificates to issue (operator.<cluster>.petrel: `petrel admin`).
        #[arg(long, default_value_t = 1)]
        operators: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the meta server described by a config file (until Ctrl-C / SIGTERM).
    Meta {
        #[arg(long)]
        config: PathBuf,
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Run a replica server described by a config file (until Ctrl-C / SIGTERM).
    Replica {
        #[arg(long)]
        config: PathBuf,
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// One operator request to this cluster's meta server (client certificate and address
    /// book from the config). Exit status: 0 done, 1 the meta server refused (its reason is
    /// printed) or the request is invalid, 2 no answer within the deadline.
    Admin {
        #[arg(long)]
        config: PathBuf,
        /// Print the answer as JSON.
        #[arg(long, global = true)]
        json: bool,
        /// How long to wait for the meta server's answer (milliseconds).
        #[arg(long, default_value_t = 5000, global = true)]
        deadline_ms: u64,
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// One client call on a key of a table. Exit status: 0 done (`get`: the value is
    /// printed), 1 failed (the reason is printed: the client gave up after its retry
    /// budget, no such table, invalid input), 2 no answer within the deadline (or the meta
    /// server cannot be reached), 3 `get`: the key is absent ("not found" on stderr).
    Client {
        #[arg(long)]
        config: PathBuf,
        /// The table (default: `[client] table` of the config, else its first table).
        #[arg(long)]
        table: Option<u8>,
        /// Override the config's deadline of the call (milliseconds).
        #[arg(long)]
        deadline_ms: Option<u64>,
        #[command(subcommand)]
        op: ClientCmd,
    },
    /// Closed-loop write load through the client library: N concurrent writers in this
    /// process, each writing M keys in sequence; one row per N (writes/s, p50/p99/max
    /// latency).
    ///
    /// With `--failover N`: start a local cluster (1 meta + 3 replicas, `petrel up`'s
    /// layout and defaults, in --dir or a temp directory), run 16 writers, `kill -9` the
    /// primary N times and print the time to the first write acknowledged through the new
    /// primary, per trial and the median (no --config needed).
    Bench {
        /// The cluster's client configuration (not with --failover).
        #[arg(long, required_unless_present = "failover")]
        config: Option<PathBuf>,
        /// Failover trials on a cluster of its own (see above).
        #[arg(long, conflicts_with = "config")]
        failover: Option<usize>,
        /// Concurrency levels, comma separated, one row each (default 1,4,16,64); with
        /// --failover the writers during the trials (default 16).
        #[arg(long, visible_alias = "clients", value_delimiter = ',')]
        writers: Option<Vec<usize>>,
        /// Where --failover lays out its cluster (default: a new temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Writes per writer and level (unless --duration).
        #[arg(long, default_value_t = 100)]
        ops: usize,
        /// Seconds per level: each writer writes new keys until then (closed loop).
        #[arg(long)]
        duration: Option<f64>,
        /// Keys written (64 writers) before the first level.
        #[arg(long, default_value_t = 0)]
        preload: usize,
        /// Bytes per value (keys are 16 bytes).
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        /// One JSON object per level on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// The table (default: `[client] table` of the config, else its first table).
        #[arg(long)]
        table: Option<u8>,
        /// Also run the same load against a running etcd (its client URLs, comma
        /// separated, e.g. http://127.0.0.1:2379,http://127.0.0.1:22379): each level runs
        /// on Petrel, then on etcd, and one table shows both and Petrel ÷ etcd. Writers are
        /// spread over the endpoints round-robin; the preload goes to both.
        #[arg(long, value_name = "ENDPOINTS", conflicts_with = "failover")]
        against_etcd: Option<String>,
        /// Run the levels this many times over, interleaved (Petrel and etcd alternate
        /// level by level), so that noise on a shared machine hits both alike.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Launch a local cluster on 127.0.0.1 (1 meta + N replicas) until Ctrl-C; with
    /// `--clusters 2`, two clusters `a` and `b` that may duplicate into each other.
    Up {
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// 1, or 2: clusters `a` (table 1) and `b` (no table yet), each trusting the
        /// other's CA and knowing the other's address book.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        clusters: u8,
        #[arg(long, default_value_t = 1)]
        partitions: u8,
        #[arg(long, default_value = "local")]
        cluster: String,
        /// Where certificates, configs, data and logs go (default: a new temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fault campaigns on real processes: per seed, fresh clusters a and b (duplication
    /// a→b), every node in its own network namespace, a seeded schedule of faults (kill -9,
    /// pause, partitions, packet loss, wiped disk, torn write) under a recorded client
    /// workload, then heal and verdicts (linearizable, no acknowledged write lost, full
    /// replication within a bound, b equals a, `petrel-check validate`). Needs root.
    /// Exit 0 only if every campaign passed.
    Campaign(petrel_node::campaign::Args),
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Tables: create, list.
    Table {
        #[command(subcommand)]
        cmd: TableCmd,
    },
    /// Duplications of this cluster's tables to other clusters.
    Dup {
        #[command(subcommand)]
        cmd: DupCmd,
    },
    /// The cluster's state.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
}

#[derive(Subcommand)]
enum TableCmd {
    /// Create a table; its partitions get primaries as replica servers are alive.
    Create {
        #[arg(long)]
        id: u8,
        #[arg(long, default_value_t = 1)]
        partitions: u8,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replicas: u8,
    },
    /// Tables with their partitions, replica count, how many partitions have a live
    /// primary, and which follow another cluster's table.
    List,
}

#[derive(Subcommand)]
enum DupCmd {
    /// Duplicate a table to another cluster (named in the address book; its meta server
    /// is the `[[peers]]` entry marked `meta = true`).
    Add {
        #[arg(long)]
        table: u8,
        #[arg(long)]
        remote_cluster: String,
        /// Full duplication: create the follower table on the remote cluster, copy a
        /// checkpoint, then ship the log. Without it: log only (the follower table must
        /// exist).
        #[arg(long)]
        full: bool,
        /// The follower table's id on the remote cluster (default: the same as --table).
        #[arg(long)]
        remote_table: Option<u8>,
        /// Replicas per follower partition (default: the remote cluster's replica
        /// servers in the address book, at most 3).
        #[arg(long)]
        remote_replicas: Option<u8>,
    },
    /// Every duplication: status, confirmed decree per partition, fail mode, mutations
    /// skipped under `skip`, stall reason.
    List,
    /// LOG → PAUSE: stop shipping (the log is kept from the confirmed decree on).
    Pause { dupid: u8 },
    /// PAUSE → LOG: ship again from the confirmed decree.
    Start { dupid: u8 },
    /// Remove the duplication (any status).
    Remove { dupid: u8 },
    /// What a source primary does with a batch the follower refuses: `slow` (the
    /// default) sends it again after a pause, forever, and shows the refusal as the stall
    /// reason; `skip` gives the batch up, counts it as confirmed and adds its mutations to
    /// the duplication's SKIPPED count (the follower misses them).
    SetFailMode {
        /// The duplication's id (`dup list`).
        dupid: u8,
        /// `slow` or `skip`.
        #[arg(value_parser = parse_fail_mode)]
        mode: FailMode,
    },
}

fn parse_fail_mode(s: &str) -> Result<FailMode, String> {
    FailMode::parse(s).ok_or_else(|| format!("unknown fail mode {s:?}: expected slow or skip"))
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Per partition: ballot, primary, secondaries (alive, with their life); the replica
    /// servers; duplications; follower tables.
    Status,
}

/// Keys and values are text; `\xNN` stands for any byte and `\\` for a backslash (the
/// form `get` prints).
#[derive(Subcommand)]
enum ClientCmd {
    /// Set KEY to VALUE; prints "ok".
    Put { key: String, value: String },
    /// Print KEY's value (exit 3 and "not found" on stderr if it is absent).
    Get { key: String },
    /// Delete KEY (an absent key too); prints "ok".
    Del { key: String },
    /// Print the meta server's configuration of KEY's partition (without KEY: of the
    /// `[client] partition`) as JSON.
    Config { key: Option<String> },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // Both ring and (if anything enabled it) aws-lc-rs may be compiled in; pick ring
    // explicitly so rustls never has to guess (with both compiled in, `builder()` panics
    // with "no process-level CryptoProvider").
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logs(match cli.cmd {
        Cmd::Client { .. } | Cmd::Certs { .. } | Cmd::Bench { .. } | Cmd::Admin { .. } => "warn",
        // Its clients see every fault it injects: only errors.
        Cmd::Campaign(_) => "error",
        _ => "info",
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
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
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
        Cmd::Certs {
            cluster,
            meta,
            replicas,
            clients,
            operators,
            out,
        } => {
            use petrel_node::certs::{self, NodeRole, Wanted};
            let mut nodes: Vec<(u64, NodeRole)> =
                meta.map(|m| (m, NodeRole::Meta)).into_iter().collect();
            nodes.extend(replicas.iter().map(|r| (*r, NodeRole::Replica)));
            let issued = certs::issue(
                &cluster,
                &Wanted {
                    nodes,
                    clients,
                    operators,
                },
                &out,
            )?;
            println!(
                "{} CA {}",
                if issued.reused_ca {
                    "reused"
                } else {
                    "created"
                },
                issued.ca_cert.display()
            );
            for (id, role, cert, _) in &issued.nodes {
                println!(
                    "{role} {id}: {} ({})",
                    cert.display(),
                    certs::node_name(&cluster, *role, *id)
                );
            }
            for (cert, _) in &issued.clients {
                println!(
                    "client: {} ({})",
                    cert.display(),
                    certs::client_name(&cluster)
                );
            }
            for (cert, _) in &issued.operators {
                println!(
                    "operator: {} ({})",
                    cert.display(),
                    certs::operator_name(&cluster)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Meta {
            config,
            metrics_addr,
        } => node(Role::Meta, &config, metrics_addr).await,
        Cmd::Replica {
            config,
            metrics_addr,
        } => node(Role::Replica, &config, metrics_addr).await,
        Cmd::Admin {
            config,
            json,
            deadline_ms,
            cmd,
        } => admin(&config, json, Duration::from_millis(deadline_ms), cmd).await,
        Cmd::Client {
            config,
            table,
            deadline_ms,
            op,
        } => client(&config, table, deadline_ms, op).await,
        Cmd::Up {
            replicas,
            clusters,
            partitions,
            cluster,
            dir,
        } => up_cluster(replicas, clusters, partitions, &cluster, dir).await,
        Cmd::Bench {
            failover: Some(trials),
            writers,
            dir,
            ..
        } => {
            let writers = writers.and_then(|w| w.first().copied()).unwrap_or(16);
            failover_bench(trials, writers, dir).await
        }
        Cmd::Bench {
            config: Some(config),
            writers,
            ops,
            duration,
            preload,
            value_size,
            json,
            table,
            against_etcd,
            rounds,
            ..
        } => {
            let levels = writers.unwrap_or_else(|| vec![1, 4, 16, 64]);
            // Every level of every round writes keys of its own (the round is in the key,
            // modulo 100, and 99 is the preload's): more would overwrite earlier keys.
            if rounds == 0 || levels.is_empty() || rounds * levels.len() > 99 {
                bail!("--rounds × the number of --writers levels must be between 1 and 99");
            }
            let etcd = match against_etcd {
                Some(list) => Some(petrel_node::etcd::parse_endpoints(&list)?),
                None => None,
            };
            let duration = match duration {
                Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
                Some(d) => bail!("--duration must be a positive number of seconds, not {d}"),
                None => None,
            };
            let load = petrel_node::bench::Load {
                ops: ops.max(1),
                duration,
                value_size,
            };
            let shape = BenchShape {
                levels,
                load,
                preload,
                rounds,
                json,
            };
            bench(&config, &shape, table, etcd).await
        }
        Cmd::Bench { .. } => bail!("--config or --failover is required"),
        Cmd::Campaign(args) => petrel_node::campaign::main(args).await,
    }
}

async fn failover_bench(trials: usize, writers: usize, dir: Option<PathBuf>) -> Result<ExitCode> {
    if trials == 0 || writers == 0 {
        bail!("--failover and --writers must be at least 1");
    }
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("petrel-failover-{}", std::process::id()))
    });
    let exe = std::env::current_exe().context("cannot find the petrel binary")?;
    println!(
        "failover: 1 meta + 3 replicas (petrel up defaults: idle timeout 5 s) in {}; {writers} writers; {trials} trial(s) of kill -9 of the primary",
        dir.display()
    );
    let trials_done = petrel_node::bench::failover(&exe, &dir, trials, writers).await?;
    print!("{}", petrel_node::bench::failover_table(&trials_done));
    let ok = trials_done.len() == trials
        && trials_done
            .iter()
            .all(|t| t.failover.is_some() && t.rejoined.is_some());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `petrel bench --config` runs.
struct BenchShape {
    levels: Vec<usize>,
    load: petrel_node::bench::Load,
    preload: usize,
    rounds: usize,
    json: bool,
}

async fn bench(
    path: &std::path::Path,
    shape: &BenchShape,
    table: Option<u8>,
    etcd: Option<Vec<petrel_node::etcd::Endpoint>>,
) -> Result<ExitCode> {
    use petrel_node::bench;
    use std::sync::Arc;
    let BenchShape {
        levels,
        load,
        preload,
        rounds,
        json,
    } = shape;
    let (preload, json) = (*preload, *json);
    let cfg = Config::load(path)?;
    let table = match table {
        Some(t) => t,
        None => cfg.client_table()?,
    };
    let client = match Client::connect_table(&cfg, table).await {
        Ok(c) => Arc::new(c),
        Err(e) => return Ok(client_error(&e)),
    };
    // etcd's writes get the deadline Petrel's get: a slow write fails alike on both.
    let etcd = match etcd {
        Some(endpoints) => {
            let e = petrel_node::etcd::Etcd::connect(&endpoints, client.deadline()).await?;
            let list: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
            eprintln!(
                "etcd: {} endpoint(s) ({}), one HTTP/2 connection each, writers spread round-robin",
                e.endpoints(),
                list.join(", ")
            );
            Some(Arc::new(e))
        }
        None => None,
    };
    let how_long = match load.duration {
        Some(d) => format!("for {:.1} s", d.as_secs_f64()),
        None => format!("{} keys", load.ops),
    };
    eprintln!(
        "table {} ({} partition(s)); each writer puts new 16-byte keys with {}-byte values {how_long}, one write in flight",
        table,
        client.partitions(),
        load.value_size,
    );
    // Rows of the plain table: the levels, and a preload that had failures.
    let mut rows = Vec::new();
    let mut etcd_rows = Vec::new();
    let mut held = 0;
    let mut etcd_held = 0;
    if preload > 0 {
        let report = |system: &str, p: &bench::Level| {
            eprintln!(
                "{system}: preloaded {} keys in {:.1} s ({:.0} writes/s, {} failed)",
                p.ok,
                p.elapsed.as_secs_f64(),
                p.writes_per_sec(),
                p.failed
            )
        };
        eprintln!("preloading {preload} keys (64 writers) …");
        // etcd first: its preload is the one that is known to finish, so a Petrel preload
        // that stalls still leaves etcd's time (and the members' memory) to look at.
        if let Some(etcd) = &etcd {
            let e = bench::preload(etcd.clone(), preload, load.value_size).await;
            report("etcd", &e);
            etcd_held = e.ok;
            if e.failed > 0 {
                if let Some(err) = &e.first_error {
                    eprintln!("etcd: the first failed preload write: {err}");
                }
            }
        }
        let p = bench::preload(client.clone(), preload, load.value_size).await;
        report("petrel", &p);
        held = p.ok;
        if p.failed > 0 {
            rows.push(p);
        }
    }
    let progress = |system: &str, l: &bench::Level| {
        if json {
            return;
        }
        eprintln!(
            "{system}: {} writer(s): {:.0} writes/s, p99 {:.1} ms{}",
            l.clients,
            l.writes_per_sec(),
            l.percentile(99.0).unwrap_or_default().as_secs_f64() * 1e3,
            if l.failed > 0 {
                format!(", {} failed", l.failed)
            } else {
                String::new()
            }
        )
    };
    let print_json = |system: &str, l: &bench::Level, round: usize| {
        if json {
            let mut v = bench::json(system, l);
            v["round"] = round.into();
            println!("{v}");
        }
    };
    let mut petrel_levels = Vec::new();
    for r in 0..*rounds {
        for (i, &n) in levels.iter().enumerate() {
            // Distinct keys for every level of every round (see the --rounds check).
            let round = r * levels.len() + i;
            let mut level = bench::run_level(client.clone(), n.max(1), load, round).await;
            level.preload = held;
            held += level.ok;
            progress("petrel", &level);
            print_json("petrel", &level, r);
            if let Some(etcd) = &etcd {
                let mut e = bench::run_level(etcd.clone(), n.max(1), load, round).await;
                e.preload = etcd_held;
                etcd_held += e.ok;
                progress("etcd", &e);
                print_json("etcd", &e, r);
                petrel_levels.push(level.clone());
                etcd_rows.push(e);
            }
            rows.push(level);
        }
    }
    if !json {
        if etcd.is_some() {
            print!(
                "{}",
                bench::compare_table(preload, &petrel_levels, &etcd_rows)
            );
        } else {
            print!("{}", bench::table(&rows));
        }
    }
    let mut spread = std::collections::BTreeMap::<u8, usize>::new();
    for r in &rows {
        for (p, n) in &r.per_partition {
            *spread.entry(*p).or_default() += n;
        }
    }
    if spread.len() > 1 && !json {
        let parts: Vec<String> = spread.iter().map(|(p, n)| format!("{p}: {n}")).collect();
        println!("writes per partition: {}", parts.join(", "));
    }
    let mut failed = 0;
    for (system, all) in [("petrel", &rows), ("etcd", &etcd_rows)] {
        let n: usize = all.iter().map(|r| r.failed).sum();
        if let Some(e) = all.iter().find_map(|r| r.first_error.as_ref()) {
            eprintln!("{system}: {n} write(s) failed; the first: {e}");
        }
        failed += n;
    }
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn admin(
    path: &std::path::Path,
    json: bool,
    deadline: Duration,
    cmd: AdminCmd,
) -> Result<ExitCode> {
    let cfg = Config::load(path)?;
    // The meta server takes operator requests from operator certificates only; say so
    // here, before any traffic, rather than let a client certificate's request be refused.
    let operator = petrel_node::certs::Identity::Operator {
        cluster: cfg.cluster.clone(),
    };
    if !cfg.tls()?.is_valid_for(&operator) {
        eprintln!(
            "error: petrel admin needs an operator configuration: the certificate of {} ({}) is not an operator certificate ({}).\n\
             Use the admin.toml that `petrel up` writes next to client.toml, or issue one with `petrel certs --cluster {} --operators 1 --out DIR` and point [tls] cert/key at it.",
            path.display(),
            cfg.tls.cert.display(),
            operator.dns_name(),
            cfg.cluster
        );
        return Ok(ExitCode::FAILURE);
    }
    let req = match cmd {
        AdminCmd::Table {
            cmd:
                TableCmd::Create {
                    id,
                    partitions,
                    replicas,
                },
        } => admin::Request::TableCreate {
            table: id,
            partitions,
            replicas,
        },
        AdminCmd::Table {
            cmd: TableCmd::List,
        } => admin::Request::TableList,
        AdminCmd::Dup {
            cmd:
                DupCmd::Add {
                    table,
                    remote_cluster,
                    full,
                    remote_table,
                    remote_replicas,
                },
        } => admin::Request::DupAdd {
            table,
            remote_cluster,
            full,
            remote_table,
            remote_replicas,
        },
        AdminCmd::Dup { cmd: DupCmd::List } => admin::Request::DupList,
        AdminCmd::Dup {
            cmd: DupCmd::Pause { dupid },
        } => admin::Request::DupModify {
            dupid,
            status: DupStatus::Pause,
        },
        AdminCmd::Dup {
            cmd: DupCmd::Start { dupid },
        } => admin::Request::DupModify {
            dupid,
            status: DupStatus::Log,
        },
        AdminCmd::Dup {
            cmd: DupCmd::Remove { dupid },
        } => admin::Request::DupModify {
            dupid,
            status: DupStatus::Removed,
        },
        AdminCmd::Dup {
            cmd: DupCmd::SetFailMode { dupid, mode },
        } => admin::Request::DupSetFailMode { dupid, mode },
        AdminCmd::Cluster {
            cmd: ClusterCmd::Status,
        } => admin::Request::ClusterStatus,
    };
    match admin::run(&cfg, &req, deadline).await {
        Ok(out) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).context("cannot print JSON")?
                );
            } else if out.ok {
                println!("{}", out.text);
            }
            if out.ok {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{}", out.text);
                Ok(ExitCode::FAILURE)
            }
        }
        Err(e @ (AskError::Unreachable { .. } | AskError::Deadline { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(AskError::Setup(e)) => Err(e),
    }
}

async fn node(role: Role, path: &std::path::Path, metrics: Option<SocketAddr>) -> Result<ExitCode> {
    let cfg = Config::load(path)?;
    launch::run_node(role, &cfg, metrics, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// A key or value from the command line: text, with `\xNN` for any byte and `\\` for a
/// backslash (the form `get` prints).
fn parse_bytes(what: &str, s: &str) -> Result<Bytes> {
    Bytes::from_text(s).with_context(|| {
        format!("cannot use {s:?} as a {what}: a backslash must start \\xNN or \\\\")
    })
}

/// Print a client error and choose the exit status: 2 when no answer came in time (the
/// cluster may answer later), 1 for a definite failure.
fn client_error(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    for t in e.transport_errors() {
        eprintln!("  transport: {t}");
    }
    ExitCode::from(if e.is_unavailable() { 2 } else { 1 })
}

async fn client(
    path: &std::path::Path,
    table: Option<u8>,
    deadline_ms: Option<u64>,
    op: ClientCmd,
) -> Result<ExitCode> {
    let mut cfg = Config::load(path)?;
    if let Some(ms) = deadline_ms {
        cfg.client.deadline_ms = Some(ms);
    }
    let table = match table {
        Some(t) => t,
        None => cfg.client_table()?,
    };
    // Parse before connecting: an operator's typo is not a cluster error.
    let op = match op {
        ClientCmd::Put { key, value } => {
            ClientOp::put(parse_bytes("key", &key)?, parse_bytes("value", &value)?)
        }
        ClientCmd::Get { key } => ClientOp::get(parse_bytes("key", &key)?),
        ClientCmd::Del { key } => ClientOp::del(parse_bytes("key", &key)?),
        ClientCmd::Config { key } => {
            let key = key.map(|k| parse_bytes("key", &k)).transpose()?;
            return client_config(&cfg, table, key).await;
        }
    };
    // A key or value over [limits] is refused here, naming the limit, before any traffic.
    let (key, value) = match &op {
        ClientOp::Put(k, v) => (k, Some(v.as_slice())),
        ClientOp::Get(k) | ClientOp::Del(k) => (k, None),
    };
    if let Err(e) = cfg.limits().check(key.as_slice(), value) {
        return Ok(client_error(&ClientError::TooLarge(e)));
    }
    let client = match Client::connect_table(&cfg, table).await {
        Ok(c) => c,
        Err(e) => return Ok(client_error(&e)),
    };
    let result = client.call(op, client.deadline()).await;
    client.close().await;
    match result {
        Ok(OpResult::WriteOk) => println!("ok"),
        Ok(OpResult::ReadOk(Some(v))) => println!("{v}"),
        Ok(OpResult::ReadOk(None)) => {
            eprintln!("not found");
            return Ok(ExitCode::from(3));
        }
        Ok(OpResult::Failed(code)) => {
            return Ok(client_error(&ClientError::Failed {
                code,
                transport: Vec::new(),
            }))
        }
        Err(e) => return Ok(client_error(&e)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `petrel client config [KEY]`: the meta server's configuration of a partition.
async fn client_config(cfg: &Config, table: u8, key: Option<Bytes>) -> Result<ExitCode> {
    let client = match Client::connect_table(cfg, table).await {
        Ok(c) => c,
        Err(e) => return Ok(client_error(&e)),
    };
    let gpid = match &key {
        Some(k) => client.gpid_of(k.as_slice()),
        None => Gpid {
            table,
            partition: cfg.client.partition,
        },
    };
    let answer = client.config_of(gpid).await;
    let partitions = client.partitions();
    client.close().await;
    let (config, incarnation) = match answer {
        Ok(a) => a,
        Err(e) => return Ok(client_error(&e)),
    };
    let out = serde_json::json!({
        "table": table,
        "partition": gpid.partition,
        "partitions": partitions,
        "config": config,
        "primary_incarnation": incarnation,
    });
    println!(
        "{}",
        serde_json::to_string(&out).context("cannot print the configuration")?
    );
    Ok(ExitCode::SUCCESS)
}

struct Children(Vec<(String, std::process::Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (name, c) in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                // SIGTERM first, for a clean close; then make sure.
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(c.id().to_string())
                    .status();
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

async fn up_cluster(
    replicas: usize,
    clusters: u8,
    partitions: u8,
    cluster: &str,
    dir: Option<PathBuf>,
) -> Result<ExitCode> {
    if replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("petrel-up-{}", std::process::id())),
    };
    let layouts = if clusters == 2 {
        if cluster != "local" {
            bail!("--cluster names a single cluster; with --clusters 2 they are `a` and `b`");
        }
        up::write_clusters(&dir, &up::pair_plans(replicas, partitions.max(1))?)?
    } else {
        let mut plan = up::Plan::new(cluster, replicas);
        plan.partitions = partitions.max(1);
        vec![up::write_cluster(&dir, &plan)?]
    };
    let exe = std::env::current_exe().context("cannot find the petrel binary")?;
    let mut children = Children(Vec::new());
    // (layout index, node, log file)
    let mut started = Vec::new();
    for (k, layout) in layouts.iter().enumerate() {
        let logs = layout.dir.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        for n in &layout.nodes {
            let name = if layouts.len() > 1 {
                format!("{}/{}", layout.cluster, n.name())
            } else {
                n.name()
            };
            let log_path = logs.join(format!("{}.log", n.name()));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let child = std::process::Command::new(&exe)
                .arg(n.role.to_string())
                .arg("--config")
                .arg(&n.config)
                .arg("--metrics-addr")
                .arg(n.metrics_addr.to_string())
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            children.0.push((name, child));
            started.push((k, n.clone(), log_path));
        }
    }
    // Ready when every node has logged "ready".
    let until = Instant::now() + Duration::from_secs(30);
    for (_, n, log_path) in &started {
        loop {
            let text = std::fs::read_to_string(log_path).unwrap_or_default();
            if text.contains(" ready") {
                break;
            }
            for (i, (name, c)) in children.0.iter_mut().enumerate() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!(
                        "{name} exited ({status}) during start; see {}",
                        started[i].2.display()
                    );
                }
            }
            if Instant::now() > until {
                bail!(
                    "{} did not become ready within 30s; see {}",
                    n.name(),
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let me = exe.display();
    if layouts.len() == 1 {
        let layout = &layouts[0];
        println!(
            "Petrel cluster {:?} is up ({} replicas) in {}",
            layout.cluster,
            replicas,
            layout.dir.display()
        );
    } else {
        let names: Vec<String> = layouts.iter().map(|l| format!("{:?}", l.cluster)).collect();
        println!(
            "Petrel clusters {} are up ({} replicas each) in {}",
            names.join(" and "),
            replicas,
            dir.display()
        );
    }
    for (k, n, log_path) in &started {
        let prefix = if layouts.len() > 1 {
            format!("{} ", layouts[*k].cluster)
        } else {
            String::new()
        };
        println!(
            "  {prefix}{:<8} id {:<3} {}   metrics http://{}/metrics   log {}",
            n.role.to_string(),
            n.id,
            n.addr,
            n.metrics_addr,
            log_path.display()
        );
    }
    if layouts.len() == 1 {
        let (cc, ac) = (
            layouts[0].client_config.display(),
            layouts[0].admin_config.display(),
        );
        println!("\nTry:\n  {me} client --config {cc} put k 7\n  {me} client --config {cc} get k\n  {me} admin --config {ac} cluster status");
    } else {
        let (a, b) = (
            layouts[0].client_config.display(),
            layouts[1].client_config.display(),
        );
        let (aa, ba) = (
            layouts[0].admin_config.display(),
            layouts[1].admin_config.display(),
        );
        println!("\nTry (cluster a has table 1; b has none until the duplication creates its follower table 1):");
        println!("  {me} client --config {a} put k 7");
        println!("  {me} admin --config {aa} dup add --table 1 --remote-cluster b --full");
        println!("  {me} admin --config {aa} dup list");
        println!("  {me} client --config {b} get k");
        println!("  {me} admin --config {ba} cluster status");
    }
    println!(
        "\nCtrl-C stops the cluster{} (data stays in {}).",
        if layouts.len() > 1 { "s" } else { "" },
        dir.display()
    );
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
                            let n = &started[i].1;
                            eprintln!(
                                "{name} exited ({status}); restart it with: {me} {} --config {} --metrics-addr {}",
                                n.role,
                                n.config.display(),
                                n.metrics_addr
                            );
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
