//! `petrel admin`: the operator's one-shot requests to a cluster's meta server — create
//! and list tables, add, list and change duplications, show the cluster's state.
//!
//! Each command is one message to the meta server over a client connection (the client
//! certificate of the cluster) and one reply, printed as a table or as JSON. Every decision
//! (is the table new, is the status change allowed) is the meta server's, in the core:
//! this module only builds the request and formats the answer.
use crate::client::{self, AskError};
use crate::config::Config;
use crate::metrics::dup_status_name;
use crate::transport::{id_of, raw_of};
use anyhow::{bail, Result};
use petrel_core::dup::{DupIdent, DupRecord, DupStatus, FailMode};
use petrel_core::{Msg, PartitionConfig};
use serde_json::{json, Value as Json};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One operator request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    TableCreate {
        table: u8,
        partitions: u8,
        replicas: u8,
    },
    TableList,
    DupAdd {
        table: u8,
        remote_cluster: String,
        full: bool,
        remote_table: Option<u8>,
        remote_replicas: Option<u8>,
    },
    DupList,
    DupModify {
        dupid: u8,
        status: DupStatus,
    },
    DupSetFailMode {
        dupid: u8,
        mode: FailMode,
    },
    ClusterStatus,
}

/// What the meta server answered, ready to print.
#[derive(Debug)]
pub struct Outcome {
    /// The meta server accepted the request (false: it answered with an error).
    pub ok: bool,
    /// Human-readable; on an error, the meta server's reason.
    pub text: String,
    pub json: Json,
}

/// The message for `req` (resolving a remote cluster's meta server in the address book).
pub fn message(cfg: &Config, req: &Request) -> Result<Msg> {
    Ok(match req {
        Request::TableCreate {
            table,
            partitions,
            replicas,
        } => Msg::CreateTable {
            table: *table,
            partitions: *partitions,
            replica_count: *replicas,
        },
        Request::TableList | Request::DupList | Request::ClusterStatus => Msg::QueryCluster,
        Request::DupAdd {
            table,
            remote_cluster,
            full,
            remote_table,
            remote_replicas,
        } => {
            if *remote_cluster == cfg.cluster {
                bail!("--remote-cluster {remote_cluster} is this cluster: a duplication goes to another cluster");
            }
            let remote_meta = cfg.meta_of(remote_cluster)?;
            // Default: as many replicas as the remote cluster has, up to 3.
            let count = remote_replicas
                .unwrap_or_else(|| cfg.replicas_of(remote_cluster).len().clamp(1, 3) as u8);
            Msg::AddDup {
                table: *table,
                remote_meta: id_of(remote_meta),
                remote_table: remote_table.unwrap_or(*table),
                remote_replica_count: count,
                full: *full,
            }
        }
        Request::DupModify { dupid, status } => Msg::ModifyDup {
            dupid: *dupid,
            status: *status,
        },
        Request::DupSetFailMode { dupid, mode } => Msg::SetFailMode {
            dupid: *dupid,
            mode: *mode,
        },
    })
}

/// Whether `reply` answers `sent`.
pub fn answers(sent: &Msg, reply: &Msg) -> bool {
    match (sent, reply) {
        (Msg::CreateTable { table, .. }, Msg::CreateTableReply { table: t, .. }) => t == table,
        (Msg::AddDup { table, .. }, Msg::AddDupReply { table: t, .. }) => t == table,
        (Msg::ModifyDup { dupid, .. }, Msg::ModifyDupReply { dupid: d, .. }) => d == dupid,
        (Msg::SetFailMode { dupid, .. }, Msg::SetFailModeReply { dupid: d, .. }) => d == dupid,
        (Msg::QueryCluster, Msg::ClusterStatus { .. }) => true,
        _ => false,
    }
}

/// Send `req` and wait for the answer.
pub async fn run(cfg: &Config, req: &Request, deadline: Duration) -> Result<Outcome, AskError> {
    let msg = message(cfg, req)?;
    let sent = msg.clone();
    let reply = client::ask_meta(cfg, msg, deadline, move |m| answers(&sent, m)).await?;
    Ok(render(cfg, req, &reply))
}

/// The cluster a node id belongs to, by the address book.
fn cluster_of(cfg: &Config, id: Id) -> String {
    let raw = raw_of(id);
    cfg.peers
        .iter()
        .find(|p| p.id == raw)
        .map_or_else(|| format!("? (node {raw})"), |p| p.cluster.clone())
}

fn err(text: String) -> Outcome {
    Outcome {
        ok: false,
        json: json!({ "error": text }),
        text: format!("error: the meta server refused: {text}"),
    }
}

/// Turn the meta server's reply into an outcome.
pub fn render(cfg: &Config, req: &Request, reply: &Msg) -> Outcome {
    match (req, reply) {
        (Request::TableCreate { table, partitions, replicas }, Msg::CreateTableReply { result, .. }) => match result {
            Ok(()) => Outcome {
                ok: true,
                text: format!("table {table} created: {partitions} partition(s), {replicas} replica(s) each; primaries are assigned as replicas are alive"),
                json: json!({ "table": table, "partitions": partitions, "replica_count": replicas }),
            },
            Err(e) => err(e.clone()),
        },
        (Request::DupAdd { full, remote_cluster, .. }, Msg::AddDupReply { table, result }) => match (result, reply_target(cfg, req)) {
            (Ok(dupid), (remote_meta, remote_table, count)) => {
                let how = if *full {
                    "PREPARE (full: checkpoint, follower table created, checkpoint copied, then LOG)"
                } else {
                    "LOG (log only: the follower table must exist)"
                };
                Outcome {
                    ok: true,
                    text: format!(
                        "duplication {dupid}: table {table} -> cluster {remote_cluster} (meta {remote_meta}) table {remote_table}, {count} replica(s); starts in {how}"
                    ),
                    json: json!({
                        "dupid": dupid, "table": table, "remote_cluster": remote_cluster, "remote_meta": remote_meta,
                        "remote_table": remote_table, "remote_replica_count": count, "full": full,
                    }),
                }
            }
            (Err(e), _) => err(e.clone()),
        },
        (Request::DupModify { .. }, Msg::ModifyDupReply { dupid, result }) => match result {
            Ok(status) => Outcome {
                ok: true,
                text: format!("duplication {dupid} is now {}", dup_status_name(*status)),
                json: json!({ "dupid": dupid, "status": dup_status_name(*status) }),
            },
            Err(e) => err(e.clone()),
        },
        (Request::DupSetFailMode { .. }, Msg::SetFailModeReply { dupid, result }) => match result {
            Ok(mode) => Outcome {
                ok: true,
                text: format!("duplication {dupid}: fail mode {mode}"),
                json: json!({ "dupid": dupid, "fail_mode": mode.name() }),
            },
            Err(e) => err(e.clone()),
        },
        (Request::TableList, Msg::ClusterStatus { configs, alive, followers, .. }) => table_list(cfg, configs, alive, followers),
        (Request::DupList, Msg::ClusterStatus { dups, .. }) => dup_list(cfg, dups),
        (Request::ClusterStatus, Msg::ClusterStatus { configs, alive, dups, followers }) => {
            cluster_status(cfg, configs, alive, dups, followers)
        }
        (_, other) => Outcome { ok: false, text: format!("error: unexpected answer {}", other.kind()), json: json!({ "error": other.kind() }) },
    }
}

fn reply_target(cfg: &Config, req: &Request) -> (u64, u8, u8) {
    match message(cfg, req) {
        Ok(Msg::AddDup {
            remote_meta,
            remote_table,
            remote_replica_count,
            ..
        }) => (raw_of(remote_meta), remote_table, remote_replica_count),
        _ => (0, 0, 0),
    }
}

/// Columns padded to their widest cell.
fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

fn follower_json(cfg: &Config, f: &DupIdent) -> Json {
    json!({
        "source_cluster": cluster_of(cfg, f.source_meta), "source_meta": raw_of(f.source_meta),
        "source_table": f.table, "dupid": f.dupid,
    })
}

fn table_list(
    cfg: &Config,
    configs: &[PartitionConfig],
    alive: &[(Id, u32)],
    followers: &[(u8, DupIdent)],
) -> Outcome {
    let alive: BTreeMap<Id, u32> = alive.iter().copied().collect();
    let mut tables: BTreeMap<u8, Vec<&PartitionConfig>> = BTreeMap::new();
    for c in configs {
        tables.entry(c.gpid.table).or_default().push(c);
    }
    let followers: BTreeMap<u8, DupIdent> = followers.iter().copied().collect();
    let mut rows = Vec::new();
    let mut js = Vec::new();
    for (t, parts) in &tables {
        let serving = parts
            .iter()
            .filter(|c| c.primary.is_some_and(|p| alive.contains_key(&p)))
            .count();
        let max = parts.iter().map(|c| c.max_replica_count).max().unwrap_or(0);
        let follows = followers.get(t);
        rows.push(vec![
            t.to_string(),
            parts.len().to_string(),
            max.to_string(),
            format!("{serving}/{}", parts.len()),
            follows.map_or("-".to_string(), |f| {
                format!(
                    "cluster {} table {} (dup {})",
                    cluster_of(cfg, f.source_meta),
                    f.table,
                    f.dupid
                )
            }),
        ]);
        js.push(json!({
            "table": t, "partitions": parts.len(), "max_replica_count": max, "partitions_with_primary": serving,
            "follower_of": follows.map(|f| follower_json(cfg, f)),
        }));
    }
    let text = if rows.is_empty() {
        "no tables".to_string()
    } else {
        grid(
            &["TABLE", "PARTITIONS", "REPLICAS", "WITH PRIMARY", "FOLLOWS"],
            &rows,
        )
    };
    Outcome {
        ok: true,
        text,
        json: json!({ "tables": js }),
    }
}

fn per_partition<T: std::fmt::Display>(m: &BTreeMap<u8, T>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(p, v)| format!("p{p}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn dup_json(cfg: &Config, d: &DupRecord) -> Json {
    let map = |m: &BTreeMap<u8, u32>| {
        m.iter()
            .map(|(p, v)| (p.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "dupid": d.dupid, "table": d.table, "status": dup_status_name(d.status), "version": d.version,
        "remote_cluster": cluster_of(cfg, d.remote_meta), "remote_meta": raw_of(d.remote_meta),
        "remote_table": d.remote_table, "remote_replica_count": d.remote_replica_count,
        "fail_mode": d.fail_mode.name(), "skipped": d.skipped,
        "refusing": d.refusing.iter().map(|(p, why)| (p.to_string(), json!(why))).collect::<serde_json::Map<_, _>>(),
        "checkpoints": map(&d.checkpoints), "applied": d.applied.iter().collect::<Vec<_>>(),
        "confirmed": map(&d.confirmed), "create_attempts": d.create_attempts, "stall": d.stall,
    })
}

fn dup_rows(cfg: &Config, dups: &[DupRecord]) -> Vec<Vec<String>> {
    dups.iter()
        .map(|d| {
            let progress = match d.status {
                DupStatus::Prepare => {
                    let mut s = format!("checkpoints {}", per_partition(&d.checkpoints));
                    if d.create_attempts > 0 {
                        s.push_str(&format!("; create attempts {}", d.create_attempts));
                    }
                    s
                }
                DupStatus::App => {
                    let applied: BTreeSet<String> =
                        d.applied.iter().map(|p| format!("p{p}")).collect();
                    format!(
                        "applied {}",
                        if applied.is_empty() {
                            "-".into()
                        } else {
                            applied.into_iter().collect::<Vec<_>>().join(" ")
                        }
                    )
                }
                _ => per_partition(&d.confirmed),
            };
            vec![
                d.dupid.to_string(),
                d.table.to_string(),
                format!("{}/{}", cluster_of(cfg, d.remote_meta), d.remote_table),
                dup_status_name(d.status).to_string(),
                progress,
                d.fail_mode.name().to_string(),
                d.skipped.to_string(),
                d.stall.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

const DUP_HEADERS: [&str; 8] = [
    "DUP",
    "TABLE",
    "TO CLUSTER/TABLE",
    "STATUS",
    "CONFIRMED (PROGRESS)",
    "FAIL MODE",
    "SKIPPED",
    "STALL",
];

fn dup_list(cfg: &Config, dups: &[DupRecord]) -> Outcome {
    let text = if dups.is_empty() {
        "no duplications".to_string()
    } else {
        grid(&DUP_HEADERS, &dup_rows(cfg, dups))
    };
    Outcome {
        ok: true,
        text,
        json: json!({ "duplications": dups.iter().map(|d| dup_json(cfg, d)).collect::<Vec<_>>() }),
    }
}

fn cluster_status(
    cfg: &Config,
    configs: &[PartitionConfig],
    alive: &[(Id, u32)],
    dups: &[DupRecord],
    followers: &[(u8, DupIdent)],
) -> Outcome {
    let alive_map: BTreeMap<Id, u32> = alive.iter().copied().collect();
    let node = |id: Id| match alive_map.get(&id) {
        Some(i) => format!("{} (life {i})", raw_of(id)),
        None => format!("{} (down)", raw_of(id)),
    };
    let node_json = |id: Id| json!({ "id": raw_of(id), "alive": alive_map.contains_key(&id), "incarnation": alive_map.get(&id) });
    let rows: Vec<Vec<String>> = configs
        .iter()
        .map(|c| {
            vec![
                c.gpid.table.to_string(),
                c.gpid.partition.to_string(),
                c.ballot.to_string(),
                c.primary.map_or("none".to_string(), node),
                if c.secondaries.is_empty() {
                    "-".into()
                } else {
                    c.secondaries
                        .iter()
                        .map(|s| node(*s))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                format!("{}/{}", c.member_count(), c.max_replica_count),
            ]
        })
        .collect();
    let mut text = format!(
        "cluster {} (meta server {})\n\npartitions\n",
        cfg.cluster, cfg.topology.meta
    );
    text.push_str(&if rows.is_empty() {
        "  none".to_string()
    } else {
        grid(
            &[
                "TABLE",
                "PART",
                "BALLOT",
                "PRIMARY",
                "SECONDARIES",
                "MEMBERS",
            ],
            &rows,
        )
    });
    let mut replicas: Vec<u64> = cfg.topology.replicas.clone();
    replicas.sort();
    let alive_rows: Vec<Vec<String>> = replicas
        .iter()
        .map(|r| {
            let id = id_of(*r);
            vec![
                r.to_string(),
                alive_map
                    .get(&id)
                    .map_or("down".to_string(), |i| format!("alive (life {i})")),
            ]
        })
        .collect();
    text.push_str("\n\nreplica servers\n");
    text.push_str(&grid(&["ID", "STATE"], &alive_rows));
    text.push_str("\n\nduplications\n");
    text.push_str(&if dups.is_empty() {
        "  none".to_string()
    } else {
        grid(&DUP_HEADERS, &dup_rows(cfg, dups))
    });
    if !followers.is_empty() {
        text.push_str("\n\nfollower tables\n");
        let rows: Vec<Vec<String>> = followers
            .iter()
            .map(|(t, f)| {
                vec![
                    t.to_string(),
                    format!(
                        "cluster {} table {} (dup {})",
                        cluster_of(cfg, f.source_meta),
                        f.table,
                        f.dupid
                    ),
                ]
            })
            .collect();
        text.push_str(&grid(&["TABLE", "FOLLOWS"], &rows));
    }
    let json = json!({
        "cluster": cfg.cluster,
        "meta": cfg.topology.meta,
        "partitions": configs.iter().map(|c| json!({
            "table": c.gpid.table, "partition": c.gpid.partition, "ballot": c.ballot,
            "primary": c.primary.map(node_json),
            "secondaries": c.secondaries.iter().map(|s| node_json(*s)).collect::<Vec<_>>(),
            "max_replica_count": c.max_replica_count,
        })).collect::<Vec<_>>(),
        "alive": alive.iter().map(|(id, i)| json!({ "id": raw_of(*id), "incarnation": i })).collect::<Vec<_>>(),
        "duplications": dups.iter().map(|d| dup_json(cfg, d)).collect::<Vec<_>>(),
        "followers": followers.iter().map(|(t, f)| { let mut j = follower_json(cfg, f); j["table"] = json!(t); j }).collect::<Vec<_>>(),
    });
    Outcome {
        ok: true,
        text,
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::up;
    use petrel_core::Gpid;

    fn configs() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l =
            up::write_clusters(dir.path(), &up::pair_plans(3, 1).expect("plans")).expect("layouts");
        let c = Config::load(&l[0].client_config).expect("client config");
        (dir, c)
    }

    fn record(status: DupStatus, stall: Option<&str>) -> DupRecord {
        DupRecord {
            dupid: 1,
            table: 1,
            status,
            version: 2,
            remote_meta: id_of(100),
            remote_table: 1,
            remote_replica_count: 3,
            fail_mode: FailMode::Slow,
            checkpoints: BTreeMap::from([(0, 4)]),
            applied: BTreeSet::from([0]),
            confirmed: BTreeMap::from([(0, 9)]),
            skipped: 0,
            refusing: Default::default(),
            create_attempts: 0,
            stall: stall.map(str::to_string),
        }
    }

    #[test]
    fn dup_add_resolves_the_remote_cluster() {
        let (_d, cfg) = configs();
        let req = Request::DupAdd {
            table: 1,
            remote_cluster: "b".into(),
            full: true,
            remote_table: None,
            remote_replicas: None,
        };
        let msg = message(&cfg, &req).expect("message");
        assert_eq!(
            msg,
            Msg::AddDup {
                table: 1,
                remote_meta: id_of(100),
                remote_table: 1,
                remote_replica_count: 3,
                full: true
            }
        );
        let own = Request::DupAdd {
            table: 1,
            remote_cluster: "a".into(),
            full: true,
            remote_table: None,
            remote_replicas: None,
        };
        assert!(message(&cfg, &own)
            .expect_err("own cluster")
            .to_string()
            .contains("is this cluster"));
        let unknown = Request::DupAdd {
            table: 1,
            remote_cluster: "zz".into(),
            full: false,
            remote_table: Some(2),
            remote_replicas: Some(1),
        };
        assert!(message(&cfg, &unknown)
            .expect_err("unknown")
            .to_string()
            .contains("knows no cluster"));
        let reply = Msg::AddDupReply {
            table: 1,
            result: Ok(1),
        };
        assert!(
            answers(&msg, &reply)
                && !answers(
                    &msg,
                    &Msg::AddDupReply {
                        table: 2,
                        result: Ok(1)
                    }
                )
        );
        let out = render(&cfg, &req, &reply);
        assert!(
            out.ok
                && out
                    .text
                    .contains("duplication 1: table 1 -> cluster b (meta 100) table 1"),
            "{}",
            out.text
        );
        let out = render(
            &cfg,
            &req,
            &Msg::AddDupReply {
                table: 1,
                result: Err("no table 1".into()),
            },
        );
        assert!(
            !out.ok
                && out.text.contains("refused: no table 1")
                && out.json["error"] == "no table 1"
        );
    }

    #[test]
    fn set_fail_mode_is_one_request_and_its_answer() {
        let (_d, cfg) = configs();
        let req = Request::DupSetFailMode {
            dupid: 3,
            mode: FailMode::Skip,
        };
        let msg = message(&cfg, &req).expect("message");
        assert_eq!(
            msg,
            Msg::SetFailMode {
                dupid: 3,
                mode: FailMode::Skip
            }
        );
        let reply = Msg::SetFailModeReply {
            dupid: 3,
            result: Ok(FailMode::Skip),
        };
        assert!(
            answers(&msg, &reply)
                && !answers(
                    &msg,
                    &Msg::SetFailModeReply {
                        dupid: 4,
                        result: Ok(FailMode::Skip)
                    }
                )
        );
        let out = render(&cfg, &req, &reply);
        assert!(
            out.ok
                && out.text.contains("duplication 3: fail mode skip")
                && out.json["fail_mode"] == "skip",
            "{}",
            out.text
        );
        let out = render(
            &cfg,
            &req,
            &Msg::SetFailModeReply {
                dupid: 3,
                result: Err("no duplication 3".into()),
            },
        );
        assert!(
            !out.ok && out.text.contains("refused: no duplication 3"),
            "{}",
            out.text
        );
    }

    #[test]
    fn status_and_lists_are_readable() {
        let (_d, cfg) = configs();
        let gpid = Gpid {
            table: 1,
            partition: 0,
        };
        let config = PartitionConfig {
            gpid,
            ballot: 3,
            primary: Some(id_of(1)),
            secondaries: vec![id_of(2), id_of(3)],
            max_replica_count: 3,
            source: None,
        };
        let status = Msg::ClusterStatus {
            configs: vec![config],
            alive: vec![(id_of(1), 2), (id_of(2), 1)],
            dups: vec![
                record(DupStatus::Log, None),
                DupRecord {
                    dupid: 2,
                    ..record(DupStatus::Prepare, Some("follower cluster refused: x"))
                },
            ],
            followers: vec![],
        };
        let out = render(&cfg, &Request::ClusterStatus, &status);
        for needle in [
            "1 (life 2)",
            "2 (life 1), 3 (down)",
            "LOG",
            "p0=9",
            "follower cluster refused: x",
            "b/1",
            "3/3",
        ] {
            assert!(out.text.contains(needle), "{needle}:\n{}", out.text);
        }
        assert_eq!(out.json["partitions"][0]["secondaries"][1]["alive"], false);
        assert_eq!(out.json["duplications"][0]["confirmed"]["0"], 9);
        let out = render(&cfg, &Request::DupList, &status);
        assert!(
            out.text.starts_with("DUP") && out.text.contains("checkpoints p0=4"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("FAIL MODE") && out.text.contains("slow"),
            "{}",
            out.text
        );
        // A refusal under skip: mode, count and the refusing partition's own reason.
        let mut skipping = record(
            DupStatus::Log,
            Some("follower refused mutations of partition 0: read-only"),
        );
        skipping.fail_mode = FailMode::Skip;
        skipping.skipped = 12;
        skipping.refusing = BTreeMap::from([(0, "read-only".to_string())]);
        let out = render(
            &cfg,
            &Request::DupList,
            &Msg::ClusterStatus {
                configs: vec![],
                alive: vec![],
                dups: vec![skipping],
                followers: vec![],
            },
        );
        for needle in ["skip", "12", "partition 0: read-only"] {
            assert!(out.text.contains(needle), "{needle}:\n{}", out.text);
        }
        let d = &out.json["duplications"][0];
        assert_eq!(
            (
                d["fail_mode"].as_str(),
                d["skipped"].as_u64(),
                d["refusing"]["0"].as_str()
            ),
            (Some("skip"), Some(12), Some("read-only"))
        );
        let out = render(&cfg, &Request::TableList, &status);
        assert!(out.text.contains("1/1"), "{}", out.text);
        assert_eq!(out.json["tables"][0]["partitions"], 1);
    }
}
