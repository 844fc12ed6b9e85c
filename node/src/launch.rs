//! Running a server role from a configuration: a long-lived meta or replica server. (The
//! client side is `client.rs`; the CLI in `main.rs` only parses arguments and prints.)
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::runtime::Host;
use crate::storage::{Store, StoreOptions};
use crate::transport::{id_of, Transport};
use anyhow::{bail, Context, Result};
use petrel_core::{Node, NodeStorage};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Meta,
    Replica,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Meta => "meta",
            Role::Replica => "replica",
        })
    }
}

/// Held for the life of the process: a second `petrel` on the same data directory would
/// interleave two histories in one log. The OS releases it when the process dies, even by
/// `kill -9`.
pub struct DirLock {
    _file: File,
}

pub fn lock_data_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "data directory {} is in use by another petrel process",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The file `petrel up` puts in each replica's data directory of a new deployment: "this
/// disk is the installation's, take the bootstrap roles at first boot".
pub const INSTALL_MARK: &str = "INSTALL";

/// Run a meta or replica server until `shutdown` completes; with `metrics`, serve
/// Prometheus metrics on that address.
pub async fn run_node(
    role: Role,
    cfg: &Config,
    metrics: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (id, listen, data) = cfg.node_parts()?;
    let _lock = lock_data_dir(&data)?;
    let tls = cfg.tls()?;
    let opts = StoreOptions {
        compact_min_bytes: cfg.storage.compact_min_bytes,
    };
    let (store, stored, recovery) = Store::<NodeStorage>::open(&data.join("storage"), opts)
        .with_context(|| format!("cannot open the storage in {}", data.display()))?;
    tracing::info!(
        records = recovery.records,
        truncated_bytes = recovery.truncated_bytes,
        skipped_corrupt = recovery.skipped_corrupt,
        "storage opened"
    );
    // Only the deployment's installation takes the bootstrap roles: `petrel up` marks each
    // replica's data directory with INSTALL_MARK. Storage that is empty without the mark
    // is a new or wiped disk: the replica asks the meta server for a new life and joins as
    // a learner, never passing for the life that held this id's data (SPEC.md).
    let mark = data.join(INSTALL_MARK);
    let installing = stored.is_none() && mark.exists();
    let actor = match role {
        Role::Meta => Node::Meta(cfg.meta_cfg()?),
        Role::Replica => {
            let mut rc = cfg.replica_cfg()?;
            if !installing {
                rc.bootstrap.clear();
                rc.bootstrap_dups.clear();
            }
            Node::Replica(rc)
        }
    };
    if stored.is_none() && role == Role::Replica && !installing {
        tracing::warn!(data = %data.display(), "empty storage without the installation mark: starting as a new node (the meta server assigns a new life; it learns before it serves)");
    }
    let events = if cfg.eventlog.enabled {
        Some(
            EventLog::open(&data, cfg.eventlog.max_bytes)
                .with_context(|| format!("cannot open the event log in {}", data.display()))?,
        )
    } else {
        None
    };
    let (book, settings, cluster) = (cfg.book(), cfg.settings(), cfg.cluster.clone());
    let mut host = Host::start(
        actor,
        id_of(id),
        Some((store, stored)),
        events,
        |incarnation, tx| {
            Transport::bind_node(listen, id, &cluster, incarnation, book, &tls, settings, tx)
        },
    )
    .await?;
    if installing {
        // The installation's state is durable (`Host::start` saved it): from now on an
        // empty disk here is a replaced one.
        std::fs::remove_file(&mark).with_context(|| format!("cannot remove {}", mark.display()))?;
    }
    if role == Role::Replica {
        // Keep the link to the meta server up (beacons renew the lease over it; a broken
        // link makes the replica register again).
        host.transport.watch(cfg.topology.meta);
    }
    // Tell every node of the cluster this life's Hello at once: one that still holds a
    // connection of our previous life replaces it now (see `Transport::announce`).
    host.transport.announce();
    if let Some(at) = metrics {
        let m = Metrics::new(
            if role == Role::Meta {
                "meta"
            } else {
                "replica"
            },
            id,
            &cfg.cluster,
        );
        m.set_transport_stats(host.transport.stats());
        let bound = m.serve(at).await?;
        host.set_metrics(m);
        tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
    }
    let addr = host
        .transport
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%role, id, cluster = %cfg.cluster, %addr, incarnation = host.state().incarnation(), "ready");
    let result = host.run(shutdown, |_| false).await;
    host.stop().await;
    tracing::info!(%role, id, saves = host.saves, events = host.handled, "stopped");
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_has_one_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_data_dir(dir.path()).expect("first");
        let err = lock_data_dir(dir.path())
            .err()
            .expect("second owner refused");
        assert!(
            err.to_string().contains("in use by another petrel process"),
            "{err}"
        );
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }
}
