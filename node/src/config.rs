//! The operator's configuration file (TOML), and how it becomes the core's `MetaCfg`,
//! `ReplicaCfg` or `ClientCfg`.
//!
//! One file shape serves every role; the subcommand (`petrel meta|replica|client`) says
//! which parts are needed. Relative paths are relative to the file's directory.
//!
//! ```toml
//! cluster = "alpha"
//! id = 1                       # nodes only (clients pick a random id >= 2^32)
//! listen = "127.0.0.1:7001"    # nodes only
//! data_dir = "data/n1"         # nodes only
//!
//! [tls]
//! ca = "certs/ca.pem"          # this cluster's CA
//! cert = "certs/node-1.pem"
//! key = "certs/node-1.key"
//! remote_cas = []              # CAs of clusters allowed to connect (duplication)
//!
//! [topology]                   # the same in every file of a cluster
//! meta = 0
//! replicas = [1, 2, 3]
//! bootstrap_members = 3        # 0: primaries are assigned at run time
//! [[topology.tables]]
//! id = 1
//! partitions = 1
//! max_replica_count = 3
//!
//! [[peers]]                    # the address book: every node this one may talk to
//! id = 0
//! cluster = "alpha"
//! addr = "127.0.0.1:7000"
//!
//! [[peers]]                    # another cluster's meta server (a duplication partner):
//! id = 100                     # node ids are unique across every cluster of the book
//! cluster = "beta"
//! addr = "127.0.0.1:7100"
//! meta = true                  # `petrel admin dup add --remote-cluster beta` finds it,
//!                              # and its certificate must be meta.n100.beta.petrel (an
//!                              # unmarked node of another cluster must be replica.n<id>…)
//!
//! [transport]                  # optional; defaults shown
//! idle_timeout_ms = 5000       # a silent connection is dead after this: PeerDown
//! keep_alive_ms = 1000
//! handshake_timeout_ms = 5000
//!
//! [limits]                     # the largest key and value of a write; defaults shown.
//! max_key_bytes = 4096         # the client library refuses a larger one before sending
//! max_value_bytes = 1048576    # (naming the limit); a node refuses one a peer sends
//!                              # anyway. Keep well under the 16 MiB frame limit: a
//!                              # prepare, a learn or a ship batch carries several.
//!
//! [client]                     # `petrel client` / the client library; defaults shown
//! table = 1                    # default: the first table (`petrel client --table` overrides)
//! partition = 0                # only `petrel client config` without a key uses it
//! request_timeout_ms = 2000
//! max_attempts = 5            # 5 × 2 s outlasts the default 5 s failure detector
//! deadline_ms = 15000          # one call (put/get/del), retries included
//! ```
use crate::certs::NodeRole;
use crate::transport::{Limits, PeerAddr, Settings, TlsMaterial, CLIENT_ID_BASE};
use anyhow::{bail, Context, Result};
use petrel_core::client::ClientCfg;
use petrel_core::meta::{MetaCfg, TableSpec};
use petrel_core::replica::ReplicaCfg;
use petrel_core::{Bugs, ClientOp, Gpid};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    pub tls: TlsPaths,
    pub topology: Topology,
    /// Accept duplication (create-follower requests, checkpoints, shipped mutations) from
    /// other clusters.
    #[serde(default)]
    pub accept_duplication: bool,
    /// Replica log retention: collect the committed prefix into a snapshot.
    #[serde(default = "yes")]
    pub gc: bool,
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub transport: TransportSection,
    #[serde(default)]
    pub client: ClientSection,
    #[serde(default)]
    pub eventlog: EventLogSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub lease: LeaseSection,
}

/// Leases and failure detection (SPEC.md, "Timing"). A replica serves only while its
/// lease holds: at most `lease_ms` after it sent a beacon the meta server acknowledged.
/// The meta server declares a replica dead `grace_ms` after the last beacon it heard,
/// which must outlast the lease even if the two clocks run at rates `max_drift` apart,
/// by at least `margin_ms`: then a replica declared dead has stopped serving.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseSection {
    pub beacon_ms: u64,
    pub lease_ms: u64,
    pub grace_ms: u64,
    /// Relative clock-rate difference tolerated (0.01 = 1 %).
    pub max_drift: f64,
    pub margin_ms: u64,
}

impl Default for LeaseSection {
    fn default() -> Self {
        LeaseSection {
            beacon_ms: 100,
            lease_ms: 400,
            grace_ms: 600,
            max_drift: 0.01,
            margin_ms: 100,
        }
    }
}

impl LeaseSection {
    /// Refuse a configuration where a replica declared dead could still hold its lease.
    pub fn validate(&self) -> Result<()> {
        if self.beacon_ms == 0 || self.beacon_ms >= self.lease_ms {
            bail!("[lease] beacon_ms must be positive and below lease_ms (a lease lasts lease_ms - beacon_ms after its beacon is acknowledged)");
        }
        if !(0.0..0.5).contains(&self.max_drift) {
            bail!("[lease] max_drift must be in [0, 0.5)");
        }
        // The lease measured on the replica's clock, the grace on the meta server's.
        let worst_lease = self.lease_ms as f64 * (1.0 + self.max_drift) / (1.0 - self.max_drift);
        let needed = worst_lease + self.margin_ms as f64;
        if (self.grace_ms as f64) <= needed {
            bail!(
                "[lease] grace_ms = {} must exceed lease_ms × (1 + max_drift) / (1 − max_drift) + margin_ms = {needed:.0}: \
                 otherwise the meta server could declare a replica dead while it still serves",
                self.grace_ms
            );
        }
        // A restarted meta server judges nobody dead for META_GRACE: every lease its
        // previous life granted must have lapsed by then (SPEC.md, MetaGrace).
        let meta_grace = petrel_core::meta::META_GRACE.as_millis() as f64;
        if meta_grace <= needed {
            bail!(
                "[lease] lease_ms × (1 + max_drift) / (1 − max_drift) + margin_ms = {needed:.0} must stay below the meta server's restart grace ({meta_grace:.0} ms): \
                 otherwise a restarted meta server could give away the roles of a replica that still serves"
            );
        }
        Ok(())
    }
    pub fn replica(&self) -> petrel_core::replica::LeaseCfg {
        petrel_core::replica::LeaseCfg {
            beacon: Duration::from_millis(self.beacon_ms),
            lease: Duration::from_millis(self.lease_ms),
            seq_modulus: u32::MAX,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = Limits::default();
        LimitsSection {
            max_key_bytes: l.max_key_bytes,
            max_value_bytes: l.max_value_bytes,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub remote_cas: Vec<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub meta: u64,
    #[serde(default)]
    pub replicas: Vec<u64>,
    #[serde(default)]
    pub bootstrap_members: u8,
    #[serde(default)]
    pub tables: Vec<Table>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub id: u8,
    pub partitions: u8,
    pub max_replica_count: u8,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: u64,
    pub cluster: String,
    pub addr: SocketAddr,
    /// This node is its cluster's meta server (how `petrel admin dup add` finds a remote
    /// cluster's meta server; the own cluster's is `topology.meta`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub meta: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSection {
    pub idle_timeout_ms: u64,
    pub keep_alive_ms: u64,
    pub handshake_timeout_ms: u64,
}

impl Default for TransportSection {
    fn default() -> Self {
        TransportSection {
            idle_timeout_ms: 5000,
            keep_alive_ms: 1000,
            handshake_timeout_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<u8>,
    pub partition: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventLogSection {
    pub enabled: bool,
    pub max_bytes: u64,
}

impl Default for EventLogSection {
    fn default() -> Self {
        EventLogSection {
            enabled: true,
            max_bytes: 8 << 20,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub compact_min_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            compact_min_bytes: crate::storage::StoreOptions::default().compact_min_bytes,
        }
    }
}

fn ids(v: &[u64]) -> Vec<Id> {
    v.iter().map(|r| crate::transport::id_of(*r)).collect()
}

impl Config {
    /// Read and validate the common parts; paths become absolute.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut c: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        c.resolve(base);
        c.validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(c)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot write config")
    }

    fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.tls.ca);
        abs(&mut self.tls.cert);
        abs(&mut self.tls.key);
        self.tls.remote_cas.iter_mut().for_each(abs);
        if let Some(d) = &mut self.data_dir {
            abs(d);
        }
    }

    fn validate(&self) -> Result<()> {
        crate::certs::check_cluster_name(&self.cluster)?;
        self.lease.validate()?;
        let mut seen = BTreeSet::new();
        for p in &self.peers {
            if p.id >= CLIENT_ID_BASE {
                bail!(
                    "peer id {} is in the client range (node ids must be below 2^32)",
                    p.id
                );
            }
            if !seen.insert(p.id) {
                bail!("peer id {} appears twice in [[peers]]", p.id);
            }
            crate::certs::check_cluster_name(&p.cluster)
                .with_context(|| format!("peer {}", p.id))?;
        }
        if let Some(id) = self.id {
            if id >= CLIENT_ID_BASE {
                bail!("id {id} is in the client range (node ids must be below 2^32)");
            }
        }
        let book = self.book();
        let own = |id: u64, what: &str| -> Result<()> {
            match book.get(&id) {
                None => bail!("{what} {id} has no [[peers]] entry"),
                Some(p) if p.cluster != self.cluster => bail!(
                    "{what} {id} is listed in cluster {}, not {}",
                    p.cluster,
                    self.cluster
                ),
                Some(_) => Ok(()),
            }
        };
        own(self.topology.meta, "the meta server")?;
        if let Some(p) = self
            .peers
            .iter()
            .find(|p| p.meta && p.cluster == self.cluster && p.id != self.topology.meta)
        {
            bail!(
                "peer {} is marked `meta = true`, but this cluster's meta server is {}",
                p.id,
                self.topology.meta
            );
        }
        for r in &self.topology.replicas {
            own(*r, "replica")?;
        }
        let mut tables = BTreeSet::new();
        for t in &self.topology.tables {
            if !tables.insert(t.id) {
                bail!("table {} is defined twice", t.id);
            }
            if t.partitions == 0 || t.max_replica_count == 0 {
                bail!(
                    "table {}: partitions and max_replica_count must be at least 1",
                    t.id
                );
            }
        }
        if self.transport.keep_alive_ms == 0
            || self.transport.keep_alive_ms >= self.transport.idle_timeout_ms
        {
            bail!("[transport] keep_alive_ms must be positive and below idle_timeout_ms");
        }
        // A write of the largest key and value must fit a frame with room to spare.
        let ceiling = crate::codec::MAX_FRAME / 4;
        if self.limits.max_key_bytes == 0
            || self.limits.max_value_bytes == 0
            || self.limits.max_key_bytes + self.limits.max_value_bytes > ceiling
        {
            bail!("[limits] max_key_bytes and max_value_bytes must be positive and together at most {ceiling} bytes (a quarter of the frame limit)");
        }
        Ok(())
    }

    /// The address book. A node's role (what its certificate must name) is `meta` for
    /// this cluster's `topology.meta` and for another cluster's entry marked
    /// `meta = true`, else `replica`.
    pub fn book(&self) -> BTreeMap<u64, PeerAddr> {
        self.peers
            .iter()
            .map(|p| {
                let meta = if p.cluster == self.cluster {
                    p.id == self.topology.meta
                } else {
                    p.meta
                };
                let role = if meta {
                    NodeRole::Meta
                } else {
                    NodeRole::Replica
                };
                (
                    p.id,
                    PeerAddr {
                        cluster: p.cluster.clone(),
                        addr: p.addr,
                        role,
                    },
                )
            })
            .collect()
    }

    /// The largest key and value of a write.
    pub fn limits(&self) -> Limits {
        Limits {
            max_key_bytes: self.limits.max_key_bytes,
            max_value_bytes: self.limits.max_value_bytes,
        }
    }

    /// The meta server of cluster `name`: `topology.meta` for this cluster, else the
    /// `[[peers]]` entry of that cluster marked `meta = true`.
    pub fn meta_of(&self, name: &str) -> Result<u64> {
        if name == self.cluster {
            return Ok(self.topology.meta);
        }
        let of_cluster: Vec<&Peer> = self.peers.iter().filter(|p| p.cluster == name).collect();
        if of_cluster.is_empty() {
            let known: BTreeSet<&str> = self.peers.iter().map(|p| p.cluster.as_str()).collect();
            bail!(
                "the address book knows no cluster {name:?} (it knows {})",
                known.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        let metas: Vec<u64> = of_cluster.iter().filter(|p| p.meta).map(|p| p.id).collect();
        match metas.as_slice() {
            [id] => Ok(*id),
            [] => bail!("the address book lists no meta server of cluster {name:?}: mark its [[peers]] entry with `meta = true`"),
            _ => bail!("the address book marks several meta servers of cluster {name:?}: {metas:?}"),
        }
    }

    /// Nodes of cluster `name` in the address book that are not its meta server.
    pub fn replicas_of(&self, name: &str) -> Vec<u64> {
        let meta = self.meta_of(name).ok();
        self.peers
            .iter()
            .filter(|p| p.cluster == name && Some(p.id) != meta)
            .map(|p| p.id)
            .collect()
    }

    pub fn settings(&self) -> Settings {
        Settings {
            idle_timeout: Duration::from_millis(self.transport.idle_timeout_ms),
            keep_alive: Duration::from_millis(self.transport.keep_alive_ms),
            handshake_timeout: Duration::from_millis(self.transport.handshake_timeout_ms),
            limits: self.limits(),
            ..Settings::default()
        }
    }

    pub fn tls(&self) -> Result<TlsMaterial> {
        TlsMaterial::load(
            &self.tls.ca,
            &self.tls.remote_cas,
            &self.tls.cert,
            &self.tls.key,
        )
    }

    /// A node's id, listen address and data directory, which `meta` and `replica` need.
    pub fn node_parts(&self) -> Result<(u64, SocketAddr, PathBuf)> {
        let id = self.id.context("`id` is required for a node")?;
        let entry = self
            .book()
            .get(&id)
            .cloned()
            .with_context(|| format!("this node ({id}) has no [[peers]] entry"))?;
        if entry.cluster != self.cluster {
            bail!(
                "this node ({id}) is listed in cluster {}, not {}",
                entry.cluster,
                self.cluster
            );
        }
        let listen = self.listen.unwrap_or(entry.addr);
        let data = self
            .data_dir
            .clone()
            .context("`data_dir` is required for a node")?;
        Ok((id, listen, data))
    }

    fn table_specs(&self) -> Vec<TableSpec> {
        self.topology
            .tables
            .iter()
            .map(|t| TableSpec {
                id: t.id,
                partitions: t.partitions,
                max_replica_count: t.max_replica_count,
                source: None,
            })
            .collect()
    }

    pub fn meta_cfg(&self) -> Result<MetaCfg> {
        let (id, _, _) = self.node_parts()?;
        if id != self.topology.meta {
            bail!(
                "this node is {id} but the topology's meta server is {}",
                self.topology.meta
            );
        }
        Ok(MetaCfg {
            dir: self.directory()?,
            tables: self.table_specs(),
            bootstrap_members: self.topology.bootstrap_members,
            dups: Vec::new(),
            accept_duplication: self.accept_duplication,
            grace: Some(Duration::from_millis(self.lease.grace_ms)),
            bugs: Bugs::none(),
        })
    }

    /// Who is who, for the core's authorization: this cluster's meta server and replicas,
    /// and every node of another cluster with that cluster's meta server.
    pub fn directory(&self) -> Result<petrel_core::auth::Directory> {
        let mut remote = BTreeMap::new();
        for p in self.peers.iter().filter(|p| p.cluster != self.cluster) {
            if let Ok(m) = self.meta_of(&p.cluster) {
                remote.insert(crate::transport::id_of(p.id), crate::transport::id_of(m));
            }
        }
        Ok(petrel_core::auth::Directory {
            meta: crate::transport::id_of(self.topology.meta),
            replicas: ids(&self.topology.replicas),
            remote,
        })
    }

    pub fn replica_cfg(&self) -> Result<ReplicaCfg> {
        let (id, _, _) = self.node_parts()?;
        if !self.topology.replicas.contains(&id) {
            bail!(
                "this node ({id}) is not among the topology's replicas {:?}",
                self.topology.replicas
            );
        }
        // The same deterministic assignment the meta server bootstraps with.
        let bootstrap = if self.topology.bootstrap_members > 0 {
            petrel_core::meta::bootstrap_configs(
                &ids(&self.topology.replicas),
                &self.table_specs(),
                self.topology.bootstrap_members,
            )
        } else {
            Vec::new()
        };
        Ok(ReplicaCfg {
            dir: self.directory()?,
            bootstrap,
            bootstrap_dups: Vec::new(),
            accept_duplication: self.accept_duplication,
            gc: self.gc,
            // Many mutations per round trip: one batch is in flight at a time.
            ship_batch: 64,
            lease: Some(self.lease.replica()),
            bugs: Bugs::none(),
        })
    }

    /// The table a client uses: `[client] table`, else the first table of the topology.
    pub fn client_table(&self) -> Result<u8> {
        match self
            .client
            .table
            .or_else(|| self.topology.tables.first().map(|t| t.id))
        {
            Some(t) => Ok(t),
            None => bail!("no table: set [client] table or define a [[topology.tables]]"),
        }
    }

    /// A core client for `ops` on the `[client]` table and partition.
    pub fn client_cfg(&self, ops: Vec<ClientOp>) -> Result<ClientCfg> {
        Ok(self.client_cfg_for(
            Gpid {
                table: self.client_table()?,
                partition: self.client.partition,
            },
            ops,
        ))
    }

    /// A core client for `ops` on partition `gpid`, with the `[client]` retry settings.
    pub fn client_cfg_for(&self, gpid: Gpid, ops: Vec<ClientOp>) -> ClientCfg {
        ClientCfg {
            meta: crate::transport::id_of(self.topology.meta),
            gpid,
            ops,
            max_attempts: self.client.max_attempts.unwrap_or(5).max(1),
            request_timeout: Some(Duration::from_millis(
                self.client.request_timeout_ms.unwrap_or(800).max(1),
            )),
            first_req: 1,
            route: None,
            bugs: Bugs::none(),
        }
    }

    pub fn client_deadline(&self) -> Duration {
        Duration::from_millis(self.client.deadline_ms.unwrap_or(15_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
cluster = "alpha"
id = 1
data_dir = "data/n1"
[tls]
ca = "certs/ca.pem"
cert = "certs/node-1.pem"
key = "certs/node-1.key"
[topology]
meta = 0
replicas = [1, 2, 3]
bootstrap_members = 3
[[topology.tables]]
id = 1
partitions = 2
max_replica_count = 3
[[peers]]
id = 0
cluster = "alpha"
addr = "127.0.0.1:7000"
[[peers]]
id = 1
cluster = "alpha"
addr = "127.0.0.1:7001"
[[peers]]
id = 2
cluster = "alpha"
addr = "127.0.0.1:7002"
[[peers]]
id = 3
cluster = "alpha"
addr = "127.0.0.1:7003"
[[peers]]
id = 10
cluster = "beta"
addr = "127.0.0.1:7010"
meta = true
[[peers]]
id = 11
cluster = "beta"
addr = "127.0.0.1:7011"
"#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("node.toml");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn example_parses_and_builds_cfgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Config::load(&write(dir.path(), EXAMPLE)).expect("load");
        assert_eq!(c.tls.ca, dir.path().join("certs/ca.pem"));
        let (id, listen, data) = c.node_parts().expect("node");
        assert_eq!(
            (id, listen.port(), data),
            (1, 7001, dir.path().join("data/n1"))
        );
        let r = c.replica_cfg().expect("replica cfg");
        assert_eq!(r.bootstrap.len(), 2);
        assert!(c.meta_cfg().is_err(), "node 1 is not the meta server");
        let cl = c.client_cfg(vec![ClientOp::get("k")]).expect("client cfg");
        assert_eq!(
            cl.gpid,
            Gpid {
                table: 1,
                partition: 0
            }
        );
        assert_eq!(c.book()[&10].cluster, "beta");
        // Round trip through TOML.
        let again: Config = toml::from_str(&c.to_toml().expect("toml")).expect("parse");
        assert_eq!(again.peers.len(), 6);
        assert_eq!(
            (
                c.meta_of("alpha").expect("own"),
                c.meta_of("beta").expect("remote")
            ),
            (0, 10)
        );
        assert_eq!(c.replicas_of("beta"), vec![11]);
        assert!(format!("{:#}", c.meta_of("gamma").expect_err("unknown"))
            .contains("knows no cluster \"gamma\""));
        let unmarked =
            Config::load(&write(dir.path(), &EXAMPLE.replace("meta = true\n", ""))).expect("load");
        assert!(
            format!("{:#}", unmarked.meta_of("beta").expect_err("unmarked"))
                .contains("meta = true")
        );
    }

    #[test]
    fn operator_errors_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (
                EXAMPLE.replace("cluster = \"alpha\"\nid = 1", "cluster = \"Alpha\"\nid = 1"),
                "cluster name",
            ),
            (
                EXAMPLE.replace("replicas = [1, 2, 3]", "replicas = [1, 2, 9]"),
                "replica 9",
            ),
            (EXAMPLE.replace("id = 10\n", "id = 3\n"), "twice"),
            (EXAMPLE.replace("meta = 0", "meta = 10"), "cluster beta"),
            (
                EXAMPLE.replace("partitions = 2", "partitions = 0"),
                "at least 1",
            ),
            (
                EXAMPLE.replace("[tls]", "bogus = 1\n[tls]"),
                "unknown field",
            ),
            (
                EXAMPLE.replace("addr = \"127.0.0.1:7000\"", "addr = \"nowhere\""),
                "invalid",
            ),
            (
                format!("{EXAMPLE}\n[limits]\nmax_value_bytes = 16777216\n"),
                "[limits]",
            ),
        ];
        for (text, expect) in cases {
            let err = Config::load(&write(dir.path(), &text)).expect_err(expect);
            let msg = format!("{err:#}");
            assert!(msg.contains(expect), "{expect}: {msg}");
        }
        assert!(Config::load(&dir.path().join("missing.toml")).is_err());
    }
}
