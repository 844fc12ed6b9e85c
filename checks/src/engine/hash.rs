//! State fingerprints.
//!
//! A state is stored only as its 64-bit fingerprint, so two distinct states with equal
//! fingerprints would silently merge (and hide whatever lies behind the second). The
//! fingerprint therefore uses std's SipHash-1-3 (`DefaultHasher::new()`, fixed keys, so runs are
//! deterministic) rather than a faster multiply-xor hash whose collision behaviour on the
//! highly structured `Hash` streams of model states is unknown. With 64 bits the chance of any
//! collision among `n` states is about `n² / 2⁶⁵` (≈ 3·10⁻⁶ for ten million states).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Non-zero 64-bit fingerprint of `value` (0 is the empty-slot marker of
/// [`super::table::FpTable`]; the single fingerprint 0 is folded onto 1).
#[inline]
pub(crate) fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
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

/// Cheap hasher for in-memory maps keyed by integers (the fairness-class interner), where a
/// collision only costs a probe. Not used for fingerprints.
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// `HashMap` with [`IntHasher`].
pub(crate) type IntMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IntHasher>>;
