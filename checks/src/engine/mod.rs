//! Petrel's model-checking engine over stateright's public [`Model`] trait.
//!
//! Why not stateright's own checker: its `eventually` only judges paths that end in terminal
//! states (a behaviour that cycles forever without reaching the goal is never reported, and
//! there is no notion of fairness), its multi-threaded BFS may report counterexamples that are
//! not shortest, `.timeout()` is ignored with one thread, and a run cut short by a limit looks
//! the same as a pass. This engine fixes all four:
//!
//! * **Exploration** (module `explore`) is a level-synchronous BFS: the frontier of depth `d`
//!   is expanded (in parallel, in batches) before any state of depth `d + 1`, so the first
//!   violation found is at minimal depth whatever the thread count. A state's BFS parent is
//!   always its first discoverer in sequential BFS order and ties between violations at the
//!   same depth are broken by fingerprint, so counterexamples do not depend on the thread
//!   count or on timing.
//! * States are kept as 64-bit fingerprints in sharded open-addressing tables plus a parent
//!   pointer and action index per state; counterexamples are rebuilt by replaying actions from
//!   the initial state and checked fingerprint by fingerprint (module `trace`); a mismatch is
//!   reported in [`Report::errors`], never returned as a trace.
//! * The frontier (the two BFS levels in flight) is kept packed by the model's [`Codec`]
//!   (module `pack`): a few words per state naming entries of a dictionary shared by the
//!   level, each state rebuilt right before its expansion. With [`ActorCodec`] an actor
//!   system's state costs tens of bytes instead of kilobytes, so a run's memory is the
//!   fingerprint table and the graph (~100 bytes per state with liveness on), not the states.
//! * **Liveness** (`Expectation::Eventually`, module `liveness`) is decided on the explored
//!   graph: a violation is a reachable `¬P` state where the system may stay forever, or a
//!   weakly-fair cycle of `¬P` states (found with an iterative Tarjan SCC pass). Fairness comes
//!   from the model through [`Fairness::fair_class`].
//! * Every limit ([`Limits`]) works with any thread count, and a run stopped by one reports
//!   `complete: false` with a `stop_reason`.
//!
//! `within_boundary`: a successor outside the boundary is neither stored nor counted, but
//! its action still counts as *enabled* for liveness (a state whose fair actions all lead
//! outside is not "stuck", and a cycle that leaves such an action enabled without taking it is
//! not fair). The boundary thus never produces a liveness violation that depends on what lies
//! beyond it.

mod blocks;
mod explore;
mod hash;
mod liveness;
mod pack;
mod table;
mod trace;

pub use pack::{ActorCodec, Codec, Plain};
use stateright::{Expectation, Model, Property};
use std::fmt;
use std::time::{Duration, Instant};

/// Weak fairness of a model's actions, needed to judge `eventually` properties on cycles.
pub trait Fairness: Model {
    /// Weak-fairness class of `action` taken in `state`; `None` = unfair (may be postponed
    /// forever: crashes, message drops, injected faults). Two actions with the same class in
    /// different states are "the same action" for fairness (e.g. delivery of one specific
    /// message to one actor, or one actor's timer).
    ///
    /// The weak-fairness assumption: a behaviour in which some class is enabled in every state
    /// from some point on, but never taken, is not a real behaviour and is never reported.
    fn fair_class(&self, state: &Self::State, action: &Self::Action) -> Option<u64>;

    /// A fresh, empty codec for storing the BFS frontier compactly (see [`Codec`]). The
    /// default keeps states as values; actor systems should return an [`ActorCodec`], which
    /// stores a state in a few dozen bytes instead of kilobytes. Called a few times per BFS
    /// level (once per worker thread).
    fn codec(&self) -> Box<dyn Codec<Self::State>>
    where
        Self::State: Clone + Send + Sync + 'static,
    {
        Box::new(Plain::default())
    }
}

/// Bounds on exploration. Any bound that stops exploration makes the report incomplete.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Stop once this many unique states are stored (exactly this many are kept).
    pub max_states: Option<usize>,
    /// Explore paths of at most this many steps (initial states have depth 0). A state at
    /// this depth is still expanded to learn whether anything lies beyond; only if a new
    /// state would have depth `max_depth + 1` is the run reported incomplete.
    pub max_depth: Option<usize>,
    /// Wall-clock budget for the whole check (exploration and liveness). Checked between
    /// batches of a few milliseconds each, with one thread as with many.
    pub timeout: Option<Duration>,
}

/// Progress callback type: see [`Options::progress`].
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// How to run [`check`].
pub struct Options {
    /// Exploration bounds.
    pub limits: Limits,
    /// Worker threads (0 is treated as 1). The coordinating thread is one of them.
    pub threads: usize,
    /// Judge `eventually` cycles under weak fairness (default `true`). With `false`, every
    /// cycle of `¬P` states is a violation, and a `¬P` state is "stuck" only if it has no
    /// enabled action at all.
    pub fairness: bool,
    /// Called from the coordinating thread about every 250 ms (and once at the end of each
    /// phase). Never called from workers.
    pub progress: Option<ProgressFn>,
    /// Stop exploring once every property's verdict is final (every `always` violated, every
    /// `sometimes` witnessed, no `eventually` property) at the end of that BFS level. Such a
    /// run is `complete` (nothing unexplored could change a verdict) but not `exhausted`.
    /// Default `true`; a model without properties is always explored fully.
    pub stop_when_decided: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fairness: true,
            progress: None,
            stop_when_decided: true,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("limits", &self.limits)
            .field("threads", &self.threads)
            .field("fairness", &self.fairness)
            .field("progress", &self.progress.is_some())
            .field("stop_when_decided", &self.stop_when_decided)
            .finish()
    }
}

/// A progress snapshot handed to [`Options::progress`].
#[derive(Clone, Debug)]
pub struct Progress {
    /// `"explore"`: unique states stored so far. `"liveness"`: states the SCC pass has
    /// visited so far for the current `eventually` property.
    pub unique_states: usize,
    /// `"explore"`: successor states generated so far, duplicates included (plus initial
    /// states). `"liveness"`: states in the graph (the bound for `unique_states`).
    pub total_states: usize,
    /// Depth of the BFS level being expanded (0 during liveness).
    pub depth: usize,
    /// Time since [`check`] started.
    pub elapsed: Duration,
    /// `"explore"` or `"liveness"`.
    pub phase: &'static str,
}

/// Result of [`check`].
pub struct Report<M: Model> {
    /// Every verdict in `properties` is final: no limit stopped the run and no internal error
    /// occurred. `false` means "do not trust a pass" (the CLI exits 2).
    pub complete: bool,
    /// The whole reachable state space (within `within_boundary`) was explored. Can be
    /// `false` on a complete run when [`Options::stop_when_decided`] stopped it early.
    pub exhausted: bool,
    /// Why the run is incomplete: `"state limit 100000"`, `"timeout 30s"`, `"depth limit 40"`,
    /// or an internal error (see `errors`). `None` iff `complete`.
    pub stop_reason: Option<String>,
    /// Internal errors, e.g. a counterexample whose replay did not reproduce the explored
    /// fingerprints (nondeterministic `actions()`/`next_state()` or a fingerprint collision).
    pub errors: Vec<String>,
    /// Unique states stored.
    pub unique_states: usize,
    /// Successor states generated, duplicates included, plus the initial states.
    pub total_states: usize,
    /// Transitions (state, enabled action) whose successor is within the boundary.
    pub edges: usize,
    /// Deepest BFS level that holds a state (initial states are depth 0).
    pub max_depth: usize,
    /// Wall-clock seconds for the whole check.
    pub seconds: f64,
    /// Nontrivial strongly connected components (cycles) of `¬P` states examined, summed over
    /// all `eventually` properties.
    pub scc_count: usize,
    /// Bytes per unique state of the persistent per-state structures (fingerprint tables,
    /// parents, edge offsets, property bits), measured from their capacities. Excludes the
    /// packed states of the BFS frontier, which live only while their level is processed
    /// (see `peak_frontier_bytes`).
    pub bytes_per_state: f64,
    /// Bytes per edge of the edge arrays (target + fairness class), measured from their
    /// capacities; 0 when no `eventually` property needs the edges stored.
    pub bytes_per_edge: f64,
    /// Largest number of frontier states held at once (two adjacent BFS levels).
    pub peak_frontier: usize,
    /// Largest heap size of the packed frontier (two adjacent levels, their codecs'
    /// dictionaries included), in bytes.
    pub peak_frontier_bytes: usize,
    /// Threads used.
    pub threads: usize,
    /// One entry per property of the model, in `model.properties()` order.
    pub properties: Vec<PropertyResult<M>>,
}

impl<M: Model> Report<M> {
    /// The result for the property called `name`, if the model has one.
    pub fn property(&self, name: &str) -> Option<&PropertyResult<M>> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Verdict for one property.
pub struct PropertyResult<M: Model> {
    /// Property name.
    pub name: &'static str,
    /// Always, Sometimes or Eventually.
    pub expectation: Expectation,
    /// Always/Eventually: no violation found; Sometimes: a witness was found.
    ///
    /// For `Eventually` on an incomplete run, liveness is not analysed at all (a partial graph
    /// says nothing about infinite behaviours) and `holds` is `true` with `conclusive:
    /// false`: the report's `complete: false` is what makes that clear.
    pub holds: bool,
    /// The verdict is final: a violation/witness was found, or the state space was exhausted
    /// (for Eventually: exhausted and analysed).
    pub conclusive: bool,
    /// `"bfs"` (safety/sometimes) or `"scc"` (liveness).
    pub checker: &'static str,
    /// Violation path, or for Sometimes the witness path. `None` also when a violation was
    /// found but its replay failed (then `Report::errors` says why).
    pub counterexample: Option<Trace<M>>,
}

/// A path from an initial state.
pub struct Trace<M: Model> {
    /// The initial state.
    pub init: M::State,
    /// Each step's action and the state it leads to.
    pub steps: Vec<(M::Action, M::State)>,
    /// `Some(i)`: `steps[i..]` is a cycle: after the last step the system is back in the state
    /// that preceded `steps[i]` (for a cycle of length 1 that is a self-loop). `None` for a
    /// plain path (safety violation, witness, or a liveness violation that ends in a state
    /// where the system may stay forever).
    pub loop_start: Option<usize>,
}

impl<M: Model> Trace<M> {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True for a trace of zero steps (the initial state itself).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The state after the last step (the initial state for an empty trace).
    pub fn last_state(&self) -> &M::State {
        self.steps.last().map_or(&self.init, |(_, s)| s)
    }

    /// The state that precedes `steps[i]` (`i == len()` gives the last state).
    pub fn state_before(&self, i: usize) -> &M::State {
        if i == 0 {
            &self.init
        } else {
            &self.steps[i - 1].1
        }
    }
}

impl<M: Model> Clone for Trace<M>
where
    M::State: Clone,
    M::Action: Clone,
{
    fn clone(&self) -> Self {
        Trace {
            init: self.init.clone(),
            steps: self.steps.clone(),
            loop_start: self.loop_start,
        }
    }
}

impl<M: Model> fmt::Debug for Trace<M>
where
    M::State: fmt::Debug,
    M::Action: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("init", &self.init)
            .field("steps", &self.steps)
            .field("loop_start", &self.loop_start)
            .finish()
    }
}

impl<M: Model> fmt::Debug for PropertyResult<M>
where
    M::State: fmt::Debug,
    M::Action: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropertyResult")
            .field("name", &self.name)
            .field("expectation", &self.expectation)
            .field("holds", &self.holds)
            .field("conclusive", &self.conclusive)
            .field("checker", &self.checker)
            .field("counterexample", &self.counterexample)
            .finish()
    }
}

impl<M: Model> fmt::Debug for Report<M>
where
    M::State: fmt::Debug,
    M::Action: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("complete", &self.complete)
            .field("exhausted", &self.exhausted)
            .field("stop_reason", &self.stop_reason)
            .field("errors", &self.errors)
            .field("unique_states", &self.unique_states)
            .field("total_states", &self.total_states)
            .field("edges", &self.edges)
            .field("max_depth", &self.max_depth)
            .field("seconds", &self.seconds)
            .field("scc_count", &self.scc_count)
            .field("bytes_per_state", &self.bytes_per_state)
            .field("bytes_per_edge", &self.bytes_per_edge)
            .field("peak_frontier", &self.peak_frontier)
            .field("peak_frontier_bytes", &self.peak_frontier_bytes)
            .field("threads", &self.threads)
            .field("properties", &self.properties)
            .finish()
    }
}

/// Shared, read-only context of one run.
pub(crate) struct Run<'a, M: Model> {
    pub(crate) model: &'a M,
    pub(crate) opts: &'a Options,
    pub(crate) start: Instant,
    pub(crate) deadline: Option<Instant>,
}

impl<M: Model> Run<'_, M> {
    pub(crate) fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(crate) fn timeout_reason(&self) -> String {
        match self.opts.limits.timeout {
            Some(t) => format!("timeout {t:?}"),
            None => "timeout".to_string(),
        }
    }

    pub(crate) fn report_progress(
        &self,
        unique: usize,
        total: usize,
        depth: usize,
        phase: &'static str,
    ) {
        if let Some(cb) = &self.opts.progress {
            cb(&Progress {
                unique_states: unique,
                total_states: total,
                depth,
                elapsed: self.start.elapsed(),
                phase,
            });
        }
    }
}

/// Interval between progress callbacks.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Explores `model` and judges all of its properties. See the module documentation.
///
/// Panics raised by the model's own code (in any worker thread) are propagated.
pub fn check<M>(model: &M, opts: &Options) -> Report<M>
where
    M: Fairness + Sync,
    M::State: Clone + std::hash::Hash + Send + Sync + fmt::Debug + 'static,
    M::Action: Clone + Send + Sync + fmt::Debug,
{
    let start = Instant::now();
    let run = Run {
        model,
        opts,
        start,
        deadline: opts.limits.timeout.map(|t| start + t),
    };
    let props: Vec<Property<M>> = model.properties();
    let ex = explore::explore(&run, &props);
    // Fingerprints of replayed states, computed as exploration computed them.
    let fpc = model.codec();

    let mut errors: Vec<String> = Vec::new();
    let mut stop_reason = ex.stop_reason.clone();
    let mut scc_count = 0;
    let mut results = Vec::with_capacity(props.len());
    for (i, p) in props.iter().enumerate() {
        let mut r = PropertyResult {
            name: p.name,
            expectation: p.expectation.clone(),
            holds: true,
            conclusive: false,
            checker: "bfs",
            counterexample: None,
        };
        match p.expectation {
            Expectation::Always | Expectation::Sometimes => {
                let found = ex.found[i];
                let is_always = p.expectation == Expectation::Always;
                r.holds = found.is_none() == is_always;
                r.conclusive = found.is_some() || ex.exhausted;
                if let Some(f) = found {
                    match trace::path_to(model, fpc.as_ref(), &ex.graph, f.id) {
                        Ok(t) => r.counterexample = Some(t),
                        Err(e) => errors.push(format!("property {:?}: {e}", p.name)),
                    }
                }
            }
            Expectation::Eventually => {
                r.checker = "scc";
                // Liveness is judged only on the full graph: a partial graph lacks the edges
                // (and states) that could make a cycle unfair or lead out of `¬P`.
                if ex.exhausted && stop_reason.is_none() {
                    let ev = ex.ev_index[i].unwrap_or_else(|| {
                        unreachable!("explore assigns an index to every eventually property")
                    });
                    match liveness::analyse(&run, &ex.graph, ev) {
                        liveness::Outcome::Holds { sccs } => {
                            scc_count += sccs;
                            r.conclusive = true;
                        }
                        liveness::Outcome::Violated { sccs, violation } => {
                            scc_count += sccs;
                            r.holds = false;
                            r.conclusive = true;
                            match trace::liveness_trace(model, fpc.as_ref(), &ex.graph, &violation)
                            {
                                Ok(t) => r.counterexample = Some(t),
                                Err(e) => errors.push(format!("property {:?}: {e}", p.name)),
                            }
                        }
                        liveness::Outcome::Aborted { reason } => {
                            stop_reason.get_or_insert(reason);
                        }
                    }
                }
            }
        }
        results.push(r);
    }
    if let Some(first) = errors.first() {
        stop_reason.get_or_insert_with(|| format!("internal error: {first}"));
    }
    let g = &ex.graph;
    let unique = g.len();
    Report {
        complete: stop_reason.is_none(),
        exhausted: ex.exhausted,
        stop_reason,
        errors,
        unique_states: unique,
        total_states: ex.total_states,
        edges: ex.edges,
        max_depth: g.level_start.len().saturating_sub(1),
        seconds: start.elapsed().as_secs_f64(),
        scc_count,
        bytes_per_state: if unique == 0 {
            0.0
        } else {
            g.state_bytes() as f64 / unique as f64
        },
        bytes_per_edge: if g.n_edges() == 0 {
            0.0
        } else {
            g.edge_bytes() as f64 / g.n_edges() as f64
        },
        peak_frontier: ex.peak_frontier,
        peak_frontier_bytes: ex.peak_frontier_bytes,
        threads: opts.threads.max(1),
        properties: results,
    }
}
