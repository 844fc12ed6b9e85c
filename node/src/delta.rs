//! Changes between two saved values, so that a save writes what changed, not everything.
//!
//! The core's `Save` carries the whole durable value (the model's notion of "what survives
//! a crash"). For a replica that value holds each partition's key-value map, dedup table
//! and log, so writing it whole makes every fsync'd save O(data). The store (see
//! `storage.rs`) writes a [`Incremental::delta`] against the value it saved before instead,
//! and recovery applies the deltas after the last full record in order. Nothing here
//! decides anything about the protocol: `apply(old, delta(old, new)) == new` is the whole
//! contract (checked by a property test below).
use petrel_core::dup::{DupEntry, DupId};
use petrel_core::replica::{PartDurable, ReplicaStorage};
use petrel_core::{Decree, Entry, Gpid, Key, Map, NodeStorage, Op, PartitionConfig, ReqId, Value};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::hash::Hash;

/// A value the store can save as a change against the value saved before it.
pub trait Incremental: Serialize + DeserializeOwned + Clone {
    type Delta: Serialize + DeserializeOwned;
    /// The change from `old` to `new`; `None` when only a full record will do.
    fn delta(old: &Self, new: &Self) -> Option<Self::Delta>;
    /// Apply a change that `delta` made against exactly this value.
    fn apply(&mut self, delta: Self::Delta) -> Result<(), String>;
}

/// A sorted map's change: entries new or changed, keys removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDelta<K, V> {
    pub put: Vec<(K, V)>,
    pub del: Vec<K>,
}

impl<K: Ord + Clone, V: PartialEq + Clone> MapDelta<K, V> {
    /// One merge walk over both maps (they are sorted): O(old + new).
    pub fn between(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> MapDelta<K, V> {
        Self::between_sorted(old.iter(), new.iter())
    }

    /// [`MapDelta::between`] of two sorted entry sequences.
    pub fn between_sorted<'a>(
        old: impl Iterator<Item = (&'a K, &'a V)>,
        new: impl Iterator<Item = (&'a K, &'a V)>,
    ) -> MapDelta<K, V>
    where
        K: 'a,
        V: 'a,
    {
        let (mut put, mut del) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (old.peekable(), new.peekable());
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    del.push((*k).clone());
                    a.next();
                }
                (None, Some((k, v))) => {
                    put.push(((*k).clone(), (*v).clone()));
                    b.next();
                }
                (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => {
                        del.push((*ka).clone());
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        put.push(((*kb).clone(), (*vb).clone()));
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if va != vb {
                            put.push(((*kb).clone(), (*vb).clone()));
                        }
                        a.next();
                        b.next();
                    }
                },
            }
        }
        MapDelta { put, del }
    }

    pub fn apply_to(self, map: &mut BTreeMap<K, V>) {
        for k in &self.del {
            map.remove(k);
        }
        map.extend(self.put);
    }

    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.del.is_empty()
    }
}

impl<K: Ord + Clone + Hash, V: PartialEq + Clone + Hash> MapDelta<K, V> {
    /// The change of a persistent map, in O(what changed) when it can be: nothing when
    /// both share their tree (the usual case: the core saved the same map again), only
    /// the keys `touched` when they explain the change (what garbage collection folded
    /// in), else a walk over both.
    pub fn of_map<'a>(
        old: &Map<K, V>,
        new: &Map<K, V>,
        touched: impl IntoIterator<Item = &'a K>,
    ) -> MapDelta<K, V>
    where
        K: 'a,
    {
        if old.ptr_eq(new) {
            return MapDelta {
                put: Vec::new(),
                del: Vec::new(),
            };
        }
        match new.change_on(old, touched) {
            Some((put, del)) => MapDelta { put, del },
            None => Self::between_sorted(old.iter(), new.iter()),
        }
    }

    pub fn apply_to_map(self, map: &mut Map<K, V>) {
        for k in &self.del {
            map.remove(k);
        }
        map.extend(self.put);
    }
}

/// A replica's change: its boot count, partitions dropped, and per partition what changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDelta {
    pub incarnation: u32,
    pub removed: Vec<Gpid>,
    pub parts: Vec<(Gpid, PartDelta)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartDelta {
    /// A partition the previous value did not have.
    New(Box<PartDurable>),
    Changed(Box<PartChange>),
}

/// The small fields whole (they are a few bytes), the three big maps as changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChange {
    pub config: PartitionConfig,
    pub committed: Decree,
    pub retain: Decree,
    pub dups: BTreeMap<DupId, DupEntry>,
    pub snapshot_decree: Decree,
    pub data: MapDelta<Key, Value>,
    pub last_req: MapDelta<Id, ReqId>,
    pub log: MapDelta<Decree, Entry>,
}

fn part_delta(old: &PartDurable, new: &PartDurable) -> Option<PartDelta> {
    if old == new {
        return None;
    }
    // What garbage collection folded into the snapshot since `old`: the entries of
    // `old`'s log up to the new snapshot's decree. Their keys and writers are where the
    // snapshot changed (checked by `Map::change_on`; anything else, e.g. a learned
    // snapshot, falls back to comparing the whole maps).
    let folded: Vec<&Entry> = if new.snapshot.decree > old.snapshot.decree {
        old.log
            .range(old.snapshot.decree + 1..=new.snapshot.decree)
            .map(|(_, e)| e)
            .collect()
    } else {
        Vec::new()
    };
    let keys = folded.iter().filter_map(|e| match &e.mutation.op {
        Op::Put(k, _) | Op::Del(k) => Some(k),
        Op::Load(_) => None,
    });
    let writers = folded.iter().map(|e| &e.mutation.client);
    Some(PartDelta::Changed(Box::new(PartChange {
        config: new.config.clone(),
        committed: new.committed,
        retain: new.retain,
        dups: new.dups.clone(),
        snapshot_decree: new.snapshot.decree,
        data: MapDelta::of_map(&old.snapshot.data, &new.snapshot.data, keys),
        last_req: MapDelta::of_map(&old.snapshot.last_req, &new.snapshot.last_req, writers),
        log: MapDelta::between(&old.log, &new.log),
    })))
}

pub fn replica_delta(old: &ReplicaStorage, new: &ReplicaStorage) -> ReplicaDelta {
    let removed = old
        .parts
        .keys()
        .filter(|g| !new.parts.contains_key(g))
        .copied()
        .collect();
    let parts = new
        .parts
        .iter()
        .filter_map(|(g, p)| match old.parts.get(g) {
            None => Some((*g, PartDelta::New(Box::new(p.clone())))),
            Some(o) => part_delta(o, p).map(|d| (*g, d)),
        })
        .collect();
    ReplicaDelta {
        incarnation: new.incarnation,
        removed,
        parts,
    }
}

pub fn apply_replica(r: &mut ReplicaStorage, d: ReplicaDelta) -> Result<(), String> {
    r.incarnation = d.incarnation;
    for g in &d.removed {
        r.parts.remove(g);
    }
    for (g, pd) in d.parts {
        match pd {
            PartDelta::New(p) => {
                r.parts.insert(g, *p);
            }
            PartDelta::Changed(c) => {
                let PartChange {
                    config,
                    committed,
                    retain,
                    dups,
                    snapshot_decree,
                    data,
                    last_req,
                    log,
                } = *c;
                let p = r.parts.get_mut(&g).ok_or_else(|| {
                    format!(
                        "a change of partition {}.{}, which the store does not hold",
                        g.table, g.partition
                    )
                })?;
                p.config = config;
                p.committed = committed;
                p.retain = retain;
                p.dups = dups;
                p.snapshot.decree = snapshot_decree;
                data.apply_to_map(&mut p.snapshot.data);
                last_req.apply_to_map(&mut p.snapshot.last_req);
                log.apply_to(&mut p.log);
            }
        }
    }
    Ok(())
}

impl Incremental for NodeStorage {
    type Delta = ReplicaDelta;

    /// Replicas save changes; a meta server's value is small and saved whole.
    fn delta(old: &Self, new: &Self) -> Option<ReplicaDelta> {
        match (old, new) {
            (NodeStorage::Replica(o), NodeStorage::Replica(n)) => Some(replica_delta(o, n)),
            _ => None,
        }
    }

    fn apply(&mut self, delta: ReplicaDelta) -> Result<(), String> {
        match self {
            NodeStorage::Replica(r) => apply_replica(r, delta),
            NodeStorage::Meta(_) => {
                Err("a replica's change record follows a meta server's state".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::replica::PartDurable;
    use petrel_core::{Mutation, Op, Snapshot};
    use proptest::prelude::*;

    fn part(
        keys: &[(u8, u8)],
        reqs: &[(usize, u32)],
        log: &[(u32, u8)],
        committed: u32,
    ) -> PartDurable {
        let gpid = Gpid {
            table: 1,
            partition: 0,
        };
        PartDurable {
            config: PartitionConfig {
                gpid,
                ballot: committed,
                primary: Some(Id::from(1)),
                secondaries: vec![Id::from(2)],
                max_replica_count: 3,
                source: None,
            },
            snapshot: Snapshot {
                decree: committed / 2,
                data: keys
                    .iter()
                    .map(|(k, v)| (Key::from(vec![*k]), Value::from(vec![*v])))
                    .collect(),
                last_req: reqs.iter().map(|(c, r)| (Id::from(*c), *r)).collect(),
            },
            log: log
                .iter()
                .map(|(d, v)| {
                    let op = Op::Put(Key::from(vec![*v]), Value::from(vec![*v]));
                    (
                        *d,
                        Entry {
                            ballot: 1,
                            mutation: Mutation {
                                client: Id::from(9),
                                req: *d,
                                op,
                            },
                        },
                    )
                })
                .collect(),
            committed,
            retain: committed,
            dups: BTreeMap::new(),
        }
    }

    prop_compose! {
        fn arb_part()(keys in prop::collection::vec((0u8..16, any::<u8>()), 0..12),
                      reqs in prop::collection::vec((0usize..6, 0u32..50), 0..5),
                      log in prop::collection::vec((0u32..20, any::<u8>()), 0..8),
                      committed in 0u32..20) -> PartDurable {
            part(&keys, &reqs, &log, committed)
        }
    }

    prop_compose! {
        fn arb_replica()(incarnation in 0u32..4, parts in prop::collection::btree_map((1u8..3, 0u8..3), arb_part(), 0..4)) -> ReplicaStorage {
            ReplicaStorage {
                incarnation,
                parts: parts.into_iter().map(|((table, partition), mut p)| {
                    p.config.gpid = Gpid { table, partition };
                    (Gpid { table, partition }, p)
                }).collect(),
            }
        }
    }

    proptest! {
        /// The whole contract: applying the change to the old value gives the new one,
        /// also after the change went through the record encoding.
        #[test]
        fn apply_of_delta_is_the_new_value(old in arb_replica(), new in arb_replica()) {
            let d = replica_delta(&old, &new);
            let d: ReplicaDelta = postcard::from_bytes(&postcard::to_stdvec(&d).expect("encode")).expect("decode");
            let mut v = old.clone();
            apply_replica(&mut v, d).expect("apply");
            prop_assert_eq!(v, new);
        }
    }

    #[test]
    fn a_write_is_a_small_change() {
        let keys: Vec<(u8, u8)> = (0..200).map(|k| (k as u8, 1)).collect();
        let old = ReplicaStorage {
            incarnation: 1,
            parts: [(
                Gpid {
                    table: 1,
                    partition: 0,
                },
                part(&keys, &[(1, 5)], &[(3, 1)], 3),
            )]
            .into(),
        };
        let mut new = old.clone();
        let p = new.parts.values_mut().next().expect("part");
        p.log.insert(
            4,
            Entry {
                ballot: 1,
                mutation: Mutation {
                    client: Id::from(9),
                    req: 4,
                    op: Op::Del(Key::from(vec![7])),
                },
            },
        );
        p.committed = 4;
        let full = postcard::to_stdvec(&new).expect("encode").len();
        let delta = postcard::to_stdvec(&replica_delta(&old, &new))
            .expect("encode")
            .len();
        assert!(delta * 10 < full, "delta {delta} bytes, full {full} bytes");
        // Unchanged partitions cost nothing.
        assert!(replica_delta(&new, &new).parts.is_empty());
    }

    #[test]
    fn a_change_of_a_partition_the_store_lacks_is_an_error() {
        let old = ReplicaStorage {
            incarnation: 1,
            parts: [(
                Gpid {
                    table: 1,
                    partition: 0,
                },
                part(&[], &[], &[], 1),
            )]
            .into(),
        };
        let mut new = old.clone();
        new.parts.values_mut().next().expect("part").committed = 2;
        let d = replica_delta(&old, &new);
        let mut empty = ReplicaStorage {
            incarnation: 1,
            parts: BTreeMap::new(),
        };
        assert!(apply_replica(&mut empty, d)
            .expect_err("no partition")
            .contains("partition 1.0"));
    }
}
