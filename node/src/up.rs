//! A local cluster on loopback: certificates, one configuration file per node, a client
//! configuration, data directories. `petrel up` launches it; the integration tests use the
//! same layout so they exercise exactly what an operator gets.
use crate::certs;
use crate::config::{ClientSection, Config, Peer, Table, TlsPaths, Topology, TransportSection};
use crate::launch::Role;
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
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
}

impl Plan {
    pub fn new(cluster: &str, replicas: usize) -> Plan {
        Plan {
            cluster: cluster.to_string(),
            replicas,
            partitions: 1,
            transport: TransportSection::default(),
            client: ClientSection::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub id: u64,
    pub role: Role,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub cluster: String,
    pub certs: PathBuf,
    pub nodes: Vec<NodeEntry>,
    pub client_config: PathBuf,
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

/// Write certificates and configuration files for one cluster under `dir`: meta server 0,
/// replicas 1..=n, one table (id 1) bootstrapped with min(3, n) members.
pub fn write_cluster(dir: &Path, plan: &Plan) -> Result<Layout> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    let ids: Vec<u64> = (0..=plan.replicas as u64).collect();
    let certs_dir = dir.join("certs");
    certs::issue(&plan.cluster, &ids, 1, &certs_dir)?;
    let ports = free_udp_ports(ids.len())?;
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, *p))).collect();
    let peers: Vec<Peer> = ids.iter().zip(&addrs).map(|(id, addr)| Peer { id: *id, cluster: plan.cluster.clone(), addr: *addr }).collect();
    let members = plan.replicas.min(3) as u8;
    let topology = Topology {
        meta: 0,
        replicas: ids[1..].to_vec(),
        bootstrap_members: members,
        tables: vec![Table { id: 1, partitions: plan.partitions, max_replica_count: members.max(1) }],
    };
    let base = Config {
        cluster: plan.cluster.clone(),
        id: None,
        listen: None,
        data_dir: None,
        tls: TlsPaths { ca: "certs/ca.pem".into(), cert: PathBuf::new(), key: PathBuf::new(), remote_cas: Vec::new() },
        topology,
        accept_duplication: false,
        gc: true,
        peers,
        transport: plan.transport.clone(),
        client: ClientSection::default(),
        eventlog: Default::default(),
        storage: Default::default(),
    };
    let mut nodes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let role = if *id == 0 { Role::Meta } else { Role::Replica };
        let mut c = base.clone();
        c.id = Some(*id);
        c.data_dir = Some(format!("data/n{id}").into());
        c.tls.cert = format!("certs/node-{id}.pem").into();
        c.tls.key = format!("certs/node-{id}.key").into();
        let path = dir.join(format!("{role}-{id}.toml"));
        std::fs::write(&path, c.to_toml()?).with_context(|| format!("cannot write {}", path.display()))?;
        nodes.push(NodeEntry { id: *id, role, config: path, addr: addrs[i], data_dir: dir.join(format!("data/n{id}")) });
    }
    let mut c = base;
    c.tls.cert = "certs/client-0.pem".into();
    c.tls.key = "certs/client-0.key".into();
    c.client = plan.client.clone();
    let client_config = dir.join("client.toml");
    std::fs::write(&client_config, c.to_toml()?).with_context(|| format!("cannot write {}", client_config.display()))?;
    Ok(Layout { dir, cluster: plan.cluster.clone(), certs: certs_dir, nodes, client_config })
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
                Role::Meta => assert_eq!(c.meta_cfg().expect("meta").replicas.len(), 3),
                Role::Replica => assert_eq!(c.replica_cfg().expect("replica").bootstrap.len(), 1),
            }
            assert!(c.tls().is_ok());
        }
        let c = Config::load(&layout.client_config).expect("client config");
        assert!(c.tls().expect("tls").identities().contains(&certs::Identity::Client { cluster: "alpha".into() }));
    }
}
