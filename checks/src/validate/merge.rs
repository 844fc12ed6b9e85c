//! One run out of per-node logs: every step of every node (a start, an event, an effect
//! line) in an order that respects happens-before — each node's own order, and each
//! delivery after the send it came from.
//!
//! **Matching a delivery to its send without a message id.** The log records the whole
//! message on both sides, so a delivery at R of message m from S is matched to a send of
//! the same m from S to R by content and occurrence: the n-th delivery of m on the link
//! S→R is matched to the n-th send of m on it. That is sound without FIFO links and with
//! losses: a message is delivered only after it was sent, so when the n-th delivery of m
//! happens at least n copies of m were sent; matching it to the n-th send therefore
//! orders it after a send that really preceded it, and identical contents make the
//! choice of copy irrelevant to the receiver's state. Lives of a sender share its links
//! (a copy sent by an earlier life may arrive after the restart).
//!
//! Among the steps whose predecessors are placed, the earliest by wall clock goes next
//! (the nodes of one machine share a clock; it only picks among orders happens-before
//! allows, so a skewed clock cannot break causality).
use super::log::{Input, Item, NodeLog};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One step of one node: `item == None` is the start of life `life`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub node: usize,
    pub life: usize,
    pub item: Option<usize>,
}

impl Step {
    pub fn time_ms(&self, logs: &[NodeLog]) -> u64 {
        let life = &logs[self.node].lives[self.life];
        life.start.unix_ms + self.item.map(|i| life.items[i].ms()).unwrap_or(0)
    }
}

/// The merged order, and where each matched delivery's send is (`send_of[(node, life,
/// item)] = (sender node, life, item)`).
pub struct Merged {
    pub order: Vec<Step>,
    pub send_of: HashMap<(usize, usize, usize), (usize, usize, usize)>,
    /// Deliveries from a logged node that no send of it explains.
    pub unmatched: Vec<String>,
}

fn content_key(v: &Value) -> u64 {
    // serde_json's maps are ordered, so equal messages print equally.
    let text = v.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn steps_of(node: usize, log: &NodeLog) -> Vec<Step> {
    let mut v = Vec::new();
    for (l, life) in log.lives.iter().enumerate() {
        v.push(Step {
            node,
            life: l,
            item: None,
        });
        v.extend((0..life.items.len()).map(|i| Step {
            node,
            life: l,
            item: Some(i),
        }));
    }
    v
}

/// (sender id, receiver id, content hash): one message's copies on one link.
type LinkContent = (u64, u64, u64);
/// (node index, life, item; `usize::MAX` for the start event).
type Position = (usize, usize, usize);

pub fn merge(logs: &[NodeLog]) -> Result<Merged, String> {
    let index_of: BTreeMap<u64, usize> = logs.iter().enumerate().map(|(i, l)| (l.id, i)).collect();
    // Sends per (src, dst, content): the position of each in the sender's step list.
    let mut sends: HashMap<LinkContent, Vec<Position>> = HashMap::new();
    let per_node: Vec<Vec<Step>> = logs
        .iter()
        .enumerate()
        .map(|(n, l)| steps_of(n, l))
        .collect();
    for (n, log) in logs.iter().enumerate() {
        for (l, life) in log.lives.iter().enumerate() {
            let mut record = |item: usize, out: &[Value]| {
                for c in out {
                    if let Some(s) = c.get("send") {
                        let dst = s.get("dst").and_then(Value::as_u64).unwrap_or(u64::MAX);
                        let key = (
                            log.id,
                            dst,
                            content_key(s.get("msg").unwrap_or(&Value::Null)),
                        );
                        sends.entry(key).or_default().push((n, l, item));
                    }
                }
            };
            // usize::MAX stands for the start event of the life.
            record(usize::MAX, &life.start_out);
            for (i, it) in life.items.iter().enumerate() {
                if let Item::Event { out, .. } = it {
                    record(i, out);
                }
            }
        }
    }
    let mut used: HashMap<(u64, u64, u64), usize> = HashMap::new();
    let mut send_of = HashMap::new();
    let mut unmatched = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        for (l, life) in log.lives.iter().enumerate() {
            for (i, it) in life.items.iter().enumerate() {
                let Item::Event {
                    seq,
                    input: Input::Msg { src, msg },
                    ..
                } = it
                else {
                    continue;
                };
                if !index_of.contains_key(src) || msg.get("PeerDown").is_some() {
                    continue; // a client (not logged) or the driver's failure notice
                }
                let key = (*src, log.id, content_key(msg));
                let k = used.entry(key).or_insert(0);
                match sends.get(&key).and_then(|v| v.get(*k)) {
                    Some(s) => {
                        send_of.insert((n, l, i), *s);
                    }
                    None => unmatched.push(format!(
                        "node {} life {} event {seq}: delivered {} from node {src}, which never sent it (copy {} of it on that link)",
                        log.id,
                        l + 1,
                        msg.as_object().and_then(|o| o.keys().next()).cloned().unwrap_or_default(),
                        *k + 1
                    )),
                }
                *k += 1;
            }
        }
    }
    // Kahn over the per-node sequences.
    let mut pos = vec![0usize; logs.len()];
    let mut order = Vec::with_capacity(per_node.iter().map(Vec::len).sum());
    // placed[(node, life, item)] is implied by pos: a step is placed iff it is before pos.
    let flat_index: Vec<HashMap<(usize, usize), usize>> = per_node
        .iter()
        .map(|steps| {
            steps
                .iter()
                .enumerate()
                .map(|(k, s)| ((s.life, s.item.unwrap_or(usize::MAX)), k))
                .collect()
        })
        .collect();
    let start_index = |node: usize, life: usize| {
        flat_index[node]
            .get(&(life, usize::MAX))
            .copied()
            .unwrap_or(0)
    };
    loop {
        let mut best: Option<(u64, usize)> = None;
        for (n, steps) in per_node.iter().enumerate() {
            let Some(step) = steps.get(pos[n]) else {
                continue;
            };
            let ready = match step.item.and_then(|i| send_of.get(&(n, step.life, i))) {
                None => true,
                Some(&(sn, sl, si)) => {
                    let k = if si == usize::MAX {
                        start_index(sn, sl)
                    } else {
                        flat_index[sn].get(&(sl, si)).copied().unwrap_or(0)
                    };
                    pos[sn] > k
                }
            };
            if ready {
                let t = step.time_ms(logs);
                if best.is_none_or(|(bt, _)| t < bt) {
                    best = Some((t, n));
                }
            }
        }
        match best {
            Some((_, n)) => {
                order.push(per_node[n][pos[n]]);
                pos[n] += 1;
            }
            None => break,
        }
    }
    if order.len() != per_node.iter().map(Vec::len).sum::<usize>() {
        return Err("the logs' deliveries and sends form a cycle (no order respects happens-before): the logs are inconsistent".into());
    }
    Ok(Merged {
        order,
        send_of,
        unmatched,
    })
}
