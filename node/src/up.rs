//! A local cluster on loopback: certificates, one configuration file per node, a client
//! configuration, data directories. `petrel up` launches it; the integration tests use the
//! same layout so they exercise exactly what an operator gets.
use crate::certs;
use crate::config::{ClientSection, Config, Peer, Table, TlsPaths, Topology, TransportSection};
use crate::launch::Role;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

/// What to lay out.
#[derive(Clone, Debug)]
pub struct Plan {
    pub cluster: String,
    pub replicas: usize,
    pub partitions: u8,
    pub transport: TransportSection,
    /// Client request timeout and whole-call deadline.
    pub client: ClientSection,
    /// The meta server's id; the replicas are the next `replicas` ids. Ids are unique
    /// across every cluster of an address book, so clusters laid out together need
    /// disjoint ranges.
    pub id_base: u64,
    /// Bootstrap table 1 with min(3, replicas) members. Off: the cluster starts with no
    /// table (tables come from `petrel admin table create` or as duplication followers),
    /// and its client configuration names table 1.
    pub bootstrap_table: bool,
    /// Accept duplication (follower tables, checkpoints, shipped mutations) from the
    /// other clusters laid out with this one.
    pub accept_duplication: bool,
}

impl Plan {
    pub fn new(cluster: &str, replicas: usize) -> Plan {
        Plan {
            cluster: cluster.to_string(),
            replicas,
            partitions: 1,
            transport: TransportSection::default(),
            client: ClientSection::default(),
            id_base: 0,
            bootstrap_table: true,
            accept_duplication: false,
        }
    }

    fn ids(&self) -> Vec<u64> {
        (self.id_base..=self.id_base + self.replicas as u64).collect()
    }
}

#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub id: u64,
    pub role: Role,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// A free loopback TCP port for `--metrics-addr` (chosen, not yet used).
    pub metrics_addr: SocketAddr,
}

impl NodeEntry {
    /// `meta-0`, `replica-3`: the name of its log file and process.
    pub fn name(&self) -> String {
        format!("{}-{}", self.role, self.id)
    }
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub cluster: String,
    pub certs: PathBuf,
    pub nodes: Vec<NodeEntry>,
    pub client_config: PathBuf,
    /// The operator's configuration (`petrel admin --config`): the operator certificate.
    pub admin_config: PathBuf,
}

/// `n` distinct free UDP ports on 127.0.0.1 (held together while chosen, then released:
/// another process could take one in between, which a launch then reports clearly).
pub fn free_udp_ports(n: usize) -> Result<Vec<u16>> {
    let socks = (0..n)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot find free UDP ports on 127.0.0.1")?;
    socks.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

/// `n` distinct free TCP ports on 127.0.0.1 (same caveat as [`free_udp_ports`]).
pub fn free_tcp_ports(n: usize) -> Result<Vec<u16>> {
    let socks = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot find free TCP ports on 127.0.0.1")?;
    socks.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

/// Write certificates and configuration files for one cluster under `dir`: meta server
/// `id_base`, replicas after it, table 1 bootstrapped with min(3, n) members.
pub fn write_cluster(dir: &Path, plan: &Plan) -> Result<Layout> {
    let mut v = lay_out(dir, std::slice::from_ref(plan), false)?;
    v.pop().context("no layout")
}

/// Several clusters that know each other: each in `dir/<cluster>/` with its own CA, and
/// every configuration's address book lists every node of every cluster (meta servers
/// marked `meta = true`) and trusts the other clusters' CAs — what duplication between
/// them needs. The plans' id ranges must be disjoint.
pub fn write_clusters(dir: &Path, plans: &[Plan]) -> Result<Vec<Layout>> {
    lay_out(dir, plans, true)
}

fn lay_out(dir: &Path, plans: &[Plan], subdirs: bool) -> Result<Vec<Layout>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut all_ids = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for p in plans {
        if !names.insert(p.cluster.clone()) {
            bail!("cluster {} is laid out twice", p.cluster);
        }
        for id in p.ids() {
            if !all_ids.insert(id) {
                bail!("node id {id} is used by two clusters: give each cluster its own id range");
            }
        }
    }
    // Certificates and ports first: every configuration lists every cluster's nodes.
    struct Prep {
        dir: PathBuf,
        certs: PathBuf,
        ids: Vec<u64>,
        addrs: Vec<SocketAddr>,
        metrics: Vec<SocketAddr>,
    }
    let mut preps = Vec::new();
    for p in plans {
        let cdir = if subdirs {
            dir.join(&p.cluster)
        } else {
            dir.clone()
        };
        std::fs::create_dir_all(&cdir)
            .with_context(|| format!("cannot create {}", cdir.display()))?;
        let ids = p.ids();
        let certs_dir = cdir.join("certs");
        certs::issue(
            &p.cluster,
            &certs::Wanted::cluster(ids[0], &ids[1..]),
            &certs_dir,
        )?;
        let addrs = free_udp_ports(ids.len())?
            .into_iter()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .collect();
        let metrics = free_tcp_ports(ids.len())?
            .into_iter()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .collect();
        preps.push(Prep {
            dir: cdir,
            certs: certs_dir,
            ids,
            addrs,
            metrics,
        });
    }
    let peers: Vec<Peer> = plans
        .iter()
        .zip(&preps)
        .flat_map(|(p, prep)| {
            prep.ids.iter().zip(&prep.addrs).map(|(id, addr)| Peer {
                id: *id,
                cluster: p.cluster.clone(),
                addr: *addr,
                meta: *id == p.id_base && plans.len() > 1,
            })
        })
        .collect();
    let mut layouts = Vec::new();
    for (k, (plan, prep)) in plans.iter().zip(&preps).enumerate() {
        let remote_cas: Vec<PathBuf> = preps
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, other)| other.certs.join("ca.pem"))
            .collect();
        let members = plan.replicas.min(3) as u8;
        let topology = Topology {
            meta: plan.id_base,
            replicas: prep.ids[1..].to_vec(),
            bootstrap_members: if plan.bootstrap_table { members } else { 0 },
            tables: if plan.bootstrap_table {
                vec![Table {
                    id: 1,
                    partitions: plan.partitions,
                    max_replica_count: members.max(1),
                }]
            } else {
                Vec::new()
            },
        };
        let base = Config {
            cluster: plan.cluster.clone(),
            id: None,
            listen: None,
            data_dir: None,
            tls: TlsPaths {
                ca: "certs/ca.pem".into(),
                cert: PathBuf::new(),
                key: PathBuf::new(),
                remote_cas,
            },
            topology,
            accept_duplication: plan.accept_duplication,
            gc: true,
            peers: peers.clone(),
            transport: plan.transport.clone(),
            client: ClientSection::default(),
            eventlog: Default::default(),
            storage: Default::default(),
            limits: Default::default(),
            lease: Default::default(),
        };
        let mut nodes = Vec::new();
        for (i, id) in prep.ids.iter().enumerate() {
            let role = if i == 0 { Role::Meta } else { Role::Replica };
            let mut c = base.clone();
            c.id = Some(*id);
            c.data_dir = Some(format!("data/n{id}").into());
            c.tls.cert = format!("certs/node-{id}.pem").into();
            c.tls.key = format!("certs/node-{id}.key").into();
            let path = prep.dir.join(format!("{role}-{id}.toml"));
            std::fs::write(&path, c.to_toml()?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if role == Role::Replica {
                // The installation: this data directory's first boot takes the bootstrap
                // roles (see `launch::INSTALL_MARK`).
                // Only a data directory this layout creates: re-running `up` over a
                // deployment must not make a wiped disk pass for the installation.
                let data = prep.dir.join(format!("data/n{id}"));
                if !data.exists() {
                    std::fs::create_dir_all(&data)
                        .with_context(|| format!("cannot create {}", data.display()))?;
                    let mark = data.join(crate::launch::INSTALL_MARK);
                    std::fs::write(&mark, b"")
                        .with_context(|| format!("cannot write {}", mark.display()))?;
                }
            }
            nodes.push(NodeEntry {
                id: *id,
                role,
                config: path,
                addr: prep.addrs[i],
                data_dir: prep.dir.join(format!("data/n{id}")),
                metrics_addr: prep.metrics[i],
            });
        }
        let mut c = base.clone();
        c.tls.cert = "certs/client-0.pem".into();
        c.tls.key = "certs/client-0.key".into();
        c.client = plan.client.clone();
        if !plan.bootstrap_table && c.client.table.is_none() {
            // No table yet: table 1 is the one a duplication or `table create` makes.
            c.client.table = Some(1);
        }
        let client_config = prep.dir.join("client.toml");
        std::fs::write(&client_config, c.to_toml()?)
            .with_context(|| format!("cannot write {}", client_config.display()))?;
        // The operator's file: the same address book, the operator certificate.
        let mut a = c.clone();
        a.tls.cert = "certs/operator-0.pem".into();
        a.tls.key = "certs/operator-0.key".into();
        let admin_config = prep.dir.join("admin.toml");
        std::fs::write(&admin_config, a.to_toml()?)
            .with_context(|| format!("cannot write {}", admin_config.display()))?;
        layouts.push(Layout {
            dir: prep.dir.clone(),
            cluster: plan.cluster.clone(),
            certs: prep.certs.clone(),
            nodes,
            client_config,
            admin_config,
        });
    }
    Ok(layouts)
}

/// Start one node of a layout as a child process of the `petrel` binary `exe`, its log
/// (stderr) appended to `log`.
pub fn spawn(exe: &Path, n: &NodeEntry, log: &Path) -> Result<std::process::Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    std::process::Command::new(exe)
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
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {}", n.name()))
}

/// Wait (bounded) until `log` holds `starts` "ready" lines, failing if `child` exits.
pub async fn wait_ready(
    child: &mut std::process::Child,
    log: &Path,
    starts: usize,
    limit: std::time::Duration,
) -> Result<()> {
    let until = std::time::Instant::now() + limit;
    loop {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(" ready")
            .count()
            >= starts
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the node exited ({status}) during start; see {}",
                log.display()
            );
        }
        if std::time::Instant::now() > until {
            bail!(
                "the node did not become ready within {limit:?}; see {}",
                log.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The two clusters of `petrel up --clusters 2`: `a` (ids 0..) with table 1, and `b`
/// (ids 100..) with no table, both accepting duplication from the other.
pub fn pair_plans(replicas: usize, partitions: u8) -> Result<Vec<Plan>> {
    if replicas >= 100 {
        bail!("--replicas must be below 100 with --clusters 2 (cluster b's ids start at 100)");
    }
    let mut a = Plan::new("a", replicas);
    a.partitions = partitions;
    a.accept_duplication = true;
    let mut b = Plan::new("b", replicas);
    b.partitions = partitions;
    b.id_base = 100;
    b.bootstrap_table = false;
    b.accept_duplication = true;
    Ok(vec![a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = write_cluster(dir.path(), &Plan::new("alpha", 3)).expect("layout");
        assert_eq!(layout.nodes.len(), 4);
        for n in &layout.nodes {
            let c = Config::load(&n.config).expect("node config");
            match n.role {
                Role::Meta => assert_eq!(c.meta_cfg().expect("meta").dir.replicas.len(), 3),
                Role::Replica => assert_eq!(c.replica_cfg().expect("replica").bootstrap.len(), 1),
            }
            assert!(c.tls().is_ok());
        }
        let c = Config::load(&layout.client_config).expect("client config");
        let (client, operator) = (
            certs::Identity::Client {
                cluster: "alpha".into(),
            },
            certs::Identity::Operator {
                cluster: "alpha".into(),
            },
        );
        assert!(
            c.tls().expect("tls").is_valid_for(&client)
                && !c.tls().expect("tls").is_valid_for(&operator)
        );
        let a = Config::load(&layout.admin_config).expect("admin config");
        assert!(a.tls().expect("tls").is_valid_for(&operator));
    }

    #[test]
    fn two_clusters_know_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layouts =
            write_clusters(dir.path(), &pair_plans(2, 1).expect("plans")).expect("layouts");
        assert_eq!(layouts.len(), 2);
        let (a, b) = (&layouts[0], &layouts[1]);
        assert_eq!(
            b.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        let ca = Config::load(&a.client_config).expect("a client");
        let cb = Config::load(&b.client_config).expect("b client");
        assert_eq!(
            (
                ca.meta_of("b").expect("b's meta"),
                cb.meta_of("a").expect("a's meta")
            ),
            (100, 0)
        );
        assert_eq!(
            cb.client_cfg(Vec::new()).expect("b client cfg").gpid.table,
            1,
            "b's client reads the follower table"
        );
        let meta_b = Config::load(&b.nodes[0].config).expect("b meta");
        assert!(meta_b.accept_duplication && meta_b.meta_cfg().expect("cfg").tables.is_empty());
        // Each trusts the other's CA: a's replica certificate verifies under b's roots.
        let tls_b = meta_b.tls().expect("tls");
        assert_eq!(tls_b.roots.len(), 2);
        let mut overlapping = pair_plans(1, 1).expect("plans");
        overlapping[1].id_base = 1;
        assert!(write_clusters(dir.path(), &overlapping).is_err());
    }
}
