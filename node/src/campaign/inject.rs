//! Carrying out a schedule: each fault is applied when it starts (its role resolved to a
//! node by asking the meta server then) and undone when it ends; [`heal_all`] then makes
//! sure nothing remains (every process running and resumed, no rule, no qdisc).
use super::cluster::Clusters;
use super::nemesis::{Fault, Kind, Rng, Side, Target};
use super::netns::Net;
use crate::config::Config;
use petrel_core::{Msg, PartitionConfig};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What happened to one fault of the schedule.
#[derive(Clone, Debug, Serialize)]
pub struct Injected {
    pub fault: Fault,
    /// The nodes it hit (names), or why it could not be applied.
    pub resolved: String,
    pub applied: bool,
}

/// An iptables rule in a host's namespace (inserted, later deleted with the same spec).
#[derive(Clone, Debug)]
struct Rule {
    host: usize,
    args: Vec<String>,
}

enum Undo {
    Restart(usize),
    Resume(usize),
    Net {
        rules: Vec<Rule>,
        qdisc: Option<usize>,
    },
    /// lag-crash: the cut, and the primary to kill at `mid` (then restart at the end).
    LagCrash {
        rules: Vec<Rule>,
        primary: usize,
        killed: bool,
    },
}

/// Whether the kernel has tc's netem (probed once per harness).
static NETEM: OnceLock<bool> = OnceLock::new();

fn netem_available(net: &Net) -> bool {
    *NETEM.get_or_init(|| {
        let ok = net
            .exec(
                0,
                "tc",
                &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            )
            .is_ok();
        if ok {
            let _ = net.exec(0, "tc", &["qdisc", "del", "dev", "lo", "root"]);
        }
        ok
    })
}

/// The meta server's view of cluster `side` (table 1's partitions and the live nodes),
/// asked as a client; `None` if it does not answer within a second.
pub fn cluster_status(
    rt: &tokio::runtime::Handle,
    cfg: &Config,
) -> Option<(Vec<PartitionConfig>, Vec<u64>)> {
    let reply = rt
        .block_on(crate::client::ask_meta(
            cfg,
            Msg::QueryCluster,
            Duration::from_secs(1),
            |m| matches!(m, Msg::ClusterStatus { .. }),
        ))
        .ok()?;
    match reply {
        Msg::ClusterStatus { configs, alive, .. } => Some((
            configs.into_iter().filter(|c| c.gpid.table == 1).collect(),
            alive
                .into_iter()
                .map(|(id, _)| crate::transport::raw_of(id))
                .collect(),
        )),
        _ => None,
    }
}

pub struct Injector<'a> {
    pub net: &'a Net,
    pub clusters: Arc<Mutex<Clusters>>,
    pub rt: tokio::runtime::Handle,
    pub run_dir: &'a Path,
    /// Client configurations of a and b (b: None without duplication).
    pub configs: [Option<Config>; 2],
    pub rng: Rng,
    pub verbose: Option<u64>,
}

impl Injector<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Clusters> {
        match self.clusters.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn ip(&self, node: usize) -> Ipv4Addr {
        let host = self.lock().nodes[node].host;
        self.net.hosts[host].ip
    }

    fn name(&self, node: usize) -> String {
        self.lock().nodes[node].name()
    }

    /// The primary and secondaries of partition `p` of `side`, by node index; a seeded
    /// choice of replicas when the meta server does not answer (it may be down).
    fn members(&mut self, side: Side, p: u8) -> (usize, Vec<usize>, bool) {
        let cfg = self.configs[super::cluster::side_index(side)].clone();
        let replicas = self.lock().replicas_of(side);
        let fallback = |rng: &mut Rng| {
            let k = rng.below(replicas.len() as u64) as usize;
            let primary = replicas[k];
            let rest = replicas.iter().copied().filter(|r| *r != primary).collect();
            (primary, rest, false)
        };
        let Some(cfg) = cfg else {
            return fallback(&mut self.rng);
        };
        let status = cluster_status(&self.rt, &cfg);
        let found = status.and_then(|(configs, _)| {
            let c = configs.iter().find(|c| c.gpid.partition == p)?;
            let g = self.lock();
            let primary = g.index_of(crate::transport::raw_of(c.primary?))?;
            let secondaries = c
                .secondaries
                .iter()
                .filter_map(|s| g.index_of(crate::transport::raw_of(*s)))
                .collect();
            Some((primary, secondaries, true))
        });
        found.unwrap_or_else(|| fallback(&mut self.rng))
    }

    /// Every partition of `node`'s cluster has a live primary and two live secondaries.
    fn fully_replicated(&self, node: usize) -> bool {
        let side = self.lock().nodes[node].side;
        let Some(cfg) = &self.configs[super::cluster::side_index(side)] else {
            return false;
        };
        cluster_status(&self.rt, cfg).is_some_and(|(parts, alive)| {
            let live = |id: stateright::actor::Id| alive.contains(&crate::transport::raw_of(id));
            !parts.is_empty()
                && parts.iter().all(|c| {
                    c.primary.is_some_and(live)
                        && c.secondaries.len() == super::cluster::REPLICAS - 1
                        && c.secondaries.iter().all(|s| live(*s))
                })
        })
    }

    /// The single node a process fault (or a one-node network fault) hits.
    fn node_of(&mut self, t: &Target) -> Option<(usize, bool)> {
        match t {
            Target::Meta(s) => self.lock().meta_of(*s).map(|m| (m, true)),
            Target::Replica(s, n) => {
                let r = self.lock().replicas_of(*s);
                r.get(*n % r.len().max(1)).map(|x| (*x, true))
            }
            Target::Primary(s, p) => {
                let (primary, _, known) = self.members(*s, *p);
                Some((primary, known))
            }
            Target::Secondary(s, p, n) => {
                let (_, secs, known) = self.members(*s, *p);
                secs.get(*n % secs.len().max(1)).map(|x| (*x, known))
            }
            Target::Clusters => None,
        }
    }

    fn insert(&self, rules: &[Rule]) -> Result<(), String> {
        for r in rules {
            let mut args = vec!["-w", "-I"];
            args.extend(r.args.iter().map(String::as_str));
            self.net
                .exec(r.host, "iptables", &args)
                .map_err(|e| format!("{e:#}"))?;
        }
        Ok(())
    }

    fn delete(&self, rules: &[Rule]) {
        for r in rules {
            let mut args = vec!["-w", "-D"];
            args.extend(r.args.iter().map(String::as_str));
            let _ = self.net.exec(r.host, "iptables", &args);
        }
    }

    /// Drop packets from `from` arriving at `to`.
    fn drop_rule(&self, from: usize, to: usize) -> Rule {
        let host = self.lock().nodes[to].host;
        Rule {
            host,
            args: ["INPUT", "-s", &self.ip(from).to_string(), "-j", "DROP"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn apply(&mut self, f: &Fault, k: usize) -> Result<(String, Undo), String> {
        match f.kind {
            Kind::Kill | Kind::Pause | Kind::Wipe | Kind::Torn => {
                let (node, known) = self
                    .node_of(&f.target)
                    .ok_or_else(|| "no node for the target".to_string())?;
                let name = self.name(node);
                if f.kind == Kind::Wipe && !self.fully_replicated(node) {
                    // Its disk may hold the last copy: losing every copy is data loss no
                    // replication survives, not a finding.
                    return Err(format!(
                        "{name}'s cluster is not fully replicated (a wipe could destroy the last copy)"
                    ));
                }
                let how = if known {
                    ""
                } else {
                    " (meta unreachable: seeded guess)"
                };
                let mut g = self.lock();
                if !g.nodes[node].running() {
                    return Err(format!("{name} is not running"));
                }
                match f.kind {
                    Kind::Pause => {
                        if !g.pause(node) {
                            return Err(format!("{name} could not be paused"));
                        }
                        Ok((format!("{name}{how}"), Undo::Resume(node)))
                    }
                    Kind::Kill => {
                        g.kill(node);
                        Ok((format!("{name}{how}"), Undo::Restart(node)))
                    }
                    Kind::Wipe => {
                        if g.nodes[node].role == crate::launch::Role::Meta {
                            return Err("a meta server's disk is not wiped".into());
                        }
                        g.kill(node);
                        g.wipe(node, self.run_dir, k)
                            .map_err(|e| format!("{e:#}"))?;
                        Ok((format!("{name}{how}"), Undo::Restart(node)))
                    }
                    _ => {
                        g.kill(node);
                        let n = g.tear(node).map_err(|e| format!("{e:#}"))?;
                        Ok((
                            format!("{name}{how}, {n} bytes of a torn record appended"),
                            Undo::Restart(node),
                        ))
                    }
                }
            }
            Kind::LagCrash => {
                let Target::Primary(side, p) = f.target else {
                    return Err("lag-crash needs a primary".into());
                };
                let (primary, secs, known) = self.members(side, p);
                let Some(&lagging) = secs.first().filter(|_| known) else {
                    return Err("no primary with a secondary known".into());
                };
                let rules = vec![self.drop_rule(primary, lagging)];
                self.insert(&rules)?;
                Ok((
                    format!(
                        "{} -/-> {}, then {} killed",
                        self.name(primary),
                        self.name(lagging),
                        self.name(primary)
                    ),
                    Undo::LagCrash {
                        rules,
                        primary,
                        killed: false,
                    },
                ))
            }
            Kind::MetaPrimary => {
                let Target::Primary(side, p) = f.target else {
                    return Err("meta-primary needs a primary".into());
                };
                let (primary, _, known) = self.members(side, p);
                if !known {
                    return Err("no primary known (meta unreachable)".into());
                }
                let meta = self.lock().meta_of(side).ok_or("no meta")?;
                let rules = vec![self.drop_rule(meta, primary), self.drop_rule(primary, meta)];
                self.insert(&rules)?;
                Ok((
                    format!("{} <-/-> {}", self.name(meta), self.name(primary)),
                    Undo::Net { rules, qdisc: None },
                ))
            }
            Kind::PrimarySecondaries => {
                let Target::Primary(side, p) = f.target else {
                    return Err("primary-secondaries needs a primary".into());
                };
                let (primary, secs, known) = self.members(side, p);
                if !known {
                    return Err("no primary known (meta unreachable)".into());
                }
                let mut rules = Vec::new();
                for s in &secs {
                    rules.push(self.drop_rule(primary, *s));
                    rules.push(self.drop_rule(*s, primary));
                }
                self.insert(&rules)?;
                let names: Vec<String> = secs.iter().map(|s| self.name(*s)).collect();
                Ok((
                    format!("{} <-/-> {}", self.name(primary), names.join(",")),
                    Undo::Net { rules, qdisc: None },
                ))
            }
            Kind::Isolate => {
                let (node, _) = self.node_of(&f.target).ok_or("no node")?;
                let host = self.lock().nodes[node].host;
                let count = self.lock().nodes.len();
                let others: Vec<String> = (0..count)
                    .filter(|i| *i != node)
                    .map(|i| self.ip(i).to_string())
                    .collect();
                let list = others.join(",");
                let rules = vec![
                    Rule {
                        host,
                        args: vec![
                            "INPUT".into(),
                            "-s".into(),
                            list.clone(),
                            "-j".into(),
                            "DROP".into(),
                        ],
                    },
                    Rule {
                        host,
                        args: vec![
                            "OUTPUT".into(),
                            "-d".into(),
                            list,
                            "-j".into(),
                            "DROP".into(),
                        ],
                    },
                ];
                self.insert(&rules)?;
                Ok((
                    format!("{} from every node", self.name(node)),
                    Undo::Net { rules, qdisc: None },
                ))
            }
            Kind::OneWay => {
                let (a, b) = match f.target {
                    Target::Secondary(side, p, n) => {
                        let (primary, secs, known) = self.members(side, p);
                        if !known || secs.is_empty() {
                            return Err("no primary/secondary known".into());
                        }
                        (primary, secs[n % secs.len()])
                    }
                    Target::Replica(side, _) => {
                        let (r, _) = self.node_of(&f.target).ok_or("no node")?;
                        (self.lock().meta_of(side).ok_or("no meta")?, r)
                    }
                    _ => return Err("one-way needs a secondary or a replica".into()),
                };
                let (from, to) = if f.reverse { (b, a) } else { (a, b) };
                let rules = vec![self.drop_rule(from, to)];
                self.insert(&rules)?;
                Ok((
                    format!("{} -/-> {}", self.name(from), self.name(to)),
                    Undo::Net { rules, qdisc: None },
                ))
            }
            Kind::Clusters => {
                let (a, b) = {
                    let g = self.lock();
                    (g.of_side(Side::A), g.of_side(Side::B))
                };
                if b.is_empty() {
                    return Err("no cluster b".into());
                }
                let ips = |v: &[usize]| {
                    v.iter()
                        .map(|i| self.ip(*i).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let (a_ips, b_ips) = (ips(&a), ips(&b));
                let mut rules = Vec::new();
                for (mine, theirs) in [(&a, &b_ips), (&b, &a_ips)] {
                    for n in mine.iter() {
                        let host = self.lock().nodes[*n].host;
                        rules.push(Rule {
                            host,
                            args: vec![
                                "INPUT".into(),
                                "-s".into(),
                                theirs.clone(),
                                "-j".into(),
                                "DROP".into(),
                            ],
                        });
                    }
                }
                self.insert(&rules)?;
                Ok((
                    "cluster a <-/-> cluster b".into(),
                    Undo::Net { rules, qdisc: None },
                ))
            }
            Kind::Netem => {
                let (node, _) = self.node_of(&f.target).ok_or("no node")?;
                let host = self.lock().nodes[node].host;
                let loss = format!("{:.1}%", f.loss * 100.0);
                if netem_available(self.net) {
                    self.net
                        .exec(
                            host,
                            "tc",
                            &[
                                "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "20ms",
                                "15ms", "loss", &loss, "reorder", "25%", "50%",
                            ],
                        )
                        .map_err(|e| format!("{e:#}"))?;
                    Ok((
                        format!(
                            "{}: netem delay 20±15 ms, loss {loss}, reorder 25%",
                            self.name(node)
                        ),
                        Undo::Net {
                            rules: Vec::new(),
                            qdisc: Some(host),
                        },
                    ))
                } else {
                    // No sch_netem in this kernel: random drops with iptables, and a
                    // token-bucket slow link (queueing delay under load).
                    let p = format!("{:.3}", f.loss);
                    let rules: Vec<Rule> = ["INPUT", "OUTPUT"]
                        .iter()
                        .map(|chain| Rule {
                            host,
                            args: [
                                chain,
                                "-m",
                                "statistic",
                                "--mode",
                                "random",
                                "--probability",
                                p.as_str(),
                                "-j",
                                "DROP",
                            ]
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                        })
                        .collect();
                    self.insert(&rules)?;
                    let qdisc = self
                        .net
                        .exec(
                            host,
                            "tc",
                            &[
                                "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "4mbit",
                                "burst", "16kb", "latency", "100ms",
                            ],
                        )
                        .is_ok();
                    Ok((
                        format!(
                            "{}: loss {loss} (iptables){} (no netem in this kernel)",
                            self.name(node),
                            if qdisc { ", tbf 4 mbit/s" } else { "" }
                        ),
                        Undo::Net {
                            rules,
                            qdisc: qdisc.then_some(host),
                        },
                    ))
                }
            }
        }
    }

    fn undo(&mut self, u: Undo, errors: &mut Vec<String>) {
        match u {
            Undo::Resume(n) => self.lock().resume(n),
            Undo::Restart(n) => {
                let r = self.lock().start(self.net, n);
                if let Err(e) = r {
                    errors.push(format!("restart failed: {e:#}"));
                }
            }
            Undo::LagCrash {
                rules,
                primary,
                killed,
            } => {
                self.delete(&rules);
                if killed {
                    self.undo(Undo::Restart(primary), errors);
                }
            }
            Undo::Net { rules, qdisc } => {
                self.delete(&rules);
                if let Some(h) = qdisc {
                    let _ = self
                        .net
                        .exec(h, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
                }
            }
        }
    }

    /// Run the schedule from `t0`; returns what was injected and errors (a node that
    /// would not restart).
    pub fn run(
        &mut self,
        faults: &[Fault],
        t0: Instant,
        stop: &AtomicBool,
    ) -> (Vec<Injected>, Vec<String>) {
        // (time, fault index, phase): 0 start, 1 middle (lag-crash's kill), 2 end.
        let mut events: Vec<(f64, usize, u8)> = faults
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let mid = f.mid.map(|m| (m, i, 1));
                [(f.start, i, 0)]
                    .into_iter()
                    .chain(mid)
                    .chain([(f.end, i, 2)])
            })
            .collect();
        events.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.2.cmp(&a.2)));
        let mut undo: Vec<Option<Undo>> = faults.iter().map(|_| None).collect();
        let mut done: Vec<Injected> = faults
            .iter()
            .map(|f| Injected {
                fault: f.clone(),
                resolved: "not reached".into(),
                applied: false,
            })
            .collect();
        let mut errors = Vec::new();
        for (at, i, phase) in events {
            let start = phase == 0;
            let when = t0 + Duration::from_secs_f64(at);
            while Instant::now() < when {
                if stop.load(Ordering::Relaxed) && start {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10).min(when - Instant::now()));
            }
            if start {
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
                match self.apply(&faults[i], i) {
                    Ok((what, u)) => {
                        done[i].resolved = what;
                        done[i].applied = true;
                        undo[i] = Some(u);
                    }
                    Err(e) => done[i].resolved = format!("not applied: {e}"),
                }
                if let Some(seed) = self.verbose {
                    eprintln!(
                        "[seed {seed}] {:>5.2}s {} → {}",
                        t0.elapsed().as_secs_f64(),
                        faults[i].kind,
                        done[i].resolved
                    );
                }
            } else if phase == 1 {
                if let Some(Undo::LagCrash {
                    primary, killed, ..
                }) = &mut undo[i]
                {
                    if !stop.load(Ordering::Relaxed) {
                        self.lock().kill(*primary);
                        *killed = true;
                    }
                }
            } else if let Some(u) = undo[i].take() {
                self.undo(u, &mut errors);
            }
        }
        for u in undo.into_iter().flatten() {
            self.undo(u, &mut errors);
        }
        (done, errors)
    }
}

/// Make sure nothing of the nemesis remains: every node resumed and running, no rule,
/// no qdisc. Returns errors (a node that would not start).
pub fn heal_all(net: &Net, clusters: &Arc<Mutex<Clusters>>) -> Vec<String> {
    let mut errors = Vec::new();
    for h in 0..net.hosts.len() {
        let _ = net.exec(h, "iptables", &["-w", "-F", "INPUT"]);
        let _ = net.exec(h, "iptables", &["-w", "-F", "OUTPUT"]);
        let _ = net.exec(h, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
    }
    let mut g = match clusters.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    for i in 0..g.nodes.len() {
        g.resume(i);
        if !g.nodes[i].running() {
            if let Err(e) = g.start(net, i) {
                errors.push(format!("restart at heal failed: {e:#}"));
            }
        }
    }
    errors
}
