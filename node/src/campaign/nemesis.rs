//! The nemesis: a schedule of faults derived from a seed (the same seed gives the same
//! schedule), and its kinds.
//!
//! A schedule is data: each fault has a kind, a start and an end (seconds into the
//! workload) and a target given by role (`the primary of partition 2 of cluster a`, `a
//! replica of cluster b`, …) and a seeded index; the harness resolves a role to a node
//! when the fault starts (the primary is whoever the meta server names then). Every fault
//! ends before the workload does; then the harness heals everything that may remain.
use serde::Serialize;
use std::fmt;

/// A small deterministic PRNG (SplitMix64): the schedule and the workload's choices come
/// from it, so a seed replays them.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo).max(0.0) * unit
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.range(0.0, 1.0) < p
    }
}

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `kill -9` of a node (meta servers included), restarted from its data directory
    /// when the fault ends.
    Kill,
    /// SIGSTOP, then SIGCONT when the fault ends.
    Pause,
    /// The meta server and the primary of a partition cannot reach each other (both
    /// ways); both still reach clients and the other replicas.
    MetaPrimary,
    /// A replica reaches no other node (clients still reach it).
    Isolate,
    /// A one-way cut: one node's packets to another are dropped, the other way works
    /// (primary → a secondary, or meta → a replica).
    OneWay,
    /// The primary of a partition cannot reach its secondaries (both ways).
    PrimarySecondaries,
    /// Cluster a and cluster b cannot reach each other (the duplication's link).
    Clusters,
    /// Packet loss, delay and reordering on one node's interface (tc netem when the kernel
    /// has it, else iptables random drops plus a token-bucket slow link).
    Netem,
    /// A replica's disk is replaced: killed, data directory emptied, restarted.
    Wipe,
    /// A torn final write: the node is killed and an incomplete record (the first bytes of
    /// a copy of its last one) is appended to its storage file, as a crash during an
    /// append leaves it; restarted when the fault ends.
    Torn,
    /// A secondary lags and the primary then crashes: the primary's packets to its first
    /// secondary (the one the meta server promotes first) are dropped; 60 % into the fault
    /// the primary is killed; at the end the cut heals and it restarts. PacificA's promise
    /// under test: any live secondary holds every committed write.
    LagCrash,
}

pub const ALL: [Kind; 11] = [
    Kind::Kill,
    Kind::Pause,
    Kind::MetaPrimary,
    Kind::Isolate,
    Kind::OneWay,
    Kind::PrimarySecondaries,
    Kind::Clusters,
    Kind::Netem,
    Kind::Wipe,
    Kind::Torn,
    Kind::LagCrash,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::MetaPrimary => "meta-primary",
            Kind::Isolate => "isolate",
            Kind::OneWay => "one-way",
            Kind::PrimarySecondaries => "primary-secondaries",
            Kind::Clusters => "clusters",
            Kind::Netem => "netem",
            Kind::Wipe => "wipe",
            Kind::Torn => "torn",
            Kind::LagCrash => "lag-crash",
        }
    }

    /// Stops or restarts a process (at most one such fault per node at a time).
    pub fn is_process(self) -> bool {
        matches!(
            self,
            Kind::Kill | Kind::Pause | Kind::Wipe | Kind::Torn | Kind::LagCrash
        )
    }

    /// Needs the second cluster.
    pub fn needs_dup(self) -> bool {
        matches!(self, Kind::Clusters)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse `--nemesis`: comma-separated kinds, `partition` (every partition kind) or `all`.
pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let add: Vec<Kind> = match word {
            "all" => ALL.to_vec(),
            "partition" => vec![
                Kind::MetaPrimary,
                Kind::Isolate,
                Kind::OneWay,
                Kind::PrimarySecondaries,
                Kind::Clusters,
            ],
            w => match ALL.iter().find(|k| k.name() == w) {
                Some(k) => vec![*k],
                None => {
                    let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
                    return Err(format!(
                        "unknown nemesis {w:?}; known: all, partition, {}",
                        names.join(", ")
                    ));
                }
            },
        };
        for k in add {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    if kinds.is_empty() {
        return Err("--nemesis names no fault".into());
    }
    Ok(kinds)
}

/// Which cluster a target is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "a",
            Side::B => "b",
        })
    }
}

/// Whom a fault hits, resolved when it starts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The meta server of a cluster.
    Meta(Side),
    /// Replica number `n` (0, 1, 2) of a cluster.
    Replica(Side, usize),
    /// The primary of a partition of a cluster (its table 1), when the fault starts.
    Primary(Side, u8),
    /// A secondary (number `n` of the primary's secondaries) of a partition.
    Secondary(Side, u8, usize),
    /// Both clusters as a whole.
    Clusters,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Meta(s) => write!(f, "{s}/meta"),
            Target::Replica(s, n) => write!(f, "{s}/replica#{n}"),
            Target::Primary(s, p) => write!(f, "{s}/primary(p{p})"),
            Target::Secondary(s, p, n) => write!(f, "{s}/secondary#{n}(p{p})"),
            Target::Clusters => f.write_str("a<->b"),
        }
    }
}

/// One fault of a schedule.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub kind: Kind,
    /// Seconds after the workload starts.
    pub start: f64,
    pub end: f64,
    pub target: Target,
    /// For `one-way`: the direction is from the target's partner to the target instead.
    pub reverse: bool,
    /// For `netem`: drop probability.
    pub loss: f64,
    /// For `lag-crash`: when the primary is killed.
    pub mid: Option<f64>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5.2}s–{:>5.2}s {} {}",
            self.start, self.end, self.kind, self.target
        )?;
        if self.kind == Kind::OneWay {
            write!(
                f,
                " ({})",
                if self.reverse { "inbound" } else { "outbound" }
            )?;
        }
        if let Some(mid) = self.mid {
            write!(f, " (primary killed at {mid:.2}s)")?;
        }
        if self.kind == Kind::Netem {
            write!(f, " (loss {:.0}%)", self.loss * 100.0)?;
        }
        Ok(())
    }
}

/// The shape of the system a schedule is made for.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub partitions: u8,
    pub replicas: usize,
    pub dup: bool,
    /// Process faults never hit a meta server (`--spare-meta`).
    pub spare_meta: bool,
}

/// The schedule of `seed`: 2–4 faults (more for longer runs), kinds drawn from `kinds`,
/// each starting after 0.3 s and ending before `duration`. At most one process fault per
/// node at a time, at most one wipe per campaign (a wipe of every copy is data loss no
/// system survives), and a wipe never overlaps another process fault of the same cluster.
pub fn schedule(seed: u64, kinds: &[Kind], duration: f64, shape: Shape) -> Vec<Fault> {
    let mut rng = Rng::new(seed);
    let kinds: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| shape.dup || !k.needs_dup())
        .collect();
    if kinds.is_empty() || duration < 1.0 {
        return Vec::new();
    }
    let extra = (duration / 4.0) as u64;
    let n = 2 + rng.below(3 + extra);
    let mut faults: Vec<Fault> = Vec::new();
    let mut attempts = 0;
    while (faults.len() as u64) < n && attempts < 50 {
        attempts += 1;
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let start = rng.range(0.3, (duration - 0.8).max(0.4));
        let len = if kind == Kind::LagCrash {
            rng.range(1.5, 2.5_f64.min(duration * 0.6).max(1.6))
        } else {
            rng.range(0.5, 2.5_f64.min(duration * 0.5))
        };
        let end = (start + len).min(duration - 0.2);
        let side = if shape.dup && rng.chance(0.3) {
            Side::B
        } else {
            Side::A
        };
        let part = rng.below(u64::from(shape.partitions.max(1))) as u8;
        let replica = rng.below(shape.replicas as u64) as usize;
        let target = match kind {
            Kind::Kill | Kind::Pause | Kind::Torn => match rng.below(4) {
                0 if !shape.spare_meta => Target::Meta(side),
                1 => Target::Primary(side, part),
                _ => Target::Replica(side, replica),
            },
            Kind::Wipe => {
                if rng.chance(0.5) {
                    Target::Primary(side, part)
                } else {
                    Target::Replica(side, replica)
                }
            }
            Kind::MetaPrimary | Kind::PrimarySecondaries | Kind::LagCrash => {
                Target::Primary(side, part)
            }
            Kind::Isolate | Kind::Netem => Target::Replica(side, replica),
            Kind::OneWay => {
                if rng.chance(0.5) {
                    Target::Secondary(side, part, rng.below(2) as usize)
                } else {
                    Target::Replica(side, replica)
                }
            }
            Kind::Clusters => Target::Clusters,
        };
        let reverse = rng.chance(0.5);
        let loss = rng.range(0.05, 0.3);
        let fault = Fault {
            kind,
            start,
            end,
            target,
            reverse,
            loss,
            mid: (kind == Kind::LagCrash).then_some(start + 0.6 * (end - start)),
        };
        let overlaps = |f: &Fault| f.start < fault.end + 0.3 && fault.start < f.end + 0.3;
        let same_side = |a: &Target, b: &Target| side_of(a) == side_of(b);
        let conflict = faults.iter().any(|f| {
            overlaps(f)
                && ((f.kind.is_process()
                    && fault.kind.is_process()
                    && (f.target == fault.target
                        || ((f.kind == Kind::Wipe || fault.kind == Kind::Wipe)
                            && same_side(&f.target, &fault.target))
                        // a role resolves at run time: the same role may be any node
                        || role_based(&f.target)
                        || role_based(&fault.target)))
                    || (f.kind == Kind::Netem
                        && fault.kind == Kind::Netem
                        && f.target == fault.target))
        }) || (kind == Kind::Wipe && faults.iter().any(|f| f.kind == Kind::Wipe));
        if !conflict {
            faults.push(fault);
        }
    }
    faults.sort_by(|a, b| a.start.total_cmp(&b.start));
    faults
}

fn role_based(t: &Target) -> bool {
    matches!(t, Target::Primary(..) | Target::Secondary(..))
}

fn side_of(t: &Target) -> Option<Side> {
    match t {
        Target::Meta(s) | Target::Replica(s, _) | Target::Primary(s, _) => Some(*s),
        Target::Secondary(s, _, _) => Some(*s),
        Target::Clusters => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        partitions: 4,
        replicas: 3,
        dup: true,
        spare_meta: false,
    };

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        for seed in 0..50 {
            let a = schedule(seed, &ALL, 6.0, SHAPE);
            let b = schedule(seed, &ALL, 6.0, SHAPE);
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert!(a.len() >= 2, "seed {seed}: {a:?}");
            for f in &a {
                assert!(f.start >= 0.3 && f.end <= 6.0 - 0.2 + 1e-9 && f.start < f.end);
            }
            assert!(a.iter().filter(|f| f.kind == Kind::Wipe).count() <= 1);
        }
        let differ = (0..20)
            .map(|s| format!("{:?}", schedule(s, &ALL, 6.0, SHAPE)))
            .collect::<std::collections::BTreeSet<_>>();
        assert!(differ.len() > 15, "seeds must give different schedules");
    }

    #[test]
    fn every_kind_appears_over_fifty_seeds() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=50 {
            for f in schedule(seed, &ALL, 6.0, SHAPE) {
                seen.insert(f.kind);
            }
        }
        assert_eq!(seen.len(), ALL.len(), "{seen:?}");
    }

    #[test]
    fn spare_meta_spares_the_meta_servers() {
        let shape = Shape {
            spare_meta: true,
            ..SHAPE
        };
        for seed in 1..=50 {
            for f in schedule(seed, &ALL, 6.0, shape) {
                assert!(!matches!(f.target, Target::Meta(_)), "seed {seed}: {f}");
            }
        }
    }

    #[test]
    fn nemesis_lists_parse() {
        assert_eq!(parse_list("all").map(|v| v.len()), Ok(ALL.len()));
        assert_eq!(parse_list("lag-crash"), Ok(vec![Kind::LagCrash]));
        assert_eq!(
            parse_list("kill,pause,kill"),
            Ok(vec![Kind::Kill, Kind::Pause])
        );
        assert_eq!(parse_list("partition").map(|v| v.len()), Ok(5));
        assert!(parse_list("explode").is_err());
        assert!(parse_list("").is_err());
    }
}
