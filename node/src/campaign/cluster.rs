//! The campaign's clusters: the layout `petrel up` writes, re-addressed to one network
//! namespace per node (each node listens on its own address, port 7000, as on separate
//! machines), and the node processes, started inside their namespaces, killed, paused,
//! restarted.
//!
//! The same configuration files run on real hosts unchanged: each node's `[[peers]]`
//! lists the others by address, and nothing in them names a namespace.
use super::netns::Net;
use crate::config::{ClientSection, Config, TransportSection};
use crate::launch::Role;
use crate::up::{self, Layout, Plan};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::nemesis::Side;

pub const PORT: u16 = 7000;
/// Replicas per cluster.
pub const REPLICAS: usize = 3;

/// One node process.
pub struct NodeProc {
    pub id: u64,
    pub role: Role,
    pub side: Side,
    /// Index of its host in the [`Net`].
    pub host: usize,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub paused: bool,
    starts: usize,
}

impl NodeProc {
    pub fn name(&self) -> String {
        format!("{}/{}-{}", self.side, self.role, self.id)
    }
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

pub struct Clusters {
    pub layouts: Vec<Layout>,
    pub nodes: Vec<NodeProc>,
    exe: PathBuf,
    /// Environment of every node process (test-only mutant switch).
    env: Vec<(String, String)>,
}

/// The transport and client settings of a campaign: a failure detector and client
/// timeouts short enough that a few seconds of faults mean several failovers.
fn plan(cluster: &str, partitions: u8) -> Plan {
    let mut p = Plan::new(cluster, REPLICAS);
    p.partitions = partitions;
    p.transport = TransportSection {
        idle_timeout_ms: 1500,
        keep_alive_ms: 300,
        handshake_timeout_ms: 1500,
    };
    p.client = ClientSection {
        table: None,
        partition: 0,
        request_timeout_ms: Some(500),
        max_attempts: Some(4),
        deadline_ms: Some(2000),
    };
    p
}

/// Re-address one configuration file: every peer at its namespace's address.
fn readdress(path: &Path, addr_of: &dyn Fn(u64) -> Option<SocketAddr>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut c: Config =
        toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    for p in &mut c.peers {
        p.addr = addr_of(p.id).with_context(|| format!("no host for node {}", p.id))?;
    }
    // A campaign's logs must stay whole to be validated.
    c.eventlog.max_bytes = 512 << 20;
    std::fs::write(path, c.to_toml()?).with_context(|| format!("cannot write {}", path.display()))
}

impl Clusters {
    /// Lay out cluster a (ids 0–3, table 1 with `partitions` partitions) and, with `dup`,
    /// cluster b (ids 100–103, no table until the duplication creates its follower) under
    /// `dir`, one node per host of `net` (a's first, then b's).
    pub fn lay_out(
        dir: &Path,
        net: &Net,
        partitions: u8,
        dup: bool,
        exe: &Path,
        env: Vec<(String, String)>,
    ) -> Result<Clusters> {
        let mut plans = vec![plan("a", partitions)];
        if dup {
            plans[0].accept_duplication = true;
            let mut b = plan("b", partitions);
            b.id_base = 100;
            b.bootstrap_table = false;
            b.accept_duplication = true;
            plans.push(b);
        }
        let layouts = up::write_clusters(dir, &plans)?;
        let mut nodes = Vec::new();
        for (k, layout) in layouts.iter().enumerate() {
            let side = if k == 0 { Side::A } else { Side::B };
            for n in &layout.nodes {
                let host = nodes.len();
                if host >= net.hosts.len() {
                    bail!("more nodes than hosts");
                }
                nodes.push(NodeProc {
                    id: n.id,
                    role: n.role,
                    side,
                    host,
                    config: n.config.clone(),
                    data_dir: n.data_dir.clone(),
                    log: layout.dir.join(format!("{}.log", n.name())),
                    child: None,
                    paused: false,
                    starts: 0,
                });
            }
        }
        let addrs: Vec<(u64, SocketAddr)> = nodes
            .iter()
            .map(|n| (n.id, SocketAddr::from((net.hosts[n.host].ip, PORT))))
            .collect();
        let addr_of = |id: u64| addrs.iter().find(|(i, _)| *i == id).map(|(_, a)| *a);
        for layout in &layouts {
            for path in layout
                .nodes
                .iter()
                .map(|n| &n.config)
                .chain([&layout.client_config, &layout.admin_config])
            {
                readdress(path, &addr_of)?;
            }
        }
        Ok(Clusters {
            layouts,
            nodes,
            exe: exe.to_path_buf(),
            env,
        })
    }

    pub fn client_config(&self, side: Side) -> Option<&Path> {
        self.layouts
            .get(side_index(side))
            .map(|l| l.client_config.as_path())
    }

    pub fn admin_config(&self, side: Side) -> Option<&Path> {
        self.layouts
            .get(side_index(side))
            .map(|l| l.admin_config.as_path())
    }

    /// Start node `i` (not running) in its namespace; wait (bounded) until it is ready.
    pub fn start(&mut self, net: &Net, i: usize) -> Result<()> {
        let n = self.nodes.get_mut(i).context("no such node")?;
        if n.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .with_context(|| format!("cannot open {}", n.log.display()))?;
        let mut cmd = net.command(n.host, &self.exe)?;
        cmd.arg(n.role.to_string())
            .arg("--config")
            .arg(&n.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", n.name()))?;
        n.child = Some(child);
        n.paused = false;
        n.starts += 1;
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            if text.matches(" ready").count() >= n.starts {
                return Ok(());
            }
            if let Some(c) = &mut n.child {
                if let Ok(Some(status)) = c.try_wait() {
                    n.child = None;
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    bail!(
                        "{} exited ({status}) during start; last lines of {}:\n{}",
                        n.name(),
                        n.log.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
            if Instant::now() > until {
                bail!(
                    "{} did not become ready within 20 s; see {}",
                    n.name(),
                    n.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn start_all(&mut self, net: &Net) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.start(net, i)?;
        }
        Ok(())
    }

    /// `kill -9` (a paused process dies too) and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            n.paused = false;
        }
    }

    fn signal(pid: u32, sig: &str) {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }

    pub fn pause(&mut self, i: usize) -> bool {
        match self.nodes.get_mut(i) {
            Some(n) if !n.paused => match n.pid() {
                Some(pid) => {
                    Self::signal(pid, "STOP");
                    n.paused = true;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    pub fn resume(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            if n.paused {
                if let Some(pid) = n.pid() {
                    Self::signal(pid, "CONT");
                }
                n.paused = false;
            }
        }
    }

    /// Stop every node: SIGCONT if paused, SIGTERM (the event log is flushed), SIGKILL
    /// after 5 s.
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.resume(i);
            if let Some(pid) = self.nodes[i].pid() {
                Self::signal(pid, "TERM");
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }

    /// A processes that exited on its own (not killed by the nemesis): a finding.
    pub fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                if let Ok(Some(status)) = c.try_wait() {
                    out.push(format!("{} exited on its own ({status})", n.name()));
                    n.child = None;
                }
            }
        }
        out
    }

    /// The disk is replaced: the data directory is moved aside (its event log stays
    /// readable for validation, as a lost disk's log kept elsewhere) and an empty one
    /// takes its place. The node must be stopped.
    pub fn wipe(&mut self, i: usize, run_dir: &Path, k: usize) -> Result<()> {
        let n = self.nodes.get(i).context("no such node")?;
        if n.running() {
            bail!("wipe of a running node");
        }
        let kept = run_dir.join(format!("lost-disk-n{}-{k}", n.id));
        std::fs::rename(&n.data_dir, &kept)
            .with_context(|| format!("cannot move {} aside", n.data_dir.display()))?;
        // The installation mark (bootstrap roles) is not on a new disk.
        let _ = std::fs::remove_file(kept.join(crate::launch::INSTALL_MARK));
        std::fs::create_dir_all(&n.data_dir)
            .with_context(|| format!("cannot create {}", n.data_dir.display()))?;
        Ok(())
    }

    /// A torn final write: append the first half of a copy of the last record of the
    /// node's storage file (an append that a crash cut short, before its fsync returned).
    /// Returns the bytes appended. The node must be stopped.
    pub fn tear(&mut self, i: usize) -> Result<usize> {
        let n = self.nodes.get(i).context("no such node")?;
        if n.running() {
            bail!("torn write on a running node");
        }
        let path = [
            n.data_dir.join("storage").join("storage.log"),
            n.data_dir.join("storage.log"),
        ]
        .into_iter()
        .find(|p| p.exists())
        .with_context(|| format!("no storage file under {}", n.data_dir.display()))?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let torn = torn_tail(&bytes);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.write_all(&torn)
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot append to {}", path.display()))?;
        Ok(torn.len())
    }

    /// The node index of `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    pub fn meta_of(&self, side: Side) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.side == side && n.role == Role::Meta)
    }

    pub fn replicas_of(&self, side: Side) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].side == side && self.nodes[*i].role == Role::Replica)
            .collect()
    }

    pub fn of_side(&self, side: Side) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].side == side)
            .collect()
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

pub fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// The incomplete record to append: a storage file is "PETRELS<v>" then records
/// `[magic 4][len 4 BE][crc 4][len bytes]`; half of a copy of the last one (or half a
/// header when there is none).
fn torn_tail(file: &[u8]) -> Vec<u8> {
    const HEADER: usize = 12;
    let mut at = 8;
    let mut last = None;
    while at + HEADER <= file.len() {
        let len = u32::from_be_bytes([file[at + 4], file[at + 5], file[at + 6], file[at + 7]]);
        let end = at + HEADER + len as usize;
        if end > file.len() {
            break;
        }
        last = Some((at, end));
        at = end;
    }
    match last {
        Some((start, end)) => {
            let record = &file[start..end];
            record[..(record.len() / 2).max(HEADER + 1).min(record.len() - 1)].to_vec()
        }
        None => b"PTRL\0\0".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_a_proper_prefix_of_the_last_record() {
        let mut file = b"PETRELS4".to_vec();
        for len in [5u32, 40] {
            file.extend_from_slice(b"PTRL");
            file.extend_from_slice(&len.to_be_bytes());
            file.extend_from_slice(&[0; 4]);
            file.extend(std::iter::repeat_n(7u8, len as usize));
        }
        let t = torn_tail(&file);
        assert_eq!(&t[..4], b"PTRL");
        assert_eq!(u32::from_be_bytes([t[4], t[5], t[6], t[7]]), 40);
        assert!(t.len() < 12 + 40 && t.len() > 12);
        assert_eq!(torn_tail(b"PETRELS4"), b"PTRL\0\0".to_vec());
    }
}
