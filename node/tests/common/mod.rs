//! Helpers shared by the process-level tests: child processes that are killed when their
//! guard drops, bounded runs of `petrel` commands, bounded waits.
#![allow(dead_code)]
use petrel_node::config::{ClientSection, TransportSection};
use petrel_node::up::{self, Layout, Plan};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_petrel");

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> Proc {
        Proc::spawn_env(name, args, log, &[])
    }

    /// `spawn` with extra environment variables (e.g. a test-only driver bug).
    pub fn spawn_env(name: &str, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,petrel_node=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn petrel");
        Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log holds `needle` `times` times; panics with the log on timeout.
    pub fn wait_log(&mut self, needle: &str, times: usize, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            if self.log_text().matches(needle).count() >= times {
                return;
            }
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "{} exited ({status}) while waiting for {needle:?}:\n{}",
                        self.name,
                        self.log_text()
                    );
                }
            }
            assert!(
                Instant::now() < until,
                "{}: no {needle:?} within {limit:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait (bounded) for the exit; SIGKILL if it does not come.
    pub fn stop(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > until {
                self.kill9();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A two-worker tokio runtime for a test that drives library clients from sync code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Wait (bounded, polling every 50 ms) until `done` holds; returns how long it took.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

pub struct Cluster {
    pub layout: Layout,
    pub procs: Vec<Proc>,
    pub _dir: tempfile::TempDir,
    /// Extra environment of the node processes (test-only switches).
    pub env: Vec<(String, String)>,
}

pub fn fast_plan(cluster: &str, replicas: usize) -> Plan {
    let mut plan = Plan::new(cluster, replicas);
    // A fast failure detector so the tests run in seconds.
    plan.transport = TransportSection {
        idle_timeout_ms: 1500,
        keep_alive_ms: 300,
        handshake_timeout_ms: 1500,
    };
    plan.client = ClientSection {
        table: None,
        partition: 0,
        request_timeout_ms: Some(1000),
        max_attempts: Some(3),
        deadline_ms: Some(8000),
    };
    plan
}

impl Cluster {
    /// Lay out and start a cluster; returns once every node logged "ready".
    pub fn start(plan: &Plan) -> Cluster {
        Cluster::start_env(plan, &[])
    }

    /// `start` with extra environment variables for every node process.
    pub fn start_env(plan: &Plan, env: &[(&str, &str)]) -> Cluster {
        // PETREL_TEST_KEEP=1: the cluster's directory (logs, event logs, data) outlives
        // the test, to read after a failure.
        let keep = std::env::var_os("PETREL_TEST_KEEP").is_some();
        let dir = tempfile::Builder::new()
            .disable_cleanup(keep)
            .tempdir()
            .expect("tempdir");
        if keep {
            eprintln!("PETREL_TEST_KEEP: {} is kept", dir.path().display());
        }
        let layout = up::write_cluster(dir.path(), plan).expect("layout");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut c = Cluster {
            layout,
            procs: Vec::new(),
            _dir: dir,
            env,
        };
        for i in 0..c.layout.nodes.len() {
            c.start_node(i);
        }
        c
    }

    pub fn start_node(&mut self, i: usize) {
        let n = self.layout.nodes[i].clone();
        let name = format!("{}-{}", n.role, n.id);
        let log = self.layout.dir.join(format!("{name}.log"));
        let config = n.config.to_string_lossy().to_string();
        let metrics = n.metrics_addr.to_string();
        // The log is appended to across restarts: wait for one more "ready" than before.
        let starts = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(" ready")
            .count()
            + 1;
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let args = [
            n.role.to_string(),
            "--config".into(),
            config,
            "--metrics-addr".into(),
            metrics,
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = Proc::spawn_env(&name, &args, &log, &env);
        p.wait_log(" ready", starts, Duration::from_secs(20));
        if let Some(old) = self.procs.iter_mut().find(|q| q.name == name) {
            *old = p;
        } else {
            self.procs.push(p);
        }
    }

    /// A node's Prometheus text (empty if it cannot be scraped).
    pub fn metrics(&self, id: u64) -> String {
        let n = self
            .layout
            .nodes
            .iter()
            .find(|n| n.id == id)
            .expect("known node");
        http_get(n.metrics_addr, "/metrics").unwrap_or_default()
    }

    pub fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("known process")
    }

    pub fn client_config(&self) -> PathBuf {
        self.layout.client_config.clone()
    }

    /// Stop every node (SIGTERM, so each flushes its event log), bounded.
    pub fn stop_all(&mut self) {
        for p in &mut self.procs {
            p.stop(Duration::from_secs(10));
        }
    }
}

/// The client history file of the cluster whose client config is `config` (next to it):
/// every `petrel client` the tests run, and every library client made with
/// [`recording`], appends to it, so validation judges the run's whole history.
pub fn history_of(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("client-history.jsonl")
}

/// A library client that records its calls in the cluster's history.
pub async fn recording(config: &Path) -> petrel_node::client::Client {
    let cfg = petrel_node::config::Config::load(config).expect("client config");
    let mut client = petrel_node::client::Client::connect(&cfg)
        .await
        .expect("connect");
    client.record_history(
        petrel_node::client::History::open(&history_of(config)).expect("history file"),
    );
    client
}

/// Validate the run whose logs (and client histories) are under `dirs` — what
/// `petrel-check validate DIR…` does — and print the report.
pub fn validate(dirs: &[&Path]) -> petrel_checks::validate::Report {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let report = petrel_checks::validate::validate(&dirs, &Default::default());
    eprintln!("--- validation of {dirs:?}\n{}", report.text());
    report
}

/// The run under `dirs` conforms to the core and every property holds (exit 0), with at
/// least `min_ops` client operations judged.
pub fn assert_valid(dirs: &[&Path], min_ops: usize) {
    let r = validate(dirs);
    assert_eq!(r.exit_code(), 0, "the run does not validate:\n{}", r.text());
    assert!(
        r.lin.ops >= min_ops,
        "only {} client operations were judged (expected ≥ {min_ops}):\n{}",
        r.lin.ops,
        r.text()
    );
    assert!(r.events > 0);
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `petrel ARGS` with a hard bound on its run time (killed after 30 s: `code` None).
pub fn petrel(args: &[&str]) -> Output {
    petrel_env(args, &[])
}

/// `petrel` with extra environment variables.
pub fn petrel_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn petrel");
    // Drain the pipes while waiting, so a long output cannot block the child.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
    );
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Output {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Run `petrel client --config CONFIG ARGS` (bounded), recording in the cluster's history.
pub fn petrel_client(config: &Path, args: &[&str]) -> Output {
    let history = history_of(config);
    let config = config.to_string_lossy().to_string();
    let mut all = vec!["client", "--config", &config];
    all.extend_from_slice(args);
    petrel_env(
        &all,
        &[(petrel_node::client::HISTORY_ENV, &history.to_string_lossy())],
    )
}

/// Run `petrel admin --config CONFIG ARGS` (bounded).
pub fn petrel_admin(config: &Path, args: &[&str]) -> Output {
    let config = config.to_string_lossy().to_string();
    let mut all = vec!["admin", "--config", &config];
    all.extend_from_slice(args);
    petrel(&all)
}

/// GET `http://addr/path` (bounded); the body of a 200 answer.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}

/// The value of the sample `series` (name with its labels, exactly as exposed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Retry a client call until it succeeds with `expect` on stdout (bounded).
pub fn eventually(config: &Path, args: &[&str], expect: &str, limit: Duration) {
    let until = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < until {
        let out = petrel_client(config, args);
        if out.code == Some(0) && out.stdout.trim() == expect {
            return;
        }
        last = format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            out.code, out.stdout, out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "`petrel client {}` did not print {expect:?} within {limit:?}; last attempt: {last}",
        args.join(" ")
    );
}

pub fn config_of(config: &Path) -> serde_json::Value {
    let out = petrel_client(config, &["config"]);
    assert_eq!(out.code, Some(0), "config query failed: {}", out.stderr);
    serde_json::from_str(out.stdout.trim()).expect("config json")
}

/// A transport identity for raw wire tests: `certs/<cert>.pem`/`.key`, trusting the
/// cluster's CA and `cas`.
pub fn tls_of(certs: &Path, cert: &str, cas: &[&Path]) -> petrel_node::transport::TlsMaterial {
    let remote: Vec<PathBuf> = cas.iter().map(|p| p.to_path_buf()).collect();
    petrel_node::transport::TlsMaterial::load(
        &certs.join("ca.pem"),
        &remote,
        &certs.join(format!("{cert}.pem")),
        &certs.join(format!("{cert}.key")),
    )
    .expect("tls")
}

/// Dial `addr` as `tls` over raw QUIC, expecting the server to be `expect_name`.
pub async fn raw_connect(
    tls: &petrel_node::transport::TlsMaterial,
    addr: std::net::SocketAddr,
    expect_name: &str,
) -> Result<quinn::Connection, String> {
    use petrel_node::transport;
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    ep.set_default_client_config(
        transport::client_config(tls, &transport::Settings::default()).expect("client config"),
    );
    let connecting = ep.connect(addr, expect_name).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(transport::describe(&e)),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// Send `bytes` on a new stream and return how the node closed the connection (bounded).
pub async fn send_and_wait_close(conn: &quinn::Connection, bytes: &[u8]) -> quinn::ConnectionError {
    if let Ok(mut s) = conn.open_uni().await {
        let _ = s.write_all(bytes).await;
        let _ = s.finish();
    }
    match tokio::time::timeout(Duration::from_secs(5), conn.closed()).await {
        Ok(e) => e,
        Err(_) => panic!(
            "the node did not close the connection after {} bytes",
            bytes.len()
        ),
    }
}

pub fn closed_with(e: &quinn::ConnectionError, code: u32) -> bool {
    matches!(e, quinn::ConnectionError::ApplicationClosed(c) if c.error_code.into_inner() == u64::from(code))
}
