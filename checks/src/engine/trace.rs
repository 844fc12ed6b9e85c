//! Counterexample reconstruction by replay.
//!
//! The graph keeps no full states, so a path is rebuilt by re-running the model from an
//! initial state: along BFS parents with the stored action indices, or along graph edges by
//! searching the actions of each state for one that reaches the next node. Every replayed
//! state is fingerprinted and must map to the expected node; otherwise the model is not
//! deterministic (`actions()` order or `next_state()` varies between calls) or two states
//! collided, and we return an error rather than a trace that was never explored.

use super::explore::{Graph, NO_PARENT, UNFAIR};
use super::liveness::Violation;
use super::{Codec, Fairness, Trace};
use std::hash::Hash;

/// The initial state of node `root` (an initial node: its action index is its position in
/// `init_states()`).
fn init_state<M>(
    model: &M,
    fpc: &dyn Codec<M::State>,
    g: &Graph,
    root: u32,
) -> Result<M::State, String>
where
    M: Fairness,
    M::State: Hash,
{
    let idx = g.action[root as usize] as usize;
    let init = model
        .init_states()
        .into_iter()
        .nth(idx)
        .ok_or_else(|| format!("replay: init_states() no longer has an entry {idx}"))?;
    if g.lookup(fpc.fingerprint(&init, &mut Vec::new())) != Some(root) {
        return Err(format!(
            "replay: init_states()[{idx}] does not reproduce the explored initial state"
        ));
    }
    Ok(init)
}

fn last<'a, M: Fairness>(init: &'a M::State, steps: &'a [(M::Action, M::State)]) -> &'a M::State {
    steps.last().map_or(init, |(_, s)| s)
}

/// Shortest path (BFS tree) from an initial state to node `id`.
pub(crate) fn path_to<M>(
    model: &M,
    fpc: &dyn Codec<M::State>,
    g: &Graph,
    id: u32,
) -> Result<Trace<M>, String>
where
    M: Fairness,
    M::State: Hash,
    M::Action: Clone,
{
    let mut chain = Vec::new();
    let mut v = id;
    // Terminates: a parent always has a smaller id than its child.
    while g.parent[v as usize] != NO_PARENT {
        chain.push(v);
        v = g.parent[v as usize];
    }
    let init = init_state(model, fpc, g, v)?;
    let mut steps: Vec<(M::Action, M::State)> = Vec::with_capacity(chain.len());
    let mut actions = Vec::new();
    let mut from = v;
    for &node in chain.iter().rev() {
        let cur = last::<M>(&init, &steps);
        let ai = g.action[node as usize] as usize;
        actions.clear();
        model.actions(cur, &mut actions);
        // The stored index names the action in the order `actions()` listed them for the
        // state as the exploration held it. A state rebuilt from the packed frontier may
        // iterate its hash maps (the network) in another order than the same state reached
        // here, so when the indexed action does not lead to `node` the step is found by
        // fingerprint among all actions, as for liveness paths.
        let indexed = actions.drain(..).nth(ai).and_then(|a| {
            let next = model.next_state(cur, a.clone())?;
            (g.lookup(fpc.fingerprint(&next, &mut Vec::new())) == Some(node)).then_some((a, next))
        });
        let step = match indexed {
            Some(step) => step,
            None => step_to(model, fpc, g, cur, from, node, None)?,
        };
        steps.push(step);
        from = node;
    }
    Ok(Trace {
        init,
        steps,
        loop_start: None,
    })
}

/// The first action (in `actions()` order) of `cur` that leads to node `to`, restricted to
/// fairness class `class` when given.
fn step_to<M>(
    model: &M,
    fpc: &dyn Codec<M::State>,
    g: &Graph,
    cur: &M::State,
    from: u32,
    to: u32,
    class: Option<u32>,
) -> Result<(M::Action, M::State), String>
where
    M: Fairness,
    M::State: Hash,
    M::Action: Clone,
{
    let mut actions = Vec::new();
    model.actions(cur, &mut actions);
    for a in actions {
        if let Some(c) = class {
            let ok = match model.fair_class(cur, &a) {
                None => c == UNFAIR,
                Some(raw) => c != UNFAIR && g.class_raw.get(c as usize) == Some(&raw),
            };
            if !ok {
                continue;
            }
        }
        if let Some(next) = model.next_state(cur, a.clone()) {
            if model.within_boundary(&next)
                && g.lookup(fpc.fingerprint(&next, &mut Vec::new())) == Some(to)
            {
                return Ok((a, next));
            }
        }
    }
    Err(format!(
        "replay: no action of the state at depth {} reproduces the explored edge to a state \
         at depth {}",
        g.depth(from),
        g.depth(to)
    ))
}

/// Replays a liveness violation: a path of node ids from an initial node, then (for a lasso)
/// the cycle's edges.
pub(crate) fn liveness_trace<M>(
    model: &M,
    fpc: &dyn Codec<M::State>,
    g: &Graph,
    v: &Violation,
) -> Result<Trace<M>, String>
where
    M: Fairness,
    M::State: Hash,
    M::Action: Clone,
{
    let (prefix, cycle): (&[u32], &[(u32, Option<u32>)]) = match v {
        Violation::Stuck { path } => (path, &[]),
        Violation::Lasso { prefix, cycle } => (prefix, cycle),
    };
    let (&root, rest) = prefix
        .split_first()
        .ok_or_else(|| "internal: empty liveness path".to_string())?;
    let init = init_state(model, fpc, g, root)?;
    let mut steps: Vec<(M::Action, M::State)> = Vec::with_capacity(rest.len() + cycle.len());
    let mut from = root;
    for &node in rest {
        let step = step_to(model, fpc, g, last::<M>(&init, &steps), from, node, None)?;
        steps.push(step);
        from = node;
    }
    let loop_start = match v {
        Violation::Stuck { .. } => None,
        Violation::Lasso { .. } => Some(steps.len()),
    };
    for &(node, class) in cycle {
        let step = step_to(model, fpc, g, last::<M>(&init, &steps), from, node, class)?;
        steps.push(step);
        from = node;
    }
    if let Some(i) = loop_start {
        // The cycle must come back to the state that precedes it.
        let back = fpc.fingerprint(last::<M>(&init, &steps), &mut Vec::new());
        let start = if i == 0 { &init } else { &steps[i - 1].1 };
        if back != fpc.fingerprint(start, &mut Vec::new()) || steps.len() == i {
            return Err("internal: liveness cycle does not close".to_string());
        }
    }
    Ok(Trace {
        init,
        steps,
        loop_start,
    })
}
