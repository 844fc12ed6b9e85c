//! Compact storage of the BFS frontier.
//!
//! A level of the BFS is discovered long before it is expanded, so its states are held for a
//! whole level. Held as values, an actor system's state costs ~20 KB of heap (hash maps,
//! B-trees, one allocation per message) although it carries a few hundred bytes of
//! information, and the states of one level share most of it: on Petrel's `replication`
//! scenario a level of 19k states has ~100 distinct actor states, ~50 distinct storage
//! vectors, ~30 distinct histories and a few hundred distinct messages. So a frontier state is
//! kept as a few `u32` words naming entries of a dictionary ([`Codec`]) shared by the states
//! packed with it, and rebuilt (as a value, freshly allocated and hot in cache) right before
//! its expansion.
//!
//! A dictionary only grows while its level is being discovered and is dropped with its level,
//! so its size is bounded by what two adjacent levels hold.

use super::hash::{fingerprint, IntMap};
use stateright::actor::{Actor, ActorModelState, Envelope, Network};
use std::hash::Hash;
use std::sync::Arc;

/// Packs states into words and rebuilds them. One codec serves the states of one frontier
/// piece set (a level, or a worker's share of it); words are only meaningful to the codec
/// that wrote them.
pub trait Codec<S>: Send + Sync {
    /// Appends the packed form of `state` to `out`.
    fn pack(&mut self, state: S, out: &mut Vec<u32>);
    /// Rebuilds the state that [`Codec::pack`] wrote as `words`. The result must be equal
    /// (and hash equally) to the packed state.
    fn unpack(&self, words: &[u32]) -> S;
    /// Approximate heap bytes held by the dictionary (for reports).
    fn bytes(&self) -> usize;
}

/// The fallback codec: keeps each state as a value (one word: its index). For models whose
/// states are small and flat, or that provide nothing better.
pub struct Plain<S> {
    states: Vec<S>,
}

impl<S> Default for Plain<S> {
    fn default() -> Self {
        Plain { states: Vec::new() }
    }
}

impl<S: Clone + Send + Sync> Codec<S> for Plain<S> {
    fn pack(&mut self, state: S, out: &mut Vec<u32>) {
        out.push(self.states.len() as u32);
        self.states.push(state);
    }

    fn unpack(&self, words: &[u32]) -> S {
        self.states[words[0] as usize].clone()
    }

    fn bytes(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<S>()
    }
}

/// Hash-consing table: each distinct value once, named by its index.
struct Interner<T> {
    vals: Vec<T>,
    /// Value hash → index. A 64-bit hash shared by two distinct values is resolved by
    /// probing the next key (`next_key`), so lookups compare values and never confuse two.
    index: IntMap<u64, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            vals: Vec::new(),
            index: IntMap::default(),
        }
    }
}

#[inline]
fn next_key(k: u64) -> u64 {
    k.wrapping_add(0x9E37_79B9_7F4A_7C15)
}

impl<T: Hash + PartialEq> Interner<T> {
    /// Index of `v`, inserting it (moved in) if absent. Returns whether it was inserted.
    fn intern(&mut self, v: T) -> (u32, bool) {
        let mut k = fingerprint(&v);
        loop {
            match self.index.get(&k) {
                Some(&i) if self.vals[i as usize] == v => return (i, false),
                Some(_) => k = next_key(k),
                None => {
                    let i = self.vals.len() as u32;
                    self.index.insert(k, i);
                    self.vals.push(v);
                    return (i, true);
                }
            }
        }
    }

    /// Index of `v`, inserting a clone if absent.
    fn intern_ref(&mut self, v: &T) -> u32
    where
        T: Clone,
    {
        let mut k = fingerprint(v);
        loop {
            match self.index.get(&k) {
                Some(&i) if self.vals[i as usize] == *v => return i,
                Some(_) => k = next_key(k),
                None => {
                    let i = self.vals.len() as u32;
                    self.index.insert(k, i);
                    self.vals.push(v.clone());
                    return i;
                }
            }
        }
    }

    #[inline]
    fn get(&self, i: u32) -> &T {
        &self.vals[i as usize]
    }

    fn bytes(&self) -> usize {
        self.vals.capacity() * std::mem::size_of::<T>() + self.index.capacity() * 16
    }
}

/// Network variants, in the packed header word.
const NET_UNORDERED: u32 = 0;
const NET_DUPLICATING: u32 = 1;
const NET_ORDERED: u32 = 2;

/// Codec for stateright's [`ActorModelState`]. A state packs into
/// `[combo, history, network header, (last message,) message ids...]`:
///
/// * `combo` names the tuple (actor state ids, timers, random choices, crash flags,
///   storages); actor states are shared `Arc`s, interned by pointer first (the successors
///   of a state share all but one of its actors' `Arc`s, so a pointer hit avoids hashing
///   them) and by value otherwise;
/// * the network is a list of interned envelopes (a multiset repeats an envelope as often as
///   it is in flight; an ordered network lists each flow in order), rebuilt with stateright's
///   own constructors, so it compares and hashes equal (its iteration order may differ,
///   which is why replay finds actions by fingerprint, not only by index).
pub struct ActorCodec<A: Actor, H> {
    actors: Interner<Arc<A::State>>,
    /// Address of an `Arc` held in `actors` → its index. Only addresses of `Arc`s this codec
    /// keeps alive are recorded, so an address cannot be reused by another value meanwhile.
    actor_ptr: IntMap<usize, u32>,
    timers: Interner<Vec<stateright::actor::Timers<A::Timer>>>,
    random: Interner<Vec<stateright::actor::RandomChoices<A::Random>>>,
    crashed: Interner<Vec<bool>>,
    storages: Interner<Vec<Option<A::Storage>>>,
    combos: Interner<Box<[u32]>>,
    history: Interner<H>,
    envelopes: Interner<Envelope<A::Msg>>,
    scratch: Vec<u32>,
}

impl<A: Actor, H> Default for ActorCodec<A, H> {
    fn default() -> Self {
        ActorCodec {
            actors: Interner::default(),
            actor_ptr: IntMap::default(),
            timers: Interner::default(),
            random: Interner::default(),
            crashed: Interner::default(),
            storages: Interner::default(),
            combos: Interner::default(),
            history: Interner::default(),
            envelopes: Interner::default(),
            scratch: Vec::new(),
        }
    }
}

impl<A, H> Codec<ActorModelState<A, H>> for ActorCodec<A, H>
where
    A: Actor,
    A::State: Send + Sync,
    A::Msg: Send + Sync,
    A::Timer: Send + Sync,
    A::Random: Send + Sync,
    A::Storage: Send + Sync,
    H: Clone + Hash + PartialEq + Send + Sync,
{
    fn pack(&mut self, s: ActorModelState<A, H>, out: &mut Vec<u32>) {
        let ActorModelState {
            actor_states,
            network,
            timers_set,
            random_choices,
            crashed,
            history,
            actor_storages,
        } = s;
        let mut combo = std::mem::take(&mut self.scratch);
        combo.clear();
        for a in actor_states {
            let ptr = Arc::as_ptr(&a) as usize;
            let id = match self.actor_ptr.get(&ptr) {
                Some(&id) => id,
                None => {
                    let (id, inserted) = self.actors.intern(a);
                    if inserted {
                        let held = Arc::as_ptr(self.actors.get(id)) as usize;
                        self.actor_ptr.insert(held, id);
                    }
                    id
                }
            };
            combo.push(id);
        }
        combo.push(self.timers.intern(timers_set).0);
        combo.push(self.random.intern(random_choices).0);
        combo.push(self.crashed.intern(crashed).0);
        combo.push(self.storages.intern(actor_storages).0);
        out.push(self.combos.intern_ref(&combo.as_slice().into()));
        self.scratch = combo;
        out.push(self.history.intern(history).0);
        match network {
            Network::UnorderedNonDuplicating(map) => {
                out.push(NET_UNORDERED);
                for (env, &count) in map.iter() {
                    let id = self.envelopes.intern_ref(env);
                    out.extend(std::iter::repeat_n(id, count));
                }
            }
            Network::UnorderedDuplicating(set, last) => {
                out.push(NET_DUPLICATING);
                out.push(last.map_or(0, |e| self.envelopes.intern(e).0 + 1));
                for env in set.iter() {
                    out.push(self.envelopes.intern_ref(env));
                }
            }
            Network::Ordered(flows) => {
                out.push(NET_ORDERED);
                for ((src, dst), msgs) in flows {
                    for msg in msgs {
                        out.push(self.envelopes.intern(Envelope { src, dst, msg }).0);
                    }
                }
            }
        }
    }

    fn unpack(&self, w: &[u32]) -> ActorModelState<A, H> {
        let combo = self.combos.get(w[0]);
        let n = combo.len() - 4;
        let envs = w[3..].iter().map(|&id| self.envelopes.get(id).clone());
        let network = match w[2] {
            NET_UNORDERED => Network::new_unordered_nonduplicating(envs),
            NET_DUPLICATING => {
                let envs = w[4..].iter().map(|&id| self.envelopes.get(id).clone());
                let last = w[3].checked_sub(1).map(|i| self.envelopes.get(i).clone());
                Network::new_unordered_duplicating_with_last_msg(envs, last)
            }
            _ => Network::new_ordered(envs),
        };
        ActorModelState {
            actor_states: combo[..n]
                .iter()
                .map(|&i| Arc::clone(self.actors.get(i)))
                .collect(),
            network,
            timers_set: self.timers.get(combo[n]).clone(),
            random_choices: self.random.get(combo[n + 1]).clone(),
            crashed: self.crashed.get(combo[n + 2]).clone(),
            history: self.history.get(w[1]).clone(),
            actor_storages: self.storages.get(combo[n + 3]).clone(),
        }
    }

    fn bytes(&self) -> usize {
        self.actors.bytes()
            + self.actor_ptr.capacity() * 16
            + self.timers.bytes()
            + self.random.bytes()
            + self.crashed.bytes()
            + self.storages.bytes()
            + self.combos.bytes()
            + self.history.bytes()
            + self.envelopes.bytes()
    }
}
