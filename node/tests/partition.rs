//! A real partition between the meta server and the primary, while both still reach every
//! other process: the model's `partition-meta-primary` scenario, on real processes.
//!
//! The cut is made with iptables on the loopback interface (UDP between the two nodes'
//! ports, both ways), so it needs root and iptables: `.ci/run` installs it. The promise
//! under test: a primary that cannot renew its lease stops serving before the meta server
//! declares it dead and promotes another, so a client that still routes to it never reads
//! a stale value; when the cut heals, the deposed node comes back as a new life.
mod common;
use common::*;
use petrel_node::launch::Role;
use petrel_node::runtime::TEST_BUG_ENV;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// iptables rules dropping UDP between two loopback ports, removed when dropped (also when
/// the test fails).
struct Cut {
    rules: Vec<Vec<String>>,
}

fn iptables(op: &str, rule: &[String]) -> Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .output()
        .map_err(|e| {
            format!("cannot run iptables ({e}): this test needs iptables and root (.ci/run installs it)")
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {op} {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Cut {
    fn between(a: SocketAddr, b: SocketAddr) -> Cut {
        let rule = |from: SocketAddr, to: SocketAddr| -> Vec<String> {
            [
                "INPUT",
                "-i",
                "lo",
                "-p",
                "udp",
                "--sport",
                &from.port().to_string(),
                "--dport",
                &to.port().to_string(),
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let mut cut = Cut { rules: Vec::new() };
        for r in [rule(a, b), rule(b, a)] {
            iptables("-I", &r).unwrap_or_else(|e| panic!("{e}"));
            cut.rules.push(r);
        }
        cut
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for r in self.rules.drain(..) {
            if let Err(e) = iptables("-D", &r) {
                eprintln!("could not remove a test rule: {e}");
            }
        }
    }
}

fn gauge(c: &Cluster, id: u64, name: &str) -> Option<f64> {
    metric(&c.metrics(id), name)
}

/// What a partition run saw.
struct Seen {
    /// What a client still routing to the deposed primary read after the new write.
    late_read: Option<String>,
    /// The cluster's run, validated after every node stopped.
    report: petrel_checks::validate::Report,
}

/// Write `k = old`, cut the meta server from the primary, wait for a new primary, write
/// `k = new` through it, then read `k` with a client whose routing still names the old
/// primary. `bug`: a core mutant switched on in every node (test-only). `meta_restart`:
/// right after the cut, the meta server is killed (`kill -9`) and restarted from its
/// storage while the cut stands: it has forgotten when it last heard the primary.
fn partition_run(bug: Option<&str>, meta_restart: bool) -> Seen {
    let env: Vec<(&str, &str)> = bug.map(|b| (TEST_BUG_ENV, b)).into_iter().collect();
    let mut c = Cluster::start_env(&fast_plan("alpha", 3), &env);
    let cc = c.client_config();
    let rt = runtime();
    let (writer, stale) = rt.block_on(async {
        let w = recording(&cc).await;
        w.put("k", "old").await.expect("put k = old");
        let s = recording(&cc).await;
        // `s` learns the routing now: the current primary.
        assert_eq!(
            s.get("k").await.expect("get").map(|v| v.to_text()),
            Some("old".into())
        );
        (w, s)
    });
    let primary = config_of(&cc)["config"]["primary"]
        .as_u64()
        .expect("a primary");
    let addr_of = |role: Role, id: Option<u64>| {
        c.layout
            .nodes
            .iter()
            .find(|n| n.role == role && id.is_none_or(|i| n.id == i))
            .expect("node")
            .addr
    };
    let (meta, old) = (
        addr_of(Role::Meta, None),
        addr_of(Role::Replica, Some(primary)),
    );
    let life = gauge(&c, primary, "petrel_incarnation").expect("incarnation");
    assert_eq!(gauge(&c, primary, "petrel_replica_lease_held"), Some(1.0));

    let cut = Cut::between(meta, old);
    if meta_restart {
        let i = c
            .layout
            .nodes
            .iter()
            .position(|n| n.role == Role::Meta)
            .expect("a meta server");
        let name = format!("{}-{}", Role::Meta, c.layout.nodes[i].id);
        c.proc(&name).kill9();
        c.start_node(i);
    }
    let lapsed = wait_until(
        "the cut-off primary's lease lapses",
        Duration::from_secs(5),
        || gauge(&c, primary, "petrel_replica_lease_held") == Some(0.0),
    );
    let promoted = wait_until(
        "the meta server promotes another primary",
        Duration::from_secs(15),
        || {
            config_of(&cc)["config"]["primary"]
                .as_u64()
                .is_some_and(|p| p != primary)
        },
    );
    eprintln!("lease lapsed after {lapsed:?}; a new primary after {promoted:?}");
    let late_read = rt.block_on(async {
        writer
            .put("k", "new")
            .await
            .expect("put k = new through the new primary");
        // The old primary is still up and reachable by clients; `stale` still routes to it.
        stale.get("k").await.ok().flatten().map(|v| v.to_text())
    });

    // Heal: the deposed node's next beacon reaches the meta server, which answers that its
    // life was declared dead; it starts a new life and rejoins as a learner.
    drop(cut);
    if bug.is_none() {
        wait_until(
            "the deposed node rejoins as a new life",
            Duration::from_secs(20),
            || {
                gauge(&c, primary, "petrel_incarnation").is_some_and(|l| l > life)
                    && config_of(&cc)["config"]["secondaries"]
                        .as_array()
                        .is_some_and(|s| {
                            s.len() == 2 && s.iter().any(|v| v.as_u64() == Some(primary))
                        })
            },
        );
        let got = rt.block_on(async { writer.get("k").await.expect("get").map(|v| v.to_text()) });
        assert_eq!(got.as_deref(), Some("new"));
    }
    rt.block_on(async {
        writer.close().await;
        stale.close().await;
    });
    c.stop_all();
    let report = validate(&[c.layout.dir.as_path()]);
    Seen { late_read, report }
}

/// The real core: the late read is redirected to the new primary, and the run validates.
fn assert_redirected_and_valid(seen: Seen) {
    assert_eq!(
        seen.late_read.as_deref(),
        Some("new"),
        "a client routing to the deposed primary must be redirected, not served"
    );
    assert_eq!(seen.report.exit_code(), 0, "{}", seen.report.text());
}

#[test]
fn a_primary_cut_from_the_meta_server_stops_serving_before_another_is_promoted() {
    assert_redirected_and_valid(partition_run(None, false));
}

/// The same partition, and the meta server restarts in it: the restarted meta server
/// knows no beacon times, so it waits a whole grace (`MetaGrace`) before it declares
/// anyone dead, and the deposed primary's lease lapses first, as without the restart.
#[test]
fn a_meta_server_restarted_during_the_partition_still_promotes_only_after_the_lease() {
    assert_redirected_and_valid(partition_run(None, true));
}

/// The same run with the lease ignored (the core mutant `lease-ignored`): the deposed
/// primary serves the stale value, and validating the run catches it. Shows the test
/// above can fail.
#[test]
fn with_the_lease_ignored_the_deposed_primary_serves_a_stale_read_and_validation_catches_it() {
    let seen = partition_run(Some("LeaseIgnored"), false);
    assert_eq!(
        seen.late_read.as_deref(),
        Some("old"),
        "the mutant should serve the stale value"
    );
    assert_eq!(seen.report.exit_code(), 1, "{}", seen.report.text());
}
