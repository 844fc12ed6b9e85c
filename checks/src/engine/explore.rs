//! Level-synchronous, batched, parallel BFS that builds the state graph.
//!
//! The frontier of depth `d` is processed in batches of source states. Each batch runs:
//!
//! * **A – expand** (parallel over chunks of the batch): `actions()` + `next_state()` for
//!   every source; each successor is fingerprinted and looked up (read-only) in the shard
//!   tables. Known successors become resolved edges and their state is dropped on the spot;
//!   the others go, with their state, into a per-(chunk, shard) bucket.
//! * **B – dedup** (parallel over shards; each thread owns a disjoint set of shard tables, so
//!   no locks): candidates of a shard are visited in global BFS order (chunk, source,
//!   action), so the first discoverer of a new state becomes its parent exactly as in a
//!   sequential BFS. New states get a provisional number and their properties are evaluated.
//! * **C – register** (coordinator): provisional numbers become node ids, shard after shard,
//!   so the numbering depends only on the (fixed) shard count and the batch, never on the
//!   thread count; edges are resolved and appended to the CSR arrays.
//!
//! Only two BFS levels of full states are alive at once; everything else is 12 bytes of
//! table slot, a parent and an action index per state, and 8 bytes per edge when liveness
//! needs the edges.

use super::hash::{fingerprint, shard_of, IntMap, SHARDS};
use super::table::FpTable;
use super::{Fairness, Run, PROGRESS_EVERY};
use stateright::{Expectation, Property};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Parent of an initial state.
pub(crate) const NO_PARENT: u32 = u32::MAX;
/// Edge target for a successor outside `within_boundary` (or, on an incomplete run, a state
/// that was never stored). Such an edge still counts for which fairness classes are enabled.
pub(crate) const OUTSIDE: u32 = u32::MAX;
/// Class id of an unfair action.
pub(crate) const UNFAIR: u32 = u32::MAX;
/// Node ids stay below this, so a value with this bit set is a provisional number.
const PROV: u32 = 1 << 31;
/// Phase-A edge target meaning "new candidate, in shard `t - PENDING`".
const PENDING: u32 = u32::MAX - 1 - SHARDS as u32;
/// Largest number of nodes: ids must stay clear of `PROV`.
const MAX_NODES: usize = (PROV - 1) as usize;

/// Bounds on the number of source states per batch, which adapts so a batch takes between
/// `BATCH_FAST` and `BATCH_SLOW`: short enough for timely progress reports and timeouts,
/// long enough to amortise spawning the phase threads.
const MIN_BATCH: usize = 64;
const MAX_BATCH: usize = 1 << 16;
const BATCH_FAST: Duration = Duration::from_millis(15);
const BATCH_SLOW: Duration = Duration::from_millis(60);
/// Below this many sources a batch runs on the coordinating thread alone.
const PARALLEL_MIN: usize = 128;

/// One transition of the graph.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    /// Node id or [`OUTSIDE`].
    pub(crate) target: u32,
    /// Interned fairness class, [`UNFAIR`] for `None` (and for every edge when fairness is
    /// off).
    pub(crate) class: u32,
}

/// The explored state graph.
pub(crate) struct Graph {
    /// Fingerprint → node id, one table per shard ([`shard_of`]).
    pub(crate) tables: Vec<FpTable>,
    /// Parent node (BFS tree) or [`NO_PARENT`] for initial states.
    pub(crate) parent: Vec<u32>,
    /// Index into the parent's `actions()` list, or into `init_states()` for initial states.
    pub(crate) action: Vec<u32>,
    /// First node id of each depth; ids are assigned level by level.
    pub(crate) level_start: Vec<u32>,
    /// CSR: edges of node `v` are `offsets[v]..offsets[v + 1]` (nodes never expanded have
    /// none). Empty unless an `eventually` property needs the graph.
    pub(crate) offsets: Vec<u64>,
    /// Edges in `actions()` order per node (target and class side by side: liveness reads
    /// both for every node it visits, and one cache miss is cheaper than two).
    pub(crate) edges: Vec<Edge>,
    /// Raw class of each interned class id.
    pub(crate) class_raw: Vec<u64>,
    /// Per `eventually` property, a bitset over node ids: bit set = the condition holds.
    pub(crate) ev_bits: Vec<Vec<u64>>,
}

impl Graph {
    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.parent.len()
    }

    /// Node id of a fingerprint.
    pub(crate) fn lookup(&self, fp: u64) -> Option<u32> {
        self.tables[shard_of(fp)].get(fp).filter(|&v| v & PROV == 0)
    }

    /// Depth (BFS level) of a node.
    pub(crate) fn depth(&self, id: u32) -> usize {
        self.level_start
            .partition_point(|&s| s <= id)
            .saturating_sub(1)
    }

    /// Edge positions of node `v`.
    pub(crate) fn edge_range(&self, v: u32) -> std::ops::Range<usize> {
        let v = v as usize;
        if v + 1 < self.offsets.len() {
            self.offsets[v] as usize..self.offsets[v + 1] as usize
        } else {
            0..0
        }
    }

    /// Whether `eventually` property number `ev` holds in node `v`.
    pub(crate) fn holds(&self, ev: usize, v: u32) -> bool {
        let v = v as usize;
        self.ev_bits[ev][v / 64] >> (v % 64) & 1 == 1
    }

    /// Bytes of the per-state structures, from their capacities.
    pub(crate) fn state_bytes(&self) -> usize {
        self.tables.iter().map(FpTable::bytes).sum::<usize>()
            + self.parent.capacity() * 4
            + self.action.capacity() * 4
            + self.level_start.capacity() * 4
            + self.offsets.capacity() * 8
            + self.ev_bits.iter().map(|b| b.capacity() * 8).sum::<usize>()
    }

    /// Bytes of the per-edge structures, from their capacities.
    pub(crate) fn edge_bytes(&self) -> usize {
        self.edges.capacity() * std::mem::size_of::<Edge>()
    }
}

/// A safety violation or sometimes-witness: the node with the smallest fingerprint among those
/// at the smallest depth (a tie-break independent of thread count and batching).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub(crate) depth: usize,
    pub(crate) fp: u64,
    pub(crate) id: u32,
}

/// Result of [`explore`].
pub(crate) struct Exploration {
    pub(crate) graph: Graph,
    /// Per property (index into `model.properties()`): the violation (Always) or witness
    /// (Sometimes). Always `None` for Eventually.
    pub(crate) found: Vec<Option<Found>>,
    /// Per property: its index into `Graph::ev_bits` if it is an Eventually property.
    pub(crate) ev_index: Vec<Option<usize>>,
    pub(crate) exhausted: bool,
    pub(crate) stop_reason: Option<String>,
    pub(crate) total_states: usize,
    pub(crate) edges: usize,
    pub(crate) peak_frontier: usize,
}

/// A successor that was not in the tables when its batch started.
struct Cand<S> {
    fp: u64,
    parent: u32,
    action: u32,
    state: S,
}

/// Output of phase A for one chunk of sources.
struct ChunkOut<S> {
    /// Candidates per shard, in (source, action) order.
    buckets: Vec<Vec<Cand<S>>>,
    /// Edge count per source (only when edges are stored).
    edge_count: Vec<u32>,
    /// Edges whose target is encoded: node id, [`OUTSIDE`], or `PENDING + shard`.
    edges: Vec<Edge>,
    /// In-boundary successors generated.
    generated: usize,
}

/// Input of phase B for one shard: its table and its candidates, one bucket per chunk.
type ShardJob<'a, S> = (&'a mut FpTable, Vec<Vec<Cand<S>>>);

/// Output of phase B for one shard.
struct ShardOut<S> {
    /// Per candidate (in bucket order): node id, `PROV | local`, or [`OUTSIDE`] if it was
    /// new but could not be inserted (limit reached).
    res: Vec<u32>,
    /// New states in provisional order.
    new: Vec<Cand<S>>,
    /// `ev_words` words of eventually bits per new state.
    ev: Vec<u64>,
    /// Per property: smallest (fingerprint, local) hit among the new states.
    best: Vec<Option<(u64, u32)>>,
    /// A new state was seen but not inserted.
    blocked: bool,
}

/// Fairness-class interner shared by phase-A workers; each worker keeps a local cache in
/// front of it, so the lock is taken once per class per worker.
#[derive(Default)]
struct Interner {
    ids: IntMap<u64, u32>,
    raw: Vec<u64>,
}

/// Read-only data of phase A/B.
struct Ctx<'a, M: Fairness> {
    model: &'a M,
    props: &'a [Property<M>],
    /// Per property: still being evaluated (for Always/Sometimes).
    active: Vec<bool>,
    ev_index: &'a [Option<usize>],
    ev_words: usize,
    store_edges: bool,
    want_classes: bool,
    interner: &'a Mutex<Interner>,
}

/// Evaluates the properties on a newly stored state.
fn eval_state<M: Fairness>(
    ctx: &Ctx<'_, M>,
    state: &M::State,
    fp: u64,
    local: u32,
    best: &mut [Option<(u64, u32)>],
    ev_out: &mut Vec<u64>,
) {
    let base = ev_out.len();
    ev_out.resize(base + ctx.ev_words, 0);
    for (i, p) in ctx.props.iter().enumerate() {
        let hit = match p.expectation {
            Expectation::Eventually => {
                if (p.condition)(ctx.model, state) {
                    if let Some(e) = ctx.ev_index[i] {
                        ev_out[base + e / 64] |= 1 << (e % 64);
                    }
                }
                false
            }
            Expectation::Always => ctx.active[i] && !(p.condition)(ctx.model, state),
            Expectation::Sometimes => ctx.active[i] && (p.condition)(ctx.model, state),
        };
        if hit && best[i].filter(|&(bfp, _)| bfp <= fp).is_none() {
            best[i] = Some((fp, local));
        }
    }
}

fn intern(ctx_interner: &Mutex<Interner>, cache: &mut IntMap<u64, u32>, raw: u64) -> u32 {
    if let Some(&c) = cache.get(&raw) {
        return c;
    }
    // A poisoned lock means another worker panicked inside model code; that panic is
    // propagated by the join, so carrying on with the data is fine.
    let mut g = ctx_interner.lock().unwrap_or_else(|e| e.into_inner());
    let next = g.raw.len() as u32;
    let c = *g.ids.entry(raw).or_insert(next);
    if c == next {
        g.raw.push(raw);
    }
    drop(g);
    cache.insert(raw, c);
    c
}

/// A successor generated in phase A, before its table lookup.
struct Succ<S> {
    fp: u64,
    parent: u32,
    action: u32,
    class: u32,
    /// `None` for a successor outside the boundary.
    state: Option<S>,
}

/// Sources per block of phase A: successors of a block are generated first and looked up
/// afterwards in a tight loop, so the table's cache misses overlap instead of each stalling
/// behind the next successor's generation.
const BLOCK: usize = 64;

/// Phase A for one chunk: `sources` have node ids `first_id..`.
fn expand_chunk<M>(
    ctx: &Ctx<'_, M>,
    tables: &[FpTable],
    sources: &[M::State],
    first_id: u32,
    cache: &mut IntMap<u64, u32>,
) -> ChunkOut<M::State>
where
    M: Fairness,
    M::State: Hash,
{
    let model = ctx.model;
    let mut out = ChunkOut {
        buckets: (0..SHARDS).map(|_| Vec::new()).collect(),
        edge_count: Vec::with_capacity(if ctx.store_edges { sources.len() } else { 0 }),
        edges: Vec::new(),
        generated: 0,
    };
    let mut actions = Vec::new();
    let mut succs: Vec<Succ<M::State>> = Vec::new();
    for (b, block) in sources.chunks(BLOCK).enumerate() {
        let block_first = first_id + (b * BLOCK) as u32;
        for (k, s) in block.iter().enumerate() {
            let src = block_first + k as u32;
            actions.clear();
            model.actions(s, &mut actions);
            let before = succs.len();
            for (ai, a) in actions.drain(..).enumerate() {
                // fair_class must see the action before next_state consumes it.
                let class = if ctx.want_classes {
                    match model.fair_class(s, &a) {
                        Some(raw) => intern(ctx.interner, cache, raw),
                        None => UNFAIR,
                    }
                } else {
                    UNFAIR
                };
                let Some(next) = model.next_state(s, a) else {
                    continue;
                };
                let (fp, state) = if model.within_boundary(&next) {
                    (fingerprint(&next), Some(next))
                } else {
                    (0, None)
                };
                succs.push(Succ {
                    fp,
                    parent: src,
                    action: ai as u32,
                    class,
                    state,
                });
            }
            if ctx.store_edges {
                out.edge_count.push((succs.len() - before) as u32);
            }
        }
        for succ in succs.drain(..) {
            let target = match succ.state {
                None => OUTSIDE,
                Some(state) => {
                    out.generated += 1;
                    let shard = shard_of(succ.fp);
                    match tables[shard].get(succ.fp) {
                        Some(id) => id,
                        None => {
                            out.buckets[shard].push(Cand {
                                fp: succ.fp,
                                parent: succ.parent,
                                action: succ.action,
                                state,
                            });
                            PENDING + shard as u32
                        }
                    }
                }
            };
            if ctx.store_edges {
                out.edges.push(Edge {
                    target,
                    class: succ.class,
                });
            }
        }
    }
    out
}

/// Phase B for one shard.
fn dedup_shard<M: Fairness>(
    ctx: &Ctx<'_, M>,
    table: &mut FpTable,
    buckets: Vec<Vec<Cand<M::State>>>,
    insert: bool,
) -> ShardOut<M::State> {
    let n: usize = buckets.iter().map(Vec::len).sum();
    let mut out = ShardOut {
        res: Vec::with_capacity(n),
        new: Vec::new(),
        ev: Vec::new(),
        best: vec![None; ctx.props.len()],
        blocked: false,
    };
    for cand in buckets.into_iter().flatten() {
        if !insert {
            match table.get(cand.fp) {
                Some(v) => out.res.push(v),
                None => {
                    out.res.push(OUTSIDE);
                    out.blocked = true;
                }
            }
            continue;
        }
        let local = out.new.len() as u32;
        let (v, inserted) = table.get_or_insert(cand.fp, PROV | local);
        out.res.push(v);
        if inserted {
            eval_state(ctx, &cand.state, cand.fp, local, &mut out.best, &mut out.ev);
            out.new.push(cand);
        }
    }
    out
}

/// Resumes a worker panic on the coordinating thread.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Runs the BFS. Never panics on its own; model panics propagate.
pub(crate) fn explore<M>(run: &Run<'_, M>, props: &[Property<M>]) -> Exploration
where
    M: Fairness + Sync,
    M::State: Clone + Hash + Send + Sync,
    M::Action: Clone + Send + Sync,
{
    let model = run.model;
    let opts = run.opts;
    let threads = opts.threads.max(1);
    let mut ev_index = vec![None; props.len()];
    let mut n_ev = 0usize;
    for (i, p) in props.iter().enumerate() {
        if p.expectation == Expectation::Eventually {
            ev_index[i] = Some(n_ev);
            n_ev += 1;
        }
    }
    let ev_words = n_ev.div_ceil(64);
    let store_edges = n_ev > 0;
    let interner = Mutex::new(Interner::default());
    let mut ctx = Ctx {
        model,
        props,
        active: vec![true; props.len()],
        ev_index: &ev_index,
        ev_words,
        store_edges,
        want_classes: store_edges && opts.fairness,
        interner: &interner,
    };
    let max_nodes = opts.limits.max_states.unwrap_or(usize::MAX).min(MAX_NODES);

    let mut g = Graph {
        tables: (0..SHARDS).map(|_| FpTable::new()).collect(),
        parent: Vec::new(),
        action: Vec::new(),
        level_start: Vec::new(),
        offsets: if store_edges { vec![0] } else { Vec::new() },
        edges: Vec::new(),
        class_raw: Vec::new(),
        ev_bits: vec![Vec::new(); n_ev],
    };
    let mut found: Vec<Option<Found>> = vec![None; props.len()];
    let mut total_states = 0usize;
    let mut edges = 0usize;
    let mut stop_reason: Option<String> = None;
    let mut exhausted = false;

    // Level 0: the initial states, in `init_states()` order.
    let mut frontier: Vec<M::State> = Vec::new();
    {
        let mut best = vec![None; props.len()];
        let mut ev = Vec::new();
        for (i, s) in model.init_states().into_iter().enumerate() {
            if !model.within_boundary(&s) {
                continue;
            }
            total_states += 1;
            let fp = fingerprint(&s);
            if g.tables[shard_of(fp)].get(fp).is_some() {
                continue;
            }
            if g.len() >= max_nodes {
                stop_reason = Some(state_limit_reason(opts, max_nodes));
                break;
            }
            let id = g.len() as u32;
            g.tables[shard_of(fp)].get_or_insert(fp, id);
            g.parent.push(NO_PARENT);
            g.action.push(i as u32);
            eval_state(&ctx, &s, fp, id, &mut best, &mut ev);
            frontier.push(s);
        }
        if !frontier.is_empty() {
            g.level_start.push(0);
        }
        push_ev_bits(&mut g, 0, &ev, ev_words);
        for (i, b) in best.iter().enumerate() {
            if let Some((fp, id)) = *b {
                found[i] = Some(Found { depth: 0, fp, id });
            }
        }
    }

    let mut depth = 0usize;
    let mut batch = 1024usize;
    let mut peak_frontier = frontier.len();
    let mut last_progress = Instant::now();
    let mut caches: Vec<IntMap<u64, u32>> = (0..threads).map(|_| IntMap::default()).collect();
    run.report_progress(g.len(), total_states, depth, "explore");

    'levels: while stop_reason.is_none() {
        if frontier.is_empty() {
            exhausted = true;
            break;
        }
        if opts.stop_when_decided && decided(props, &found) {
            break;
        }
        let depth_probe = opts.limits.max_depth.is_some_and(|d| depth >= d);
        let next_start = g.len() as u32;
        let mut next: Vec<M::State> = Vec::new();
        // Always/Sometimes properties are evaluated on depth+1 states unless already decided
        // at a smaller depth.
        for (i, a) in ctx.active.iter_mut().enumerate() {
            *a = found[i].filter(|f| f.depth <= depth).is_none();
        }
        let level_first = g.level_start.last().copied().unwrap_or(0);
        let level_len = frontier.len();
        // Sources are moved out batch by batch so that each batch's states are freed (in
        // parallel, see `run_batch`) as soon as it is done.
        let mut pending = std::mem::take(&mut frontier).into_iter();
        let mut pos = 0usize;
        while pos < level_len {
            if run.timed_out() {
                stop_reason = Some(run.timeout_reason());
                break 'levels;
            }
            let probe = depth_probe || g.len() >= max_nodes;
            let end = (pos + batch).min(level_len);
            let sources: Vec<M::State> = pending.by_ref().take(end - pos).collect();
            let t0 = Instant::now();
            let step = run_batch(
                &ctx,
                &mut g,
                sources,
                level_first + pos as u32,
                probe,
                max_nodes,
                threads,
                &mut caches,
                &mut next,
            );
            total_states += step.generated;
            edges += step.generated;
            for (i, b) in step.best.iter().enumerate() {
                if let Some((fp, id)) = *b {
                    let better = found[i]
                        .filter(|f| f.depth <= depth + 1 && f.fp <= fp)
                        .is_none();
                    if better {
                        found[i] = Some(Found {
                            depth: depth + 1,
                            fp,
                            id,
                        });
                    }
                }
            }
            if step.blocked {
                stop_reason = Some(if depth_probe {
                    format!("depth limit {}", opts.limits.max_depth.unwrap_or(depth))
                } else {
                    state_limit_reason(opts, max_nodes)
                });
                break 'levels;
            }
            pos = end;
            // Adapt the batch size to keep batches short but worth their overhead.
            let took = t0.elapsed();
            if took < BATCH_FAST {
                batch = (batch * 2).min(MAX_BATCH);
            } else if took > BATCH_SLOW {
                batch = (batch / 2).max(MIN_BATCH);
            }
            peak_frontier = peak_frontier.max(level_len - pos + next.len());
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                run.report_progress(g.len(), total_states, depth, "explore");
            }
        }
        if !next.is_empty() {
            g.level_start.push(next_start);
        }
        frontier = next;
        depth += 1;
    }
    g.class_raw = std::mem::take(&mut interner.lock().unwrap_or_else(|e| e.into_inner()).raw);
    g.edges.shrink_to_fit();
    g.offsets.shrink_to_fit();
    g.parent.shrink_to_fit();
    g.action.shrink_to_fit();
    run.report_progress(g.len(), total_states, depth, "explore");
    Exploration {
        graph: g,
        found,
        ev_index,
        exhausted,
        stop_reason,
        total_states,
        edges,
        peak_frontier,
    }
}

fn state_limit_reason(opts: &super::Options, max_nodes: usize) -> String {
    match opts.limits.max_states {
        Some(m) if m <= max_nodes => format!("state limit {m}"),
        _ => format!("node id space exhausted at {max_nodes} states"),
    }
}

/// Every property has a final verdict: each Always violated and each Sometimes witnessed at
/// a depth whose level is complete, and no Eventually property (which needs the full graph).
fn decided<M: Fairness>(props: &[Property<M>], found: &[Option<Found>]) -> bool {
    !props.is_empty()
        && props
            .iter()
            .zip(found)
            .all(|(p, f)| p.expectation != Expectation::Eventually && f.is_some())
}

/// Sets the eventually bits of the nodes `first..first + n` from per-state words.
fn push_ev_bits(g: &mut Graph, first: usize, ev: &[u64], ev_words: usize) {
    if ev_words == 0 {
        return;
    }
    let n = ev.len() / ev_words;
    for (e, bits) in g.ev_bits.iter_mut().enumerate() {
        bits.resize((first + n).div_ceil(64), 0);
        for k in 0..n {
            if ev[k * ev_words + e / 64] >> (e % 64) & 1 == 1 {
                let v = first + k;
                bits[v / 64] |= 1 << (v % 64);
            }
        }
    }
}

/// What one batch contributed.
struct BatchStep {
    generated: usize,
    /// Per property: best (fingerprint, node id) hit among this batch's new states.
    best: Vec<Option<(u64, u32)>>,
    blocked: bool,
}

/// Runs phases A, B and C on `sources` (node ids `first_id..`). New states are appended to
/// `next`. With `probe`, nothing is inserted: a new successor only sets `blocked`. The
/// sources are consumed: phase B's threads drop them, since freeing big states is a real
/// share of the work and would otherwise be serial.
#[allow(clippy::too_many_arguments)]
fn run_batch<M>(
    ctx: &Ctx<'_, M>,
    g: &mut Graph,
    sources: Vec<M::State>,
    first_id: u32,
    probe: bool,
    max_nodes: usize,
    threads: usize,
    caches: &mut [IntMap<u64, u32>],
    next: &mut Vec<M::State>,
) -> BatchStep
where
    M: Fairness + Sync,
    M::State: Hash + Send + Sync,
    M::Action: Send + Sync,
{
    let parallel = threads > 1 && sources.len() >= PARALLEL_MIN;

    // Phase A: expand.
    let chunk_len = if parallel {
        (sources.len() / (threads * 4)).max(16)
    } else {
        sources.len()
    };
    let n_chunks = sources.len().div_ceil(chunk_len);
    let tables = &g.tables;
    let mut chunks: Vec<ChunkOut<M::State>> = if parallel {
        let next_chunk = AtomicUsize::new(0);
        let work = |cache: &mut IntMap<u64, u32>| {
            let mut mine = Vec::new();
            loop {
                let c = next_chunk.fetch_add(1, Ordering::Relaxed);
                if c >= n_chunks {
                    break mine;
                }
                let lo = c * chunk_len;
                let hi = (lo + chunk_len).min(sources.len());
                let out = expand_chunk(ctx, tables, &sources[lo..hi], first_id + lo as u32, cache);
                mine.push((c, out));
            }
        };
        let work = &work;
        let mut all = std::thread::scope(|sc| {
            let (first, rest) = caches.split_at_mut(1);
            let handles: Vec<_> = rest[..threads - 1]
                .iter_mut()
                .map(|cache| sc.spawn(move || work(cache)))
                .collect();
            let mut all = work(&mut first[0]);
            for h in handles {
                all.extend(join(h));
            }
            all
        });
        all.sort_unstable_by_key(|(c, _)| *c);
        all.into_iter().map(|(_, out)| out).collect()
    } else {
        vec![expand_chunk(
            ctx,
            tables,
            &sources,
            first_id,
            &mut caches[0],
        )]
    };
    let generated: usize = chunks.iter().map(|c| c.generated).sum();

    // Phase B: dedup per shard, candidates in (chunk, source, action) order.
    let mut per_shard: Vec<Vec<Vec<Cand<M::State>>>> = (0..SHARDS)
        .map(|_| Vec::with_capacity(chunks.len()))
        .collect();
    for c in chunks.iter_mut() {
        for (s, b) in c.buckets.drain(..).enumerate() {
            if !b.is_empty() {
                per_shard[s].push(b);
            }
        }
    }
    let insert = !probe;
    let shard_outs: Vec<ShardOut<M::State>> = if parallel {
        let mut jobs: Vec<ShardJob<'_, M::State>> = g.tables.iter_mut().zip(per_shard).collect();
        let group = SHARDS.div_ceil(threads);
        // One part of the sources per thread, to be dropped there.
        let mut sources = sources;
        let per_part = sources.len().div_ceil(threads);
        let mut parts: Vec<Vec<M::State>> = Vec::with_capacity(threads);
        while sources.len() > per_part {
            parts.push(sources.split_off(sources.len() - per_part));
        }
        parts.push(sources);
        std::thread::scope(|sc| {
            let mut groups = jobs.chunks_mut(group);
            let mine = groups.next();
            let mut parts = parts.into_iter();
            let my_part = parts.next();
            let handles: Vec<_> = groups
                .map(|grp| {
                    let part = parts.next();
                    sc.spawn(move || {
                        let outs = grp
                            .iter_mut()
                            .map(|(t, b)| dedup_shard(ctx, t, std::mem::take(b), insert))
                            .collect::<Vec<_>>();
                        drop(part);
                        outs
                    })
                })
                .collect();
            let mut outs: Vec<ShardOut<M::State>> = mine
                .into_iter()
                .flat_map(|grp| grp.iter_mut())
                .map(|(t, b)| dedup_shard(ctx, t, std::mem::take(b), insert))
                .collect();
            drop(my_part);
            drop(parts);
            for h in handles {
                outs.extend(join(h));
            }
            outs
        })
    } else {
        drop(sources);
        g.tables
            .iter_mut()
            .zip(per_shard)
            .map(|(t, b)| dedup_shard(ctx, t, b, insert))
            .collect()
    };

    // Phase C: number the new states shard by shard, fix the tables, resolve edges.
    let mut blocked = shard_outs.iter().any(|o| o.blocked);
    let mut base = [0u32; SHARDS];
    let mut kept = [0u32; SHARDS];
    let mut best: Vec<Option<(u64, u32)>> = vec![None; ctx.props.len()];
    for (s, out) in shard_outs.iter().enumerate() {
        base[s] = g.len() as u32;
        let room = max_nodes.saturating_sub(g.len());
        let keep = out.new.len().min(room);
        if keep < out.new.len() {
            blocked = true;
        }
        kept[s] = keep as u32;
        for (i, b) in out.best.iter().enumerate() {
            if let Some((fp, local)) = *b {
                if local < kept[s] && best[i].filter(|&(bfp, _)| bfp <= fp).is_none() {
                    best[i] = Some((fp, base[s] + local));
                }
            }
        }
        let first = g.len();
        push_ev_bits(g, first, &out.ev[..keep * ctx.ev_words], ctx.ev_words);
        for c in &out.new[..keep] {
            let id = g.len() as u32;
            // Invariant: phase B inserted every new candidate into this shard's table.
            let ok = g.tables[s].set(c.fp, id);
            debug_assert!(ok, "new state missing from its shard table");
            g.parent.push(c.parent);
            g.action.push(c.action);
        }
    }
    // Move the kept states into the next frontier, in id order (shard by shard).
    let mut res: Vec<Vec<u32>> = Vec::with_capacity(SHARDS);
    for (s, out) in shard_outs.into_iter().enumerate() {
        next.extend(out.new.into_iter().take(kept[s] as usize).map(|c| c.state));
        res.push(out.res);
    }
    if ctx.store_edges {
        let mut cursor = [0usize; SHARDS];
        for c in &chunks {
            let mut e = 0usize;
            for &cnt in &c.edge_count {
                for _ in 0..cnt {
                    let Edge { target: t, class } = c.edges[e];
                    let resolved = if (PENDING..PENDING + SHARDS as u32).contains(&t) {
                        let s = (t - PENDING) as usize;
                        let r = res[s][cursor[s]];
                        cursor[s] += 1;
                        if r == OUTSIDE {
                            OUTSIDE
                        } else if r & PROV != 0 {
                            let local = r & !PROV;
                            if local < kept[s] {
                                base[s] + local
                            } else {
                                OUTSIDE
                            }
                        } else {
                            r
                        }
                    } else {
                        t
                    };
                    g.edges.push(Edge {
                        target: resolved,
                        class,
                    });
                    e += 1;
                }
                g.offsets.push(g.edges.len() as u64);
            }
        }
    }
    BatchStep {
        generated,
        best,
        blocked,
    }
}
