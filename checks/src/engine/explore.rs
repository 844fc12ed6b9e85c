//! Level-synchronous, batched, parallel BFS that builds the state graph.
//!
//! The frontier of depth `d` is processed in batches of source states. Node ids are given in
//! *discovery order* — the order of a sequential BFS: source by source (in id order), action
//! by action, a new state taking the next id — whatever the thread count, so every parent,
//! edge and tie-break is the same with one thread as with many.
//!
//! * **One thread** (or a small batch): each source is expanded, each in-boundary successor
//!   fingerprinted and looked up at once; a duplicate is dropped on the spot and a new state
//!   is stored, its properties evaluated, and moved into the next frontier while its memory
//!   is still in cache. Each source is dropped right after its expansion.
//! * **Several threads**: phase A expands chunks of the batch in parallel against the
//!   (read-only) tables: known successors become resolved edges and are dropped at once;
//!   the others are kept once per fingerprint per chunk, their properties evaluated while
//!   hot. Phase C, on the coordinating thread, walks the candidates in global (chunk,
//!   source, action) order and stores them exactly as the sequential path would.
//!
//! Only two BFS levels of states are alive at once, and those are packed (module `pack`: a
//! few words per state naming entries of a dictionary shared by the level); a state is
//! rebuilt right before its expansion. Everything else is 12 bytes of table slot, a parent
//! and an action index per state, and 8 bytes per edge when liveness needs the edges.

use super::blocks::BlockVec;
use super::hash::{shard_of, IntMap, SHARDS};
use super::pack::Codec;
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
/// Largest number of nodes: ids stay clear of the phase-A candidate tag (`CAND`, bit 31).
const MAX_NODES: usize = (1 << 31) - 1;

/// Bounds on the number of source states per batch, which adapts so a batch takes between
/// `BATCH_FAST` and `BATCH_SLOW`: short enough for timely progress reports and timeouts,
/// long enough to amortise spawning the phase threads.
const MIN_BATCH: usize = 64;
const MAX_BATCH: usize = 1 << 16;
const BATCH_FAST: Duration = Duration::from_millis(15);
const BATCH_SLOW: Duration = Duration::from_millis(60);
/// Below this many sources a batch runs on the coordinating thread alone.
const PARALLEL_MIN: usize = 128;

/// Consecutive states of a level packed by one codec.
struct Piece {
    /// Index of the codec in [`Level::codecs`].
    codec: usize,
    words: Vec<u32>,
    /// Where each state's words start; a state ends where the next one starts.
    starts: Vec<u32>,
}

impl Piece {
    fn new(codec: usize) -> Self {
        Piece {
            codec,
            words: Vec::new(),
            starts: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    fn span(&self, k: usize) -> std::ops::Range<usize> {
        let end = self
            .starts
            .get(k + 1)
            .map_or(self.words.len(), |&e| e as usize);
        self.starts[k] as usize..end
    }

    #[inline]
    fn push<S>(&mut self, codec: &mut dyn Codec<S>, s: S, hints: &[u64]) {
        self.starts.push(self.words.len() as u32);
        codec.pack(s, hints, &mut self.words);
    }

    /// Keeps only the states whose `keep` flag is set, in order.
    fn retain(&mut self, keep: &[bool]) {
        if keep.iter().all(|&k| k) {
            return;
        }
        let mut words = Vec::new();
        let mut starts = Vec::new();
        for (k, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
            starts.push(words.len() as u32);
            words.extend_from_slice(&self.words[self.span(k)]);
        }
        self.words = words;
        self.starts = starts;
    }

    fn bytes(&self) -> usize {
        (self.words.capacity() + self.starts.capacity()) * 4
    }
}

/// The states of one BFS level in id order, packed (see module `pack`).
pub(crate) struct Level<S> {
    /// One codec per worker thread: a worker packs the states it discovers with its own.
    codecs: Vec<Box<dyn Codec<S>>>,
    pieces: Vec<Piece>,
    len: usize,
}

impl<S> Level<S> {
    fn new(codecs: Vec<Box<dyn Codec<S>>>) -> Self {
        Level {
            codecs,
            pieces: Vec::new(),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push_piece(&mut self, p: Piece) {
        if p.len() > 0 {
            self.len += p.len();
            self.pieces.push(p);
        }
    }

    /// The states at positions `from..to`, rebuilt one at a time, each with the codec that
    /// packed it (which fingerprints its successors fastest: they share its parts).
    fn states(&self, from: usize, to: usize) -> impl Iterator<Item = (S, &dyn Codec<S>)> + '_ {
        // Find the piece holding `from`.
        let mut piece = 0;
        let mut base = 0;
        while piece < self.pieces.len() && base + self.pieces[piece].len() <= from {
            base += self.pieces[piece].len();
            piece += 1;
        }
        let mut k = from - base;
        (from..to).map(move |_| {
            while k >= self.pieces[piece].len() {
                k = 0;
                piece += 1;
            }
            let p = &self.pieces[piece];
            let codec = self.codecs[p.codec].as_ref();
            let s = codec.unpack(&p.words[p.span(k)]);
            k += 1;
            (s, codec)
        })
    }

    /// Heap bytes of the packed states and their dictionaries.
    fn bytes(&self) -> usize {
        self.pieces.iter().map(Piece::bytes).sum::<usize>()
            + self.codecs.iter().map(|c| c.bytes()).sum::<usize>()
    }
}

/// One transition of the graph.
#[derive(Clone, Copy, Debug)]
struct Edge {
    /// Node id or [`OUTSIDE`].
    target: u32,
    /// Interned fairness class, [`UNFAIR`] for `None` (and for every edge when fairness is
    /// off).
    class: u32,
}

/// An edge as stored: 6 bytes, the class id in 16 bits ([`CLASS_UNFAIR`],
/// [`CLASS_SPILLED`] or the id itself). Per-edge storage is most of the graph's memory
/// (~4 edges per state on Petrel's scenarios), and class ids rarely reach 2^16.
#[derive(Clone, Copy)]
#[repr(C, packed)]
struct PackedEdge {
    target: u32,
    class: u16,
}

const CLASS_UNFAIR: u16 = u16::MAX;
const CLASS_SPILLED: u16 = u16::MAX - 1;

/// Edge offsets per node: a 64-bit base per block of nodes and a 32-bit offset from it per
/// node (4 bytes per state instead of 8).
#[derive(Default)]
struct Offsets {
    base: Vec<u64>,
    rel: BlockVec<u32>,
}

/// Nodes per `Offsets` base.
const OFFSET_BLOCK_BITS: u32 = 16;

impl Offsets {
    fn len(&self) -> usize {
        self.rel.len()
    }

    fn push(&mut self, off: u64) {
        let i = self.rel.len();
        if i & ((1 << OFFSET_BLOCK_BITS) - 1) == 0 {
            self.base.push(off);
        }
        let rel = off - self.base[i >> OFFSET_BLOCK_BITS];
        self.rel.push(
            u32::try_from(rel).expect("fewer than 2^32 edges per 65536 states (2^16 per state)"),
        );
    }

    #[inline]
    fn get(&self, i: usize) -> u64 {
        self.base[i >> OFFSET_BLOCK_BITS] + self.rel[i] as u64
    }

    fn bytes(&self) -> usize {
        self.base.capacity() * 8 + self.rel.bytes()
    }

    fn shrink_to_fit(&mut self) {
        self.rel.shrink_to_fit();
    }
}

/// The explored state graph.
pub(crate) struct Graph {
    /// Fingerprint → node id, one table per shard ([`shard_of`]).
    pub(crate) tables: Vec<FpTable>,
    /// Parent node (BFS tree) or [`NO_PARENT`] for initial states.
    pub(crate) parent: BlockVec<u32>,
    /// Index into the parent's `actions()` list, or into `init_states()` for initial states.
    pub(crate) action: BlockVec<u32>,
    /// First node id of each depth; ids are assigned level by level.
    pub(crate) level_start: Vec<u32>,
    /// CSR: edges of node `v` are `offsets(v)..offsets(v + 1)` (nodes never expanded have
    /// none). Empty unless an `eventually` property needs the graph.
    offsets: Offsets,
    /// Edges in `actions()` order per node (target and class side by side: liveness reads
    /// both for every node it visits, and one cache miss is cheaper than two).
    edges: BlockVec<PackedEdge>,
    /// Classes of the edges whose class id does not fit a `PackedEdge` ([`CLASS_SPILLED`]).
    class_spill: IntMap<u64, u32>,
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
        self.tables[shard_of(fp)].get(fp)
    }

    /// Depth (BFS level) of a node.
    pub(crate) fn depth(&self, id: u32) -> usize {
        self.level_start
            .partition_point(|&s| s <= id)
            .saturating_sub(1)
    }

    /// Edge positions of node `v`.
    #[inline]
    pub(crate) fn edge_range(&self, v: u32) -> std::ops::Range<usize> {
        let v = v as usize;
        if v + 1 < self.offsets.len() {
            self.offsets.get(v) as usize..self.offsets.get(v + 1) as usize
        } else {
            0..0
        }
    }

    /// Number of edges stored.
    pub(crate) fn n_edges(&self) -> usize {
        self.edges.len()
    }

    /// Target of edge `e`: a node id or [`OUTSIDE`].
    #[inline]
    pub(crate) fn target(&self, e: usize) -> u32 {
        let p = self.edges[e];
        p.target
    }

    /// Interned fairness class of edge `e`, [`UNFAIR`] for none.
    #[inline]
    pub(crate) fn class(&self, e: usize) -> u32 {
        let p = self.edges[e];
        match p.class {
            CLASS_UNFAIR => UNFAIR,
            CLASS_SPILLED => self.class_spill[&(e as u64)],
            c => c as u32,
        }
    }

    fn push_edge(&mut self, e: Edge) {
        let class = if e.class == UNFAIR {
            CLASS_UNFAIR
        } else if e.class < CLASS_SPILLED as u32 {
            e.class as u16
        } else {
            self.class_spill.insert(self.edges.len() as u64, e.class);
            CLASS_SPILLED
        };
        self.edges.push(PackedEdge {
            target: e.target,
            class,
        });
    }

    /// Ends the edge list of the node just expanded.
    fn end_node(&mut self) {
        self.offsets.push(self.edges.len() as u64);
    }

    /// Whether `eventually` property number `ev` holds in node `v`.
    pub(crate) fn holds(&self, ev: usize, v: u32) -> bool {
        let v = v as usize;
        self.ev_bits[ev][v / 64] >> (v % 64) & 1 == 1
    }

    /// Bytes of the per-state structures, from their capacities.
    pub(crate) fn state_bytes(&self) -> usize {
        self.tables.iter().map(FpTable::bytes).sum::<usize>()
            + self.parent.bytes()
            + self.action.bytes()
            + self.level_start.capacity() * 4
            + self.offsets.bytes()
            + self.ev_bits.iter().map(|b| b.capacity() * 8).sum::<usize>()
    }

    /// Bytes of the per-edge structures, from their capacities.
    pub(crate) fn edge_bytes(&self) -> usize {
        self.edges.bytes() + self.class_spill.capacity() * 16
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
    pub(crate) peak_frontier_bytes: usize,
}

/// A successor that was not in the tables when its batch started (parallel path), first
/// occurrence within its chunk. Its state is packed in the chunk's piece, in order.
struct Cand {
    fp: u64,
    parent: u32,
    action: u32,
}

/// Output of phase A for one chunk of sources (parallel path).
struct ChunkOut {
    /// Edge count per source (only when edges are stored).
    edge_count: Vec<u32>,
    /// Edges whose target is encoded: node id, [`OUTSIDE`], or `CAND | k` for `cands[k]`.
    edges: Vec<Edge>,
    /// New-looking successors in (source, action) order, each fingerprint once.
    cands: Vec<Cand>,
    /// Their states, packed by the worker's codec.
    piece: Piece,
    /// `words` property words per candidate (see [`eval_bits`]).
    bits: Vec<u64>,
    /// In-boundary successors generated.
    generated: usize,
}

/// Edge-target tag of phase A: index of a candidate of the same chunk.
const CAND: u32 = 1 << 31;

/// Fairness-class interner shared by phase-A workers; each worker keeps a local cache in
/// front of it, so the lock is taken once per class per worker.
#[derive(Default)]
struct Interner {
    ids: IntMap<u64, u32>,
    raw: Vec<u64>,
}

/// Read-only data of a batch.
struct Ctx<'a, M: Fairness> {
    model: &'a M,
    props: &'a [Property<M>],
    /// Per property: still being evaluated (for Always/Sometimes).
    active: Vec<bool>,
    ev_index: &'a [Option<usize>],
    /// Words of property bits per state: `props.len().div_ceil(64)`.
    words: usize,
    store_edges: bool,
    want_classes: bool,
    interner: &'a Mutex<Interner>,
}

/// Evaluates the properties on a new state, appending `ctx.words` words to `out`: bit `i`
/// is set when property `i` is *hit* — an active Always violated, an active Sometimes
/// witnessed, an Eventually's condition true. Done where the state was just built (its
/// memory still in cache).
fn eval_bits<M: Fairness>(ctx: &Ctx<'_, M>, state: &M::State, out: &mut Vec<u64>) {
    let base = out.len();
    out.resize(base + ctx.words, 0);
    for (i, p) in ctx.props.iter().enumerate() {
        let hit = match p.expectation {
            Expectation::Eventually => (p.condition)(ctx.model, state),
            Expectation::Always => ctx.active[i] && !(p.condition)(ctx.model, state),
            Expectation::Sometimes => ctx.active[i] && (p.condition)(ctx.model, state),
        };
        if hit {
            out[base + i / 64] |= 1 << (i % 64);
        }
    }
}

/// Records the property bits of new node `id` (fingerprint `fp`): its eventually bits, and
/// the smallest-fingerprint hit per Always/Sometimes property in `best`.
fn apply_bits<M: Fairness>(
    ctx: &Ctx<'_, M>,
    g: &mut Graph,
    id: u32,
    fp: u64,
    bits: &[u64],
    best: &mut [Option<(u64, u32)>],
) {
    for (i, p) in ctx.props.iter().enumerate() {
        let hit = bits[i / 64] >> (i % 64) & 1 == 1;
        match p.expectation {
            Expectation::Eventually => {
                if let Some(e) = ctx.ev_index[i] {
                    let v = id as usize;
                    let b = &mut g.ev_bits[e];
                    if b.len() <= v / 64 {
                        b.resize(v / 64 + 1, 0);
                    }
                    if hit {
                        b[v / 64] |= 1 << (v % 64);
                    }
                }
            }
            _ => {
                if hit && best[i].filter(|&(bfp, _)| bfp <= fp).is_none() {
                    best[i] = Some((fp, id));
                }
            }
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

/// Fairness class of `a` in `s`, interned ([`UNFAIR`] when not wanted).
#[inline]
fn class_of<M: Fairness>(
    ctx: &Ctx<'_, M>,
    cache: &mut IntMap<u64, u32>,
    s: &M::State,
    a: &M::Action,
) -> u32 {
    if !ctx.want_classes {
        return UNFAIR;
    }
    match ctx.model.fair_class(s, a) {
        Some(raw) => intern(ctx.interner, cache, raw),
        None => UNFAIR,
    }
}

/// What one batch contributed.
#[derive(Default)]
struct BatchStep {
    generated: usize,
    /// Per property: best (fingerprint, node id) hit among this batch's new states.
    best: Vec<Option<(u64, u32)>>,
    blocked: bool,
}

/// Stores a successor that is not yet in the tables, unless `probe` or the state limit
/// forbids it (then `None` and the batch is blocked). Node ids follow discovery order: the
/// order of a sequential BFS (source by source, action by action), whatever the thread count.
#[inline]
fn insert_new(
    g: &mut Graph,
    fp: u64,
    parent: u32,
    action: u32,
    probe: bool,
    max_nodes: usize,
) -> Slot {
    let shard = shard_of(fp);
    if probe || g.len() >= max_nodes {
        return match g.tables[shard].get(fp) {
            Some(id) => Slot::Known(id),
            None => Slot::Blocked,
        };
    }
    let id = g.len() as u32;
    let (v, inserted) = g.tables[shard].get_or_insert(fp, id);
    if inserted {
        g.parent.push(parent);
        g.action.push(action);
        Slot::New(id)
    } else {
        Slot::Known(v)
    }
}

/// Outcome of [`insert_new`].
enum Slot {
    /// Already stored under this id.
    Known(u32),
    /// Stored now under this id.
    New(u32),
    /// New, but a limit forbids storing it.
    Blocked,
}

/// Sequential path: expands the states at positions `from..to` of `cur` (node ids
/// `first_id..`) one at a time, storing each new successor at once (packed into `piece`)
/// and dropping each duplicate and each source as soon as it is done with (while its memory
/// is still in cache).
#[allow(clippy::too_many_arguments)]
fn expand_seq<M>(
    ctx: &Ctx<'_, M>,
    g: &mut Graph,
    cur: &Level<M::State>,
    (from, to): (usize, usize),
    first_id: u32,
    probe: bool,
    max_nodes: usize,
    cache: &mut IntMap<u64, u32>,
    codec: &mut dyn Codec<M::State>,
    piece: &mut Piece,
    step: &mut BatchStep,
) where
    M: Fairness,
    M::State: Hash,
{
    let model = ctx.model;
    let mut actions = Vec::new();
    let mut bits = Vec::with_capacity(ctx.words);
    let mut hints = Vec::new();
    for (k, (s, src_codec)) in cur.states(from, to).enumerate() {
        let src = first_id + k as u32;
        actions.clear();
        model.actions(&s, &mut actions);
        for (ai, a) in actions.drain(..).enumerate() {
            // fair_class must see the action before next_state consumes it.
            let class = class_of(ctx, cache, &s, &a);
            let Some(succ) = model.next_state(&s, a) else {
                continue;
            };
            let target = if model.within_boundary(&succ) {
                step.generated += 1;
                let fp = src_codec.fingerprint(&succ, &mut hints);
                match insert_new(g, fp, src, ai as u32, probe, max_nodes) {
                    Slot::Known(id) => id,
                    Slot::Blocked => {
                        step.blocked = true;
                        OUTSIDE
                    }
                    Slot::New(id) => {
                        bits.clear();
                        eval_bits(ctx, &succ, &mut bits);
                        apply_bits(ctx, g, id, fp, &bits, &mut step.best);
                        piece.push(codec, succ, &hints);
                        id
                    }
                }
            } else {
                OUTSIDE
            };
            if ctx.store_edges {
                g.push_edge(Edge { target, class });
            }
        }
        if ctx.store_edges {
            g.end_node();
        }
    }
}

/// Phase A of the parallel path for one chunk: the states at positions `from..to` of `cur`
/// have node ids `first_id..`. Successors already in the tables become resolved edges and
/// are dropped at once; the others are kept once per fingerprint (packed with `codec`),
/// their properties evaluated while they are hot.
#[allow(clippy::too_many_arguments)]
fn expand_chunk<M>(
    ctx: &Ctx<'_, M>,
    tables: &[FpTable],
    cur: &Level<M::State>,
    (from, to): (usize, usize),
    first_id: u32,
    cache: &mut IntMap<u64, u32>,
    local: &mut IntMap<u64, u32>,
    codec: &mut dyn Codec<M::State>,
    codec_index: usize,
) -> ChunkOut
where
    M: Fairness,
    M::State: Hash,
{
    let model = ctx.model;
    let mut out = ChunkOut {
        edge_count: Vec::with_capacity(if ctx.store_edges { to - from } else { 0 }),
        edges: Vec::new(),
        cands: Vec::new(),
        piece: Piece::new(codec_index),
        bits: Vec::new(),
        generated: 0,
    };
    local.clear();
    let mut actions = Vec::new();
    let mut hints = Vec::new();
    for (k, (s, src_codec)) in cur.states(from, to).enumerate() {
        let src = first_id + k as u32;
        actions.clear();
        model.actions(&s, &mut actions);
        let before = out.edges.len();
        for (ai, a) in actions.drain(..).enumerate() {
            let class = class_of(ctx, cache, &s, &a);
            let Some(succ) = model.next_state(&s, a) else {
                continue;
            };
            let target = if model.within_boundary(&succ) {
                out.generated += 1;
                let fp = src_codec.fingerprint(&succ, &mut hints);
                match tables[shard_of(fp)].get(fp) {
                    Some(id) => id,
                    None => {
                        let n = out.cands.len() as u32;
                        let c = *local.entry(fp).or_insert(n);
                        if c == n {
                            eval_bits(ctx, &succ, &mut out.bits);
                            out.cands.push(Cand {
                                fp,
                                parent: src,
                                action: ai as u32,
                            });
                            out.piece.push(codec, succ, &hints);
                        }
                        CAND | c
                    }
                }
            } else {
                OUTSIDE
            };
            if ctx.store_edges {
                out.edges.push(Edge { target, class });
            }
        }
        if ctx.store_edges {
            out.edge_count.push((out.edges.len() - before) as u32);
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

/// Parallel path: phase A (expand) on `threads` threads over chunks of positions
/// `from..to` of `cur`, then phase C on this thread: candidates in global (chunk, source,
/// action) order are stored or resolved exactly as [`expand_seq`] would, so ids, parents and
/// edges are the same.
#[allow(clippy::too_many_arguments)]
fn expand_par<M>(
    ctx: &Ctx<'_, M>,
    g: &mut Graph,
    cur: &Level<M::State>,
    (from, to): (usize, usize),
    first_id: u32,
    probe: bool,
    max_nodes: usize,
    threads: usize,
    caches: &mut [IntMap<u64, u32>],
    locals: &mut [IntMap<u64, u32>],
    next: &mut Level<M::State>,
    step: &mut BatchStep,
) where
    M: Fairness + Sync,
    M::State: Hash + Send + Sync,
    M::Action: Send + Sync,
{
    let n = to - from;
    let chunk_len = (n / (threads * 4)).max(16);
    let n_chunks = n.div_ceil(chunk_len);
    let tables = &g.tables;
    let next_chunk = AtomicUsize::new(0);
    let work = |cache: &mut IntMap<u64, u32>,
                local: &mut IntMap<u64, u32>,
                codec: &mut Box<dyn Codec<M::State>>,
                codec_index: usize| {
        let mut mine = Vec::new();
        loop {
            let c = next_chunk.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break mine;
            }
            let a = from + c * chunk_len;
            let b = (a + chunk_len).min(to);
            let out = expand_chunk(
                ctx,
                tables,
                cur,
                (a, b),
                first_id + (c * chunk_len) as u32,
                cache,
                local,
                codec.as_mut(),
                codec_index,
            );
            mine.push((c, out));
        }
    };
    let work = &work;
    let mut chunks = std::thread::scope(|sc| {
        let (c0, crest) = caches.split_at_mut(1);
        let (l0, lrest) = locals.split_at_mut(1);
        let (k0, krest) = next.codecs.split_at_mut(1);
        let handles: Vec<_> = crest[..threads - 1]
            .iter_mut()
            .zip(lrest.iter_mut())
            .zip(krest.iter_mut())
            .enumerate()
            .map(|(i, ((cache, local), codec))| sc.spawn(move || work(cache, local, codec, i + 1)))
            .collect();
        let mut all = work(&mut c0[0], &mut l0[0], &mut k0[0], 0);
        for h in handles {
            all.extend(join(h));
        }
        all
    });
    chunks.sort_unstable_by_key(|(c, _)| *c);

    // Phase C.
    let w = ctx.words;
    let mut res: Vec<u32> = Vec::new();
    let mut keep: Vec<bool> = Vec::new();
    for (_, mut c) in chunks {
        step.generated += c.generated;
        res.clear();
        keep.clear();
        for (k, cand) in c.cands.iter().enumerate() {
            let (r, new) = match insert_new(g, cand.fp, cand.parent, cand.action, probe, max_nodes)
            {
                Slot::Known(id) => (id, false),
                Slot::Blocked => {
                    step.blocked = true;
                    (OUTSIDE, false)
                }
                Slot::New(id) => {
                    apply_bits(
                        ctx,
                        g,
                        id,
                        cand.fp,
                        &c.bits[k * w..(k + 1) * w],
                        &mut step.best,
                    );
                    (id, true)
                }
            };
            res.push(r);
            keep.push(new);
        }
        c.piece.retain(&keep);
        next.push_piece(c.piece);
        if ctx.store_edges {
            let mut e = 0usize;
            for &cnt in &c.edge_count {
                for edge in &c.edges[e..e + cnt as usize] {
                    let target = if edge.target != OUTSIDE && edge.target & CAND != 0 {
                        res[(edge.target & !CAND) as usize]
                    } else {
                        edge.target
                    };
                    g.push_edge(Edge {
                        target,
                        class: edge.class,
                    });
                }
                e += cnt as usize;
                g.end_node();
            }
        }
    }
}

/// Runs the BFS. Never panics on its own; model panics propagate.
pub(crate) fn explore<M>(run: &Run<'_, M>, props: &[Property<M>]) -> Exploration
where
    M: Fairness + Sync,
    M::State: Clone + Hash + Send + Sync + 'static,
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
    let store_edges = n_ev > 0;
    let interner = Mutex::new(Interner::default());
    let mut ctx = Ctx {
        model,
        props,
        active: vec![true; props.len()],
        ev_index: &ev_index,
        words: props.len().div_ceil(64),
        store_edges,
        want_classes: store_edges && opts.fairness,
        interner: &interner,
    };
    let max_nodes = opts.limits.max_states.unwrap_or(usize::MAX).min(MAX_NODES);

    let mut g = Graph {
        tables: (0..SHARDS).map(|_| FpTable::new()).collect(),
        parent: BlockVec::default(),
        action: BlockVec::default(),
        level_start: Vec::new(),
        offsets: Offsets::default(),
        edges: BlockVec::default(),
        class_spill: IntMap::default(),
        class_raw: Vec::new(),
        ev_bits: vec![Vec::new(); n_ev],
    };
    if store_edges {
        g.offsets.push(0);
    }
    let mut found: Vec<Option<Found>> = vec![None; props.len()];
    let mut total_states = 0usize;
    let mut edges = 0usize;
    let mut stop_reason: Option<String> = None;
    let mut exhausted = false;

    let new_level = || Level::new((0..threads).map(|_| model.codec()).collect());
    // Level 0: the initial states, in `init_states()` order.
    let mut frontier: Level<M::State> = new_level();
    {
        let mut piece = Piece::new(0);
        let mut hints = Vec::new();
        let mut best = vec![None; props.len()];
        let mut bits = Vec::new();
        for (i, s) in model.init_states().into_iter().enumerate() {
            if !model.within_boundary(&s) {
                continue;
            }
            total_states += 1;
            let fp = frontier.codecs[0].fingerprint(&s, &mut hints);
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
            bits.clear();
            eval_bits(&ctx, &s, &mut bits);
            apply_bits(&ctx, &mut g, id, fp, &bits, &mut best);
            piece.push(frontier.codecs[0].as_mut(), s, &hints);
        }
        frontier.push_piece(piece);
        if !frontier.is_empty() {
            g.level_start.push(0);
        }
        for (i, b) in best.iter().enumerate() {
            if let Some((fp, id)) = *b {
                found[i] = Some(Found { depth: 0, fp, id });
            }
        }
    }

    let mut depth = 0usize;
    let mut batch = 1024usize;
    let mut peak_frontier = frontier.len();
    let mut peak_frontier_bytes = frontier.bytes();
    let mut last_progress = Instant::now();
    let mut caches: Vec<IntMap<u64, u32>> = (0..threads).map(|_| IntMap::default()).collect();
    let mut locals: Vec<IntMap<u64, u32>> = (0..threads).map(|_| IntMap::default()).collect();
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
        let mut next: Level<M::State> = new_level();
        // Always/Sometimes properties are evaluated on depth+1 states unless already decided
        // at a smaller depth.
        for (i, a) in ctx.active.iter_mut().enumerate() {
            *a = found[i].filter(|f| f.depth <= depth).is_none();
        }
        let level_first = g.level_start.last().copied().unwrap_or(0);
        let level_len = frontier.len();
        let mut pos = 0usize;
        while pos < level_len {
            if run.timed_out() {
                stop_reason = Some(run.timeout_reason());
                break 'levels;
            }
            let end = (pos + batch).min(level_len);
            let t0 = Instant::now();
            let mut step = BatchStep {
                best: vec![None; props.len()],
                ..BatchStep::default()
            };
            let first_id = level_first + pos as u32;
            if threads > 1 && end - pos >= PARALLEL_MIN {
                expand_par(
                    &ctx,
                    &mut g,
                    &frontier,
                    (pos, end),
                    first_id,
                    depth_probe,
                    max_nodes,
                    threads,
                    &mut caches,
                    &mut locals,
                    &mut next,
                    &mut step,
                );
            } else {
                let mut piece = Piece::new(0);
                expand_seq(
                    &ctx,
                    &mut g,
                    &frontier,
                    (pos, end),
                    first_id,
                    depth_probe,
                    max_nodes,
                    &mut caches[0],
                    next.codecs[0].as_mut(),
                    &mut piece,
                    &mut step,
                );
                next.push_piece(piece);
            }
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
            peak_frontier = peak_frontier.max(level_len + next.len());
            peak_frontier_bytes = peak_frontier_bytes.max(frontier.bytes() + next.bytes());
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
        peak_frontier_bytes,
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
