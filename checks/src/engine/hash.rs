//! State fingerprints.
//!
//! A state is stored only as its 64-bit fingerprint, so two distinct states with equal
//! fingerprints would silently merge (and hide whatever lies behind the second). With an
//! ideal 64-bit hash the chance of any collision among `n` states is about `n² / 2⁶⁵`
//! (≈ 3·10⁻⁶ for ten million states).
//!
//! [`FpHasher`] is a folded-multiply hash: every word written is xored into the running value,
//! which is then multiplied (64×64→128 bits) by an odd constant and the two halves folded
//! together; `finish` applies a full-avalanche finaliser. This is the construction of wyhash
//! and of ahash's portable fallback (which stateright itself uses for its fingerprints),
//! written from scratch here. It costs one multiplication per word written, where SipHash-1-3
//! (`DefaultHasher`) costs a compression round: on Petrel's actor-model states that was 16%
//! of all checking time. The running value starts from a non-zero seed so that leading zero
//! words are not absorbed. Deterministic: no random keys.

use std::hash::{Hash, Hasher};

/// Seed and multipliers: hexadecimal digits of π (nothing-up-my-sleeve constants); the
/// multipliers are odd.
const SEED: u64 = 0x243F_6A88_85A3_08D3;
const MUL: u64 = 0x1319_8A2E_0370_7345;
const FIN: u64 = 0xA409_3822_299F_31D1;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Streaming fingerprint hasher; see the module documentation.
pub(crate) struct FpHasher(u64);

impl Default for FpHasher {
    fn default() -> Self {
        FpHasher(SEED)
    }
}

impl Hasher for FpHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The tail's length goes into the top byte so that, e.g., [1] and [1, 0] differ.
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn write_u16(&mut self, x: u16) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = fold_mul(self.0 ^ x, MUL);
    }

    #[inline]
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64 after one more fold: every output bit depends on every input bit,
        // which the shard (top bits) and table index (low bits) both rely on.
        let mut h = fold_mul(self.0, FIN);
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }
}

/// Non-zero 64-bit fingerprint of `value` (0 is the empty-slot marker of
/// [`super::table::FpTable`]; the single fingerprint 0 is folded onto 1).
#[inline]
pub(crate) fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = FpHasher::default();
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
