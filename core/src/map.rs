//! A sorted map that costs O(1) to clone and O(1) to hash, for a partition's data.
//!
//! The model needs a replica's applied data inside its state (SAFE-7 is checked against
//! it, a crash keeps what was saved), and the node runs the same state machine. With a
//! plain `BTreeMap` every `Save` copied the whole map, the driver compared old and new
//! key by key, and the event log hashed every key: a write cost O(all data on the node).
//! This map is persistent (an `imbl` B-tree whose nodes are shared between versions):
//! a save clones a pointer, a write changes O(log n) nodes, and two versions that share
//! their root are equal at once. Its hash is kept up to date on every change (a sum of
//! one fixed 64-bit hash per entry, so independent of the order changes happened in):
//! the checker's fingerprints and the event log's save hashes stay O(1) per map.
//!
//! Serialized as a plain map (the same bytes as a `BTreeMap`'s), so the wire and disk
//! formats are unchanged.
use imbl::OrdMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Entries to put and keys to delete.
pub type Change<K, V> = (Vec<(K, V)>, Vec<K>);

#[derive(Clone)]
pub struct Map<K: Ord + Clone, V: Clone> {
    inner: OrdMap<K, V>,
    /// Wrapping sum of [`entry_hash`] over the entries.
    sum: u64,
}

/// A fixed hash (the same in every process and run: the validator compares hashes
/// computed by the node with hashes of the model's values).
struct Fixed(u64);

impl Hasher for Fixed {
    fn finish(&self) -> u64 {
        // A final avalanche so that sums of nearby words do not cancel out.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
}

impl Fixed {
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

fn entry_hash<K: Hash, V: Hash>(k: &K, v: &V) -> u64 {
    let mut h = Fixed(0xcbf2_9ce4_8422_2325);
    k.hash(&mut h);
    v.hash(&mut h);
    h.finish()
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> Map<K, V> {
    pub fn new() -> Self {
        Map {
            inner: OrdMap::new(),
            sum: 0,
        }
    }
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.inner.get(k)
    }
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.inner.contains_key(k)
    }
    /// Set `k` to `v`; the previous value, if any.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let h = entry_hash(&k, &v);
        let old = self.inner.insert(k.clone(), v);
        if let Some(o) = &old {
            self.sum = self.sum.wrapping_sub(entry_hash(&k, o));
        }
        self.sum = self.sum.wrapping_add(h);
        old
    }
    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (key, old) = self.inner.remove_with_key(k)?;
        self.sum = self.sum.wrapping_sub(entry_hash(&key, &old));
        Some(old)
    }
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.inner.iter()
    }
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.inner.keys()
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.inner.values()
    }
    /// The two share their tree: equal without looking at an entry.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.inner.ptr_eq(&other.inner)
    }
    /// What changed from `old` to `self` (entries to put, keys to delete), looking only at
    /// the keys `touched`, if those explain the whole difference: applying the change to
    /// `old` gives a map of `self`'s length and content hash. `None` when other keys
    /// changed too (the caller then compares whole maps). O(touched · log n): how a store
    /// writes what a garbage collection folded in without reading every key.
    pub fn change_on<'a>(
        &self,
        old: &Self,
        touched: impl IntoIterator<Item = &'a K>,
    ) -> Option<Change<K, V>>
    where
        K: 'a,
        V: PartialEq,
    {
        let touched: std::collections::BTreeSet<&K> = touched.into_iter().collect();
        let (mut put, mut del) = (Vec::new(), Vec::new());
        let (mut len, mut sum) = (old.len(), old.sum);
        for k in touched {
            let before = old.get(k);
            match (before, self.get(k)) {
                (Some(b), Some(a)) if a == b => {}
                (b, Some(a)) => {
                    match b {
                        Some(b) => sum = sum.wrapping_sub(entry_hash(k, b)),
                        None => len += 1,
                    }
                    sum = sum.wrapping_add(entry_hash(k, a));
                    put.push((k.clone(), a.clone()));
                }
                (Some(b), None) => {
                    sum = sum.wrapping_sub(entry_hash(k, b));
                    len -= 1;
                    del.push(k.clone());
                }
                (None, None) => {}
            }
        }
        (len == self.len() && sum == self.sum).then_some((put, del))
    }
    /// The order-independent hash of the entries (what `Hash` feeds a hasher).
    pub fn content_hash(&self) -> u64 {
        self.sum
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> Default for Map<K, V> {
    fn default() -> Self {
        Map::new()
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash + PartialEq> PartialEq for Map<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.sum == other.sum
            && (self.ptr_eq(other) || self.iter().eq(other.iter()))
    }
}
impl<K: Ord + Clone + Hash, V: Clone + Hash + Eq> Eq for Map<K, V> {}

impl<K: Ord + Clone + Hash, V: Clone + Hash + PartialEq> PartialEq<BTreeMap<K, V>> for Map<K, V> {
    fn eq(&self, other: &BTreeMap<K, V>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash + Ord> PartialOrd for Map<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord + Clone + Hash, V: Clone + Hash + Ord> Ord for Map<K, V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.ptr_eq(other) {
            return std::cmp::Ordering::Equal;
        }
        self.iter().cmp(other.iter())
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> Hash for Map<K, V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        state.write_u64(self.sum);
    }
}

impl<K: Ord + Clone + Hash + fmt::Debug, V: Clone + Hash + fmt::Debug> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> FromIterator<(K, V)> for Map<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Map::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> Extend<(K, V)> for Map<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> From<BTreeMap<K, V>> for Map<K, V> {
    fn from(m: BTreeMap<K, V>) -> Self {
        m.into_iter().collect()
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash, const N: usize> From<[(K, V); N]> for Map<K, V> {
    fn from(a: [(K, V); N]) -> Self {
        a.into_iter().collect()
    }
}

impl<'a, K: Ord + Clone + Hash, V: Clone + Hash> IntoIterator for &'a Map<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = imbl::ordmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>;
    fn into_iter(self) -> Self::IntoIter {
        self.inner.iter()
    }
}

impl<K: Ord + Clone + Hash + Serialize, V: Clone + Hash + Serialize> Serialize for Map<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de, K, V> Deserialize<'de> for Map<K, V>
where
    K: Ord + Clone + Hash + Deserialize<'de>,
    V: Clone + Hash + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a BTreeMap: duplicate keys resolve as they always did (the last wins).
        Ok(BTreeMap::<K, V>::deserialize(d)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The kept hash is the hash of the contents, however they were reached; equality
        /// and order agree with a BTreeMap's.
        #[test]
        fn hash_and_order_follow_the_contents(
            ops in proptest::collection::vec((0u8..12, proptest::option::of(0u8..4)), 0..60),
            other in proptest::collection::btree_map(0u8..12, 0u8..4, 0..12),
        ) {
            let mut m: Map<u8, u8> = Map::new();
            let mut b = BTreeMap::new();
            for (k, v) in ops {
                match v {
                    Some(v) => { prop_assert_eq!(m.insert(k, v), b.insert(k, v)); }
                    None => { prop_assert_eq!(m.remove(&k), b.remove(&k)); }
                }
            }
            let rebuilt: Map<u8, u8> = b.clone().into();
            prop_assert_eq!(m.content_hash(), rebuilt.content_hash());
            prop_assert!(m == rebuilt);
            prop_assert!(m == b);
            let o: Map<u8, u8> = other.clone().into();
            prop_assert_eq!(m == o, b == other);
            prop_assert_eq!(m.cmp(&o), b.iter().cmp(other.iter()));
            let bytes = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(&bytes, &serde_json::to_string(&b).unwrap());
            let back: Map<u8, u8> = serde_json::from_str(&bytes).unwrap();
            prop_assert!(back == m);
        }

        /// `change_on` finds the change when the touched keys hold all of it, and says
        /// `None` (never a wrong change) when they do not.
        #[test]
        fn change_on_is_exact_or_declines(
            old in proptest::collection::btree_map(0u8..12, 0u8..4, 0..12),
            new in proptest::collection::btree_map(0u8..12, 0u8..4, 0..12),
            touched in proptest::collection::vec(0u8..12, 0..14),
        ) {
            let (o, n): (Map<u8, u8>, Map<u8, u8>) = (old.clone().into(), new.clone().into());
            let explains = (0u8..12).all(|k| touched.contains(&k) || old.get(&k) == new.get(&k));
            match n.change_on(&o, touched.iter()) {
                Some((put, del)) => {
                    prop_assert!(explains);
                    let mut applied = o.clone();
                    for k in &del { applied.remove(k); }
                    applied.extend(put);
                    prop_assert!(applied == n);
                }
                None => prop_assert!(!explains),
            }
        }
    }
}
