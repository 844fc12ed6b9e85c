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

use super::hash::{fingerprint, fingerprint_of_hashes, hash_of, IntMap};
use stateright::actor::{Actor, ActorModelState, Envelope, Network, RandomChoices, Timers};
use stateright::util::HashableHashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Packs states into words and rebuilds them. One codec serves the states of one frontier
/// piece set (a level, or a worker's share of it); words are only meaningful to the codec
/// that wrote them.
pub trait Codec<S>: Send + Sync {
    /// The state's 64-bit fingerprint (never 0). It must be a function of the state's value
    /// alone, the same for every codec of a model (caches may only make it faster), since
    /// states found through different codecs, and replayed ones, are compared by it. May
    /// leave in `hints` what [`Codec::pack`] of the same state can reuse (component hashes).
    fn fingerprint(&self, state: &S, hints: &mut Vec<u64>) -> u64
    where
        S: Hash,
    {
        hints.clear();
        fingerprint(state)
    }

    /// Appends the packed form of `state` to `out`. `hints` are those its
    /// [`Codec::fingerprint`] left (possibly by another codec of the same model), or empty.
    fn pack(&mut self, state: S, hints: &[u64], out: &mut Vec<u32>);
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
    fn pack(&mut self, state: S, _: &[u64], out: &mut Vec<u32>) {
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

/// Hash-consing table: each distinct value once, named by its index, looked up by its
/// 64-bit hash ([`hash_of`]). Two distinct values with the same hash are told apart by
/// comparing them (the second one is filed under the next key, `next_key`), so a state
/// always unpacks to itself.
struct Interner<T> {
    vals: Vec<T>,
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

impl<T: PartialEq> Interner<T> {
    /// Index of `v` whose hash is `h`, inserting it (moved in) if absent. Returns whether it
    /// was inserted.
    #[inline]
    fn intern(&mut self, v: T, h: u64) -> (u32, bool) {
        let mut k = h;
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

    /// Index of `v` whose hash is `h`, inserting `make(v)` if absent.
    #[inline]
    fn intern_ref<Q>(&mut self, v: &Q, h: u64, make: impl FnOnce(&Q) -> T) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        let mut k = h;
        loop {
            match self.index.get(&k) {
                Some(&i) if self.vals[i as usize].borrow() == v => return i,
                Some(_) => k = next_key(k),
                None => {
                    let i = self.vals.len() as u32;
                    self.index.insert(k, i);
                    self.vals.push(make(v));
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

/// Network variants, in the packed header word (and the fingerprint).
const NET_UNORDERED: u32 = 0;
const NET_DUPLICATING: u32 = 1;
const NET_ORDERED: u32 = 2;

/// Component hashes before the network's in an actor state's hints and fingerprint: one
/// per actor, then timers, random choices, crash flags, storages, history.
const FIXED_AFTER_ACTORS: usize = 5;

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
///
/// Its fingerprint combines one hash per component (per actor, per in-flight envelope, ...)
/// instead of hashing the state in one pass: the hash of an actor state that this codec
/// holds is known (a successor shares most actors' `Arc`s with its source, which this codec
/// unpacked), and the component hashes are reused as the dictionary keys when the state is
/// packed. A collision needs two distinct states whose component hashes all agree, or a
/// collision of the final 64-bit hash: the same `n² / 2⁶⁵` order as hashing in one pass.
pub struct ActorCodec<A: Actor, H> {
    actors: Interner<Arc<A::State>>,
    /// Hash of each interned actor state.
    actor_hash: Vec<u64>,
    /// Address of an `Arc` held in `actors` → its index. Only addresses of `Arc`s this codec
    /// keeps alive are recorded, so an address cannot be reused by another value meanwhile.
    actor_ptr: IntMap<usize, u32>,
    timers: Interner<Vec<Timers<A::Timer>>>,
    random: Interner<Vec<RandomChoices<A::Random>>>,
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
            actor_hash: Vec::new(),
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
    fn fingerprint(&self, s: &ActorModelState<A, H>, hints: &mut Vec<u64>) -> u64 {
        hints.clear();
        for a in &s.actor_states {
            let h = match self.actor_ptr.get(&(Arc::as_ptr(a) as usize)) {
                Some(&id) => self.actor_hash[id as usize],
                None => hash_of(&**a),
            };
            hints.push(h);
        }
        hints.push(hash_of(&s.timers_set));
        hints.push(hash_of(&s.random_choices));
        hints.push(hash_of(&s.crashed));
        hints.push(hash_of(&s.actor_storages));
        hints.push(hash_of(&s.history));
        let fixed = hints.len();
        match &s.network {
            Network::UnorderedNonDuplicating(map) => {
                // Hints: each entry's envelope hash, in iteration order (for `pack`); then,
                // for the fingerprint, each entry's (envelope, count) hash, sorted: the
                // multiset's hash must not depend on the map's iteration order.
                for (env, _) in map.iter() {
                    hints.push(hash_of(env));
                }
                let n = hints.len() - fixed;
                for (k, (_, &count)) in map.iter().enumerate() {
                    let h = hints[fixed + k];
                    hints.push(hash_of(&(h, count)));
                }
                hints[fixed + n..].sort_unstable();
                let fp = fingerprint_of_hashes(&[
                    &hints[..fixed],
                    &[NET_UNORDERED as u64],
                    &hints[fixed + n..],
                ]);
                hints.truncate(fixed + n);
                fp
            }
            other => {
                let tag = match other {
                    Network::UnorderedDuplicating(..) => NET_DUPLICATING,
                    _ => NET_ORDERED,
                };
                fingerprint_of_hashes(&[&hints[..fixed], &[tag as u64, hash_of(other)]])
            }
        }
    }

    fn pack(&mut self, s: ActorModelState<A, H>, hints: &[u64], out: &mut Vec<u32>) {
        let ActorModelState {
            actor_states,
            network,
            timers_set,
            random_choices,
            crashed,
            history,
            actor_storages,
        } = s;
        let n = actor_states.len();
        let hinted = hints.len() >= n + FIXED_AFTER_ACTORS;
        let mut combo = std::mem::take(&mut self.scratch);
        combo.clear();
        for (i, a) in actor_states.into_iter().enumerate() {
            let ptr = Arc::as_ptr(&a) as usize;
            let id = match self.actor_ptr.get(&ptr) {
                Some(&id) => id,
                None => {
                    let h = if hinted { hints[i] } else { hash_of(&*a) };
                    let (id, inserted) = self.actors.intern(a, h);
                    if inserted {
                        let held = Arc::as_ptr(self.actors.get(id)) as usize;
                        self.actor_ptr.insert(held, id);
                        self.actor_hash.push(h);
                    }
                    id
                }
            };
            combo.push(id);
        }
        let hint = |k: usize, v: &dyn Fn() -> u64| if hinted { hints[n + k] } else { v() };
        let ht = hint(0, &|| hash_of(&timers_set));
        let hr = hint(1, &|| hash_of(&random_choices));
        let hc = hint(2, &|| hash_of(&crashed));
        let hs = hint(3, &|| hash_of(&actor_storages));
        let hh = hint(4, &|| hash_of(&history));
        combo.push(self.timers.intern(timers_set, ht).0);
        combo.push(self.random.intern(random_choices, hr).0);
        combo.push(self.crashed.intern(crashed, hc).0);
        combo.push(self.storages.intern(actor_storages, hs).0);
        let hcombo = hash_of(combo.as_slice());
        out.push(
            self.combos
                .intern_ref(combo.as_slice(), hcombo, |c: &[u32]| Box::from(c)),
        );
        self.scratch = combo;
        out.push(self.history.intern(history, hh).0);
        let env_hints = if hinted {
            &hints[n + FIXED_AFTER_ACTORS..]
        } else {
            &[]
        };
        match network {
            Network::UnorderedNonDuplicating(map) => {
                out.push(NET_UNORDERED);
                for (k, (env, &count)) in map.iter().enumerate() {
                    let h = env_hints.get(k).copied().unwrap_or_else(|| hash_of(env));
                    let id = self.envelopes.intern_ref(env, h, Clone::clone);
                    out.extend(std::iter::repeat_n(id, count));
                }
            }
            Network::UnorderedDuplicating(set, last) => {
                out.push(NET_DUPLICATING);
                out.push(last.map_or(0, |e| {
                    let h = hash_of(&e);
                    self.envelopes.intern(e, h).0 + 1
                }));
                for env in set.iter() {
                    out.push(self.envelopes.intern_ref(env, hash_of(env), Clone::clone));
                }
            }
            Network::Ordered(flows) => {
                out.push(NET_ORDERED);
                for ((src, dst), msgs) in flows {
                    for msg in msgs {
                        let env = Envelope { src, dst, msg };
                        let h = hash_of(&env);
                        out.push(self.envelopes.intern(env, h).0);
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
            NET_UNORDERED => {
                // Built directly, sized once: stateright's constructor inserts one envelope
                // at a time and rehashes as the map grows. A fixed-seed hasher keeps the
                // iteration order (hence `actions()` order and node numbering) a function
                // of the packed words.
                let ids = &w[3..];
                let mut map = HashableHashMap::with_capacity_and_hasher(
                    ids.len(),
                    ahash::RandomState::with_seeds(1, 2, 3, 4),
                );
                // `pack` writes an envelope's copies consecutively.
                let mut k = 0;
                while k < ids.len() {
                    let run = ids[k..].iter().take_while(|&&x| x == ids[k]).count();
                    map.insert(self.envelopes.get(ids[k]).clone(), run);
                    k += run;
                }
                Network::UnorderedNonDuplicating(map)
            }
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
            + self.actor_hash.capacity() * 8
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

#[cfg(test)]
mod tests {
    use super::{ActorCodec, Codec};
    use crate::engine::hash::fingerprint;
    use petrel_core::Bugs;
    use petrel_spec::model::{PetrelModel, State};
    use petrel_spec::scenario;
    use stateright::actor::{Actor, ActorModelState, Envelope, Id, Network, Out};
    use stateright::Model;
    use std::borrow::Cow;
    use std::sync::Arc;

    /// Packing, fingerprints and their caches on real states: every state of the first BFS
    /// levels of `replication` unpacks to itself, and its fingerprint is the same from a
    /// fresh codec, from the codec that holds its parts, and after the round trip (whose
    /// network iterates in another order).
    #[test]
    fn petrel_states_round_trip_with_stable_fingerprints() {
        let sc = scenario("replication").expect("scenario");
        let m = PetrelModel::new(&sc, Bugs::none());
        let fresh = ActorCodec::default();
        let mut level: Vec<State> = m.init_states();
        let mut seen = std::collections::HashSet::new();
        let mut checked = 0;
        let mut hints = Vec::new();
        for _ in 0..9 {
            let mut codec = ActorCodec::default();
            let mut packed = Vec::new();
            for s in level.drain(..) {
                let fp = fresh.fingerprint(&s, &mut hints);
                let mut words = Vec::new();
                codec.pack(s.clone(), &hints, &mut words);
                packed.push((s, fp, words));
            }
            for (s, fp, words) in &packed {
                let u = codec.unpack(words);
                assert!(u == *s, "round trip changes the state");
                assert_eq!(fresh.fingerprint(&u, &mut hints), *fp);
                assert_eq!(
                    codec.fingerprint(&u, &mut hints),
                    *fp,
                    "cached actor hashes"
                );
                let mut acts = Vec::new();
                m.actions(&u, &mut acts);
                for a in acts {
                    let Some(t) = m.next_state(&u, a) else {
                        continue;
                    };
                    let f = codec.fingerprint(&t, &mut hints);
                    assert_eq!(f, fresh.fingerprint(&t, &mut Vec::new()));
                    if seen.insert(f) {
                        level.push(t);
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    /// A minimal actor, for the network kinds Petrel does not use.
    #[derive(Clone)]
    struct Echo;

    impl Actor for Echo {
        type Msg = u8;
        type State = u8;
        type Timer = ();
        type Random = ();
        type Storage = ();
        fn on_start(&self, _: Id, _: &Option<Self::Storage>, _: &mut Out<Self>) -> u8 {
            0
        }
        fn on_msg(&self, _: Id, _: &mut Cow<u8>, _: Id, _: u8, _: &mut Out<Self>) {}
    }

    fn state(network: Network<u8>) -> ActorModelState<Echo, ()> {
        ActorModelState {
            actor_states: vec![Arc::new(1), Arc::new(2)],
            network,
            timers_set: vec![Default::default(); 2],
            random_choices: vec![Default::default(); 2],
            crashed: vec![false, true],
            history: (),
            actor_storages: vec![None, Some(())],
        }
    }

    #[test]
    fn every_network_kind_round_trips() {
        let env = |src: usize, dst: usize, msg: u8| Envelope {
            src: Id::from(src),
            dst: Id::from(dst),
            msg,
        };
        let envs = [env(0, 1, 7), env(0, 1, 8), env(1, 0, 7), env(0, 1, 7)];
        for net in [
            Network::new_unordered_nonduplicating(envs),
            Network::new_unordered_duplicating_with_last_msg(envs, Some(env(1, 0, 9))),
            Network::new_ordered(envs),
        ] {
            let s = state(net);
            let mut codec = ActorCodec::default();
            let mut hints = Vec::new();
            let fp = codec.fingerprint(&s, &mut hints);
            let mut words = Vec::new();
            codec.pack(s.clone(), &hints, &mut words);
            let mut words2 = Vec::new();
            codec.pack(s.clone(), &[], &mut words2);
            assert_eq!(words, words2, "hints only save work");
            let u = codec.unpack(&words);
            assert!(u == s);
            assert_eq!(codec.fingerprint(&u, &mut hints), fp);
            assert_eq!(fingerprint(&u), fingerprint(&s));
        }
    }
}
