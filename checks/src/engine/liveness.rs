//! `eventually P` under weak fairness, on the explored graph.
//!
//! Let G¬P be the ¬P states reachable from an initial state through ¬P states only (once a
//! path meets a P state it satisfies the property). A behaviour never reaching P is either
//!
//! * **stuck**: it stays forever in a ¬P state where no fair action is enabled (with fairness
//!   off: no action at all) — nothing forces the system to move; or
//! * **a fair cycle** in G¬P. A nontrivial SCC is fair iff every fair class that is enabled
//!   in *every* state of the SCC labels some edge inside it. This whole-SCC test is exact for
//!   weak fairness: a cycle through every state and every internal edge of the SCC is fair
//!   when the test passes, and when it fails some class is enabled throughout any cycle of
//!   the SCC without being taken by any of them. With fairness off every nontrivial SCC
//!   counts.
//!
//! SCCs come from an iterative Tarjan (state graphs reach millions of states; the call stack
//! would not survive recursion). The counterexample is the nearest violating state from an
//! initial state (BFS inside G¬P), then for a cycle a walk inside the SCC, back to its start,
//! that is itself weakly fair (see the comment at its construction: taking every class that
//! is enabled throughout the SCC is not enough when the walk visits only part of it).

use super::explore::{Graph, OUTSIDE, UNFAIR};
use super::{Fairness, Run, PROGRESS_EVERY};
use std::collections::VecDeque;
use std::time::Instant;

/// A liveness violation in node ids.
pub(crate) enum Violation {
    /// `path[0]` is an initial node, `path.last()` is the stuck ¬P node; each node is a
    /// successor of the previous one.
    Stuck { path: Vec<u32> },
    /// `prefix` as for `Stuck`, ending at the loop node; `cycle` lists the following nodes
    /// with the class of the edge taken (when fairness is on), ending at the loop node.
    Lasso {
        prefix: Vec<u32>,
        cycle: Vec<(u32, Option<u32>)>,
    },
}

pub(crate) enum Outcome {
    Holds { sccs: usize },
    Violated { sccs: usize, violation: Violation },
    Aborted { reason: String },
}

const UNV: u32 = u32::MAX;

/// Fixed-size bitset over node ids.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    #[inline]
    fn get(&self, i: u32) -> bool {
        self.0[i as usize / 64] >> (i % 64) & 1 == 1
    }
    #[inline]
    fn set(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }
}

/// Analyses `eventually` property number `ev`. Requires an exhausted exploration.
pub(crate) fn analyse<M: Fairness>(run: &Run<'_, M>, g: &Graph, ev: usize) -> Outcome {
    let n = g.len();
    let fairness = run.opts.fairness;
    let class = |e: usize| g.class(e);
    let in_g = |w: u32| w != OUTSIDE && !g.holds(ev, w);
    let stuck_at = |v: u32| {
        let mut r = g.edge_range(v);
        if fairness {
            r.all(|e| g.class(e) == UNFAIR)
        } else {
            r.is_empty()
        }
    };
    // Initial nodes are exactly level 0, numbered in init_states() order.
    let level0_end = g.level_start.get(1).map_or(n as u32, |&s| s);
    let roots: Vec<u32> = (0..level0_end).filter(|&v| in_g(v)).collect();

    // --- Tarjan over G¬P. Per node `[dfs index, lowlink]` side by side (one cache miss per
    // visited edge target, not two); the lowlink becomes the component id once the node is
    // `done`.
    let mut node = vec![[UNV, 0u32]; n];
    let mut done = Bits::new(n);
    let mut stuck = Bits::new(n);
    let mut fair_member = Bits::new(n);
    let mut any_target = false;
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut counter = 0u32;
    let mut comps = 0u32;
    let mut sccs = 0usize;
    let mut ticks = 0u32;
    let mut last_progress = Instant::now();
    let mut scratch = ClassScratch {
        count: vec![0; g.class_raw.len()],
        stamp: vec![u32::MAX; g.class_raw.len()],
        epoch: 0,
    };

    for &root in &roots {
        if node[root as usize][0] != UNV {
            continue;
        }
        // Gives v its DFS number, pushes it on both stacks and notes whether it is stuck.
        macro_rules! visit {
            ($v:expr) => {{
                let v: u32 = $v;
                node[v as usize][0] = counter;
                node[v as usize][1] = counter;
                counter += 1;
                stack.push(v);
                call.push((v, g.edge_range(v).start));
                if stuck_at(v) {
                    stuck.set(v);
                    any_target = true;
                }
            }};
        }
        visit!(root);
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            ticks = ticks.wrapping_add(1);
            if ticks & 0xFFFF == 0 {
                if run.timed_out() {
                    return Outcome::Aborted {
                        reason: run.timeout_reason(),
                    };
                }
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                    run.report_progress(counter as usize, n, 0, "liveness");
                }
            }
            let end = g.edge_range(v).end;
            if *pos < end {
                let w = g.target(*pos);
                *pos += 1;
                if !in_g(w) {
                    continue;
                }
                if node[w as usize][0] == UNV {
                    visit!(w);
                } else if !done.get(w) {
                    // On the stack (visited, component not yet assigned).
                    let iw = node[w as usize][0];
                    let lv = &mut node[v as usize][1];
                    *lv = (*lv).min(iw);
                }
                continue;
            }
            call.pop();
            let lv = node[v as usize][1];
            if let Some(&(u, _)) = call.last() {
                let lu = &mut node[u as usize][1];
                *lu = (*lu).min(lv);
            }
            if lv != node[v as usize][0] {
                continue;
            }
            // v is the root of a component: it and everything above it on the stack.
            let k = stack.iter().rposition(|&x| x == v).unwrap_or_else(|| {
                unreachable!("Tarjan invariant: a component root is on the stack")
            });
            let comp = comps;
            comps += 1;
            for &m in &stack[k..] {
                done.set(m);
                node[m as usize][1] = comp;
            }
            let members = &stack[k..];
            let in_comp = |w: u32| w != OUTSIDE && done.get(w) && node[w as usize][1] == comp;
            if judge_scc(g, members, &in_comp, fairness, &mut sccs, &mut scratch) {
                for &m in members {
                    fair_member.set(m);
                }
                any_target = true;
            }
            stack.truncate(k);
        }
    }
    run.report_progress(counter as usize, n, 0, "liveness");
    if !any_target {
        return Outcome::Holds { sccs };
    }

    // --- Nearest violating node from an initial node, inside G¬P. A separate parent array
    // (the component ids in `node` are still needed for the cycle).
    let mut par = vec![UNV; n];
    let is_target = |v: u32| stuck.get(v) || fair_member.get(v);
    let mut found = None;
    let mut queue = VecDeque::new();
    for &r in &roots {
        if par[r as usize] == UNV {
            par[r as usize] = r;
            if is_target(r) {
                found = Some(r);
                break;
            }
            queue.push_back(r);
        }
    }
    'bfs: while found.is_none() {
        let Some(u) = queue.pop_front() else { break };
        for e in g.edge_range(u) {
            let w = g.target(e);
            if !in_g(w) || par[w as usize] != UNV {
                continue;
            }
            par[w as usize] = u;
            if is_target(w) {
                found = Some(w);
                break 'bfs;
            }
            queue.push_back(w);
        }
    }
    let Some(t) = found else {
        return Outcome::Aborted {
            reason: "internal error: liveness violation not reachable in G¬P".to_string(),
        };
    };
    let mut prefix = vec![t];
    let mut v = t;
    while par[v as usize] != v {
        v = par[v as usize];
        prefix.push(v);
    }
    prefix.reverse();
    if stuck.get(t) {
        return Outcome::Violated {
            sccs,
            violation: Violation::Stuck { path: prefix },
        };
    }

    // --- A fair cycle through t inside its SCC. Taking one edge of every class enabled in
    // the whole SCC is not enough: a cycle over part of the SCC may keep more classes enabled
    // throughout. So the walk tracks the classes enabled in every state it has visited
    // (`always`, only shrinks) and those it has taken (only grows), and keeps extending until
    // none is enabled-throughout-but-untaken, by heading for an edge of such a class or a
    // state where one is disabled (both exist because the SCC passed `judge_scc`).
    let comp = node[t as usize][1];
    let in_scc = |w: u32| w != OUTSIDE && done.get(w) && node[w as usize][1] == comp;
    let enabled = |v: u32, c: u32| g.edge_range(v).any(|e| g.class(e) == c);
    let mut always: Vec<u32> = if fairness {
        g.edge_range(t)
            .map(|e| g.class(e))
            .filter(|&c| c != UNFAIR)
            .collect()
    } else {
        Vec::new()
    };
    always.sort_unstable();
    always.dedup();
    let mut taken: Vec<u32> = Vec::new();
    let bpar = &mut par;
    bpar.fill(UNV);
    let mut touched: Vec<u32> = Vec::new();
    let mut cycle: Vec<(u32, Option<u32>)> = Vec::new();
    let mut cur = t;
    loop {
        if run.timed_out() {
            return Outcome::Aborted {
                reason: run.timeout_reason(),
            };
        }
        let pending: Vec<u32> = always
            .iter()
            .copied()
            .filter(|c| !taken.contains(c))
            .collect();
        let closing = pending.is_empty();
        if closing && cur == t && !cycle.is_empty() {
            break;
        }
        let goal = |e: usize, w: u32| {
            if closing {
                w == t
            } else {
                in_scc(w)
                    && (pending.binary_search(&class(e)).is_ok()
                        || pending.iter().any(|&c| !enabled(w, c)))
            }
        };
        let Some(path) = bfs_in_scc(g, cur, &in_scc, goal, bpar, &mut touched) else {
            return Outcome::Aborted {
                reason: "internal error: no fair cycle through a fair SCC".to_string(),
            };
        };
        for e in path {
            let w = g.target(e);
            let c = class(e);
            if c != UNFAIR && !taken.contains(&c) {
                taken.push(c);
            }
            always.retain(|&c| enabled(w, c));
            cycle.push((w, fairness.then_some(c)));
            cur = w;
        }
    }
    Outcome::Violated {
        sccs,
        violation: Violation::Lasso { prefix, cycle },
    }
}

/// Per-class counters reused across components (allocated once per analysis).
struct ClassScratch {
    /// Members of the current component in which the class is enabled.
    count: Vec<u32>,
    /// Last member (by `epoch`) that counted the class.
    stamp: Vec<u32>,
    /// Increments per member judged; at most one per node, so it never wraps.
    epoch: u32,
}

/// Decides whether a just-completed component is a violation (a nontrivial component that
/// is weakly fair as a whole). Counts nontrivial components in `sccs`.
fn judge_scc(
    g: &Graph,
    members: &[u32],
    in_comp: &dyn Fn(u32) -> bool,
    fairness: bool,
    sccs: &mut usize,
    scratch: &mut ClassScratch,
) -> bool {
    let first = members[0];
    let nontrivial = members.len() > 1 || g.edge_range(first).any(|e| g.target(e) == first);
    if !nontrivial {
        return false;
    }
    *sccs += 1;
    if !fairness {
        return true;
    }
    // Classes enabled in every state of the component (OUTSIDE edges and edges to P states
    // count: the action is enabled there even though its successor leaves G¬P). Counted per
    // class id with a per-member stamp so each member counts a class once; no allocation per
    // member, as components can hold millions of states.
    let count = &mut scratch.count;
    let mut touched: Vec<u32> = Vec::new();
    for &m in members {
        let epoch = scratch.epoch;
        scratch.epoch += 1;
        for e in g.edge_range(m) {
            let c = g.class(e);
            if c != UNFAIR && scratch.stamp[c as usize] != epoch {
                scratch.stamp[c as usize] = epoch;
                if count[c as usize] == 0 {
                    touched.push(c);
                }
                count[c as usize] += 1;
            }
        }
    }
    let all = members.len() as u32;
    let mut left = touched
        .iter()
        .filter(|&&c| count[c as usize] == all)
        .count();
    // Each must label an edge inside the component.
    'scan: for &m in members {
        for e in g.edge_range(m) {
            if left == 0 {
                break 'scan;
            }
            if !in_comp(g.target(e)) {
                continue;
            }
            let c = g.class(e);
            if c != UNFAIR && count[c as usize] == all {
                // Mark as taken by moving the count out of reach.
                count[c as usize] = all + 1;
                left -= 1;
            }
        }
    }
    for c in touched {
        count[c as usize] = 0;
    }
    left == 0
}

/// BFS from `start` through nodes accepted by `in_scc`, until an edge `e` (to `w`) with
/// `goal(e, w)`. Returns the edge positions of the path, ending with that edge. `bpar` is
/// an all-`UNV` scratch array (restored before returning).
fn bfs_in_scc(
    g: &Graph,
    start: u32,
    in_scc: &dyn Fn(u32) -> bool,
    goal: impl Fn(usize, u32) -> bool,
    bpar: &mut [u32],
    touched: &mut Vec<u32>,
) -> Option<Vec<usize>> {
    let mut queue = VecDeque::from([start]);
    bpar[start as usize] = start;
    touched.push(start);
    let mut hit = None;
    'bfs: while let Some(u) = queue.pop_front() {
        for e in g.edge_range(u) {
            let w = g.target(e);
            if goal(e, w) {
                hit = Some((u, e));
                break 'bfs;
            }
            if in_scc(w) && bpar[w as usize] == UNV {
                bpar[w as usize] = u;
                touched.push(w);
                queue.push_back(w);
            }
        }
    }
    let result = hit.map(|(u, last)| {
        let mut nodes = vec![u];
        let mut v = u;
        while v != start {
            v = bpar[v as usize];
            nodes.push(v);
        }
        nodes.reverse();
        let mut edges: Vec<usize> = nodes
            .windows(2)
            .map(|p| {
                // Invariant: bpar[p[1]] = p[0] was set while scanning an edge p[0] → p[1].
                g.edge_range(p[0])
                    .find(|&e| g.target(e) == p[1])
                    .unwrap_or_else(|| unreachable!("BFS parent edge vanished"))
            })
            .collect();
        edges.push(last);
        edges
    });
    for v in touched.drain(..) {
        bpar[v as usize] = UNV;
    }
    result
}
