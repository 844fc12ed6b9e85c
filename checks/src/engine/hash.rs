//! State fingerprints.
//!
//! A state is stored only as its 64-bit fingerprint, so two distinct states with equal
//! fingerprints would silently merge (and hide whatever lies behind the second). With an
//! ideal 64-bit hash the chance of any collision among `n` states is about `n² / 2⁶⁵`
//! (≈ 3·10⁻⁶ for ten million states).
//!
//! The hash is `foldhash`'s quality variant with a fixed seed: a folded-multiply hash (one
//! 64×64→128-bit multiplication per 16 bytes, small writes gathered first) with a final
//! avalanche, so every output bit depends on every input bit — the shard uses the top bits
//! and the table the low ones. Deterministic within a build of a given foldhash version (no
//! random keys): runs, thread counts and counterexample tie-breaks are reproducible.

use std::hash::{BuildHasher, Hash};

/// Fixed seed (hexadecimal digits of π).
const SEED: u64 = 0x243F_6A88_85A3_08D3;

/// Non-zero 64-bit fingerprint of `value` (0 is the empty-slot marker of
/// [`super::table::FpTable`]; the single fingerprint 0 is folded onto 1).
#[inline]
pub(crate) fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    match foldhash::quality::FixedState::with_seed(SEED).hash_one(value) {
        0 => 1,
        f => f,
    }
}

/// 64-bit hash of `value` with the fingerprint's hasher (may be 0): for the components of a
/// state that [`fingerprint_of_hashes`] combines.
#[inline]
pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    foldhash::quality::FixedState::with_seed(SEED).hash_one(value)
}

/// Non-zero fingerprint of sequences of component hashes (see [`hash_of`]), taken as one
/// sequence.
#[inline]
pub(crate) fn fingerprint_of_hashes(parts: &[&[u64]]) -> u64 {
    use std::hash::Hasher;
    let mut h = foldhash::quality::FixedState::with_seed(SEED).build_hasher();
    for part in parts {
        for &x in *part {
            h.write_u64(x);
        }
    }
    match h.finish() {
        0 => 1,
        f => f,
    }
}

/// Number of shards is `1 << SHARD_BITS`. Fixed (not derived from the thread count) so that
/// node numbering, and with it every tie-break, is the same for any number of threads.
pub(crate) const SHARD_BITS: u32 = 6;
/// Number of fingerprint-table shards.
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;

/// Shard of a fingerprint: its top bits (the table probes with the low bits).
#[inline]
pub(crate) fn shard_of(fp: u64) -> usize {
    (fp >> (64 - SHARD_BITS)) as usize
}

/// `HashMap` for in-memory maps keyed by integers (the fairness-class interner, the
/// per-chunk candidate index), where a collision only costs a probe. Not used for
/// fingerprints.
pub(crate) type IntMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

#[cfg(test)]
mod tests {
    use super::fingerprint;

    fn assert_distinct(mut fps: Vec<u64>, family: &str) {
        let total = fps.len();
        fps.sort_unstable();
        fps.dedup();
        assert_eq!(fps.len(), total, "fingerprint collision among {family}");
    }

    /// Distinct structured values of one type (small integers, zero runs of different
    /// lengths, nested options) get distinct fingerprints: a sanity check of the mixing, not
    /// a proof.
    #[test]
    fn no_collisions_on_structured_values() {
        let mut tuples = Vec::new();
        let mut nested = Vec::new();
        for a in 0..24u8 {
            for b in 0..24u8 {
                for c in 0..24u16 {
                    tuples.push(fingerprint(&(a, b, c, [0u8; 3])));
                    let o = (a > 0).then_some(a - 1);
                    nested.push(fingerprint(&(o, None::<u8>, vec![b; c as usize + 1])));
                }
            }
        }
        assert_distinct(tuples, "tuples");
        assert_distinct(nested, "nested");
        let n = 3000usize;
        assert_distinct(
            (0..n).map(|k| fingerprint(&vec![0u64; k])).collect(),
            "u64 zeros",
        );
        assert_distinct(
            (0..n).map(|k| fingerprint(&vec![0u8; k])).collect(),
            "u8 zeros",
        );
        assert_distinct(
            (0..n).map(|k| fingerprint(&"x".repeat(k))).collect(),
            "strings",
        );
        let pairs = (0..n as u64).flat_map(|a| {
            (0..64u64).map(move |b| fingerprint(&(a, b.rotate_left((a % 64) as u32))))
        });
        assert_distinct(pairs.collect(), "pairs");
    }

    #[test]
    fn zero_is_never_returned_and_order_matters() {
        assert_ne!(fingerprint(&(1u8, 2u8)), fingerprint(&(2u8, 1u8)));
        assert_ne!(fingerprint(&[0u64; 0][..]), fingerprint(&[0u64; 1][..]));
        assert_ne!(fingerprint(&()), 0);
    }
}
