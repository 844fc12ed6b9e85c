//! One network namespace per node, each with its own address on a bridge the harness
//! creates: the nodes of a campaign are separate hosts to each other, configured by
//! address as on real machines.
//!
//! ```text
//!  root namespace                         node namespaces
//!  bridge pb<pid>-<k>  198.18.S.1/24 ──┬── veth ── eth0 198.18.S.10  (node 0)
//!  (the harness: clients, nemesis)     ├── veth ── eth0 198.18.S.11  (node 1)
//!                                      └── …
//! ```
//!
//! The subnet is taken from 198.18.0.0/15 (RFC 2544's range for network tests, never a
//! real network) and is unique among the addresses the machine has. The namespaces have
//! no default route and the root namespace does not forward (`ip_forward` is left as it
//! is; a node can only reach the bridge's subnet), so nothing a node sends leaves the
//! bridge. Names carry the harness's pid and the campaign's number, so parallel runs do
//! not collide, and a run that was killed can be swept by the next (its pid is gone).
//!
//! [`Net`] removes everything it created when dropped: it kills the processes still in its
//! namespaces (by the pids `ip netns pids` names: all started by this harness), deletes
//! the namespaces (their iptables rules and qdiscs go with them) and the bridge (its veth
//! ends go with it).
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The prefix of every namespace a campaign creates: `petrel-c<pid>-<k>-<i>`.
const NS_PREFIX: &str = "petrel-c";
/// The prefix of every bridge and veth (interface names are at most 15 bytes).
const BRIDGE_PREFIX: &str = "pb";
const VETH_PREFIX: &str = "pv";

/// The campaign needs root (namespaces, veths, iptables) and `ip`; a clear error if not.
pub fn check_available() -> Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        bail!("petrel campaign runs each node in its own network namespace, which needs root (effective uid {uid:?}); run it as root");
    }
    for tool in ["ip", "iptables"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !ok {
            bail!("petrel campaign needs `{tool}` (packages iproute2 and iptables)");
        }
    }
    Ok(())
}

/// Run a command to completion; its stderr in the error.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

fn pid_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Kill the processes left in namespace `ns` (SIGKILL, by pid).
fn kill_in(ns: &str) {
    for pid in output("ip", &["netns", "pids", ns]).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Remove what earlier campaigns whose harness no longer runs left behind (a harness
/// killed with SIGKILL cannot clean up). Returns what was removed.
pub fn sweep_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for line in output("ip", &["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u64>().ok());
        if pid.is_some_and(|p| !pid_alive(p)) {
            kill_in(name);
            if run("ip", &["netns", "del", name]).is_ok() {
                removed.push(format!("namespace {name}"));
            }
        }
    }
    for line in output("ip", &["-o", "link", "show", "type", "bridge"]).lines() {
        // "7: pbabc-1: <…"
        let Some(name) = line.split(": ").nth(1).map(|n| n.trim()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(BRIDGE_PREFIX) else {
            continue;
        };
        let pid = rest
            .split('-')
            .next()
            .and_then(|p| u64::from_str_radix(p, 36).ok());
        if pid.is_some_and(|p| !pid_alive(p)) && run("ip", &["link", "del", name]).is_ok() {
            removed.push(format!("bridge {name}"));
        }
    }
    removed
}

/// A node's host: its namespace and address.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// The bridge, its subnet and one namespace per node (removed on drop).
pub struct Net {
    pub bridge: String,
    /// The harness's address on the bridge (the clients' host).
    pub host_ip: Ipv4Addr,
    pub hosts: Vec<Host>,
    namespaces: Vec<String>,
    bridge_made: bool,
}

/// Serialises choosing a subnet among concurrent harnesses on this machine.
fn subnet_lock() -> Result<std::fs::File> {
    let path = std::env::temp_dir().join("petrel-campaign-net.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

impl Net {
    /// A bridge and `n` namespaces for campaign `k` of this harness.
    pub fn create(k: u64, n: usize) -> Result<Net> {
        if n > 200 {
            bail!("at most 200 hosts per campaign");
        }
        let pid = u64::from(std::process::id());
        let tag = format!("{}-{}", base36(pid), base36(k));
        let mut net = Net {
            bridge: format!("{BRIDGE_PREFIX}{tag}"),
            host_ip: Ipv4Addr::UNSPECIFIED,
            hosts: Vec::new(),
            namespaces: Vec::new(),
            bridge_made: false,
        };
        if net.bridge.len() > 15 {
            bail!("interface name {} is too long", net.bridge);
        }
        {
            let _lock = subnet_lock()?;
            let taken = output("ip", &["-4", "-o", "addr", "show"]);
            let start = (pid.wrapping_mul(31).wrapping_add(k.wrapping_mul(7))) % 512;
            let subnet = (0..512)
                .map(|i| (start + i) % 512)
                .map(|s| (18 + (s / 256) as u8, (s % 256) as u8))
                .find(|(b, c)| !taken.contains(&format!("inet 198.{b}.{c}.")))
                .context("no free /24 in 198.18.0.0/15")?;
            let ip = |last: u8| Ipv4Addr::new(198, subnet.0, subnet.1, last);
            net.host_ip = ip(1);
            run("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
            net.bridge_made = true;
            run(
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/24", net.host_ip),
                    "dev",
                    &net.bridge,
                ],
            )?;
            run("ip", &["link", "set", &net.bridge, "up"])?;
            for i in 0..n {
                let ns = format!("{NS_PREFIX}{pid}-{k}-{i}");
                run("ip", &["netns", "add", &ns])?;
                net.namespaces.push(ns.clone());
                let veth = format!("{VETH_PREFIX}{tag}-{}", base36(i as u64));
                if veth.len() > 15 {
                    bail!("interface name {veth} is too long");
                }
                run(
                    "ip",
                    &[
                        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                    ],
                )?;
                run("ip", &["link", "set", &veth, "master", &net.bridge, "up"])?;
                let addr = ip(10 + i as u8);
                run(
                    "ip",
                    &[
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &format!("{addr}/24"),
                        "dev",
                        "eth0",
                    ],
                )?;
                run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
                run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
                net.hosts.push(Host { ns, ip: addr });
            }
        }
        Ok(net)
    }

    /// Run `program args` inside host `i`'s namespace, to completion.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> Result<()> {
        let ns = &self.hosts.get(i).context("no such host")?.ns;
        let mut all = vec!["netns", "exec", ns.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command that runs `program` inside host `i`'s namespace (`ip netns exec` execs it
    /// in place: the child's pid is the program's).
    pub fn command(&self, i: usize, program: &std::path::Path) -> Result<Command> {
        let ns = &self.hosts.get(i).context("no such host")?.ns;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        Ok(c)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_in(ns);
        }
        for ns in self.namespaces.drain(..) {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                eprintln!("campaign: could not remove namespace {ns}: {e:#}");
            }
        }
        if self.bridge_made {
            if let Err(e) = run("ip", &["link", "del", &self.bridge]) {
                eprintln!("campaign: could not remove bridge {}: {e:#}", self.bridge);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_parse_back() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        let max_pid = base36(4_194_304);
        assert!(format!("{VETH_PREFIX}{max_pid}-{}-{}", base36(9999), base36(99)).len() <= 15);
        assert_eq!(u64::from_str_radix(&max_pid, 36).ok(), Some(4_194_304));
    }
}
