//! Fingerprint → node-id hash table.
//!
//! One table per shard. A slot is three `u32`s (fingerprint low, fingerprint high, value), so
//! an entry costs 12 bytes and one cache miss instead of the 16 bytes (padding) of a
//! `HashMap<u64, u32>`. Linear probing on the fingerprint's low bits; the shard is chosen
//! from the high bits, so the two never correlate. Fingerprint 0 marks an empty slot, which is
//! why [`super::hash::fingerprint`] never returns 0. Entries are never removed.

/// Open-addressing table from a non-zero 64-bit fingerprint to a `u32` value.
pub(crate) struct FpTable {
    slots: Vec<[u32; 3]>,
    len: usize,
}

/// Smallest capacity; a power of two like every capacity.
const MIN_CAPACITY: usize = 16;

impl FpTable {
    pub(crate) fn new() -> Self {
        FpTable {
            slots: vec![[0; 3]; MIN_CAPACITY],
            len: 0,
        }
    }

    /// Bytes held by the slot array (its capacity, not just the used part).
    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<[u32; 3]>()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn split(fp: u64) -> (u32, u32) {
        (fp as u32, (fp >> 32) as u32)
    }

    /// Value stored for `fp`, if any.
    #[inline]
    pub(crate) fn get(&self, fp: u64) -> Option<u32> {
        debug_assert_ne!(fp, 0);
        let (lo, hi) = Self::split(fp);
        let mask = self.mask();
        let mut i = (fp as usize) & mask;
        loop {
            let slot = &self.slots[i];
            if slot[0] == lo && slot[1] == hi {
                return Some(slot[2]);
            }
            if slot[0] == 0 && slot[1] == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `fp → value` if `fp` is absent; otherwise leaves the table alone. Returns the
    /// value now stored for `fp` and whether it was inserted by this call.
    #[inline]
    pub(crate) fn get_or_insert(&mut self, fp: u64, value: u32) -> (u32, bool) {
        debug_assert_ne!(fp, 0);
        // Keep the load at or below 3/4 so probe sequences stay short.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let (lo, hi) = Self::split(fp);
        let mask = self.mask();
        let mut i = (fp as usize) & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot[0] == lo && slot[1] == hi {
                return (slot[2], false);
            }
            if slot[0] == 0 && slot[1] == 0 {
                *slot = [lo, hi, value];
                self.len += 1;
                return (value, true);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let new_cap = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![[0; 3]; new_cap]);
        let mask = new_cap - 1;
        for slot in old {
            if slot[0] == 0 && slot[1] == 0 {
                continue;
            }
            let fp = (slot[0] as u64) | ((slot[1] as u64) << 32);
            let mut i = (fp as usize) & mask;
            while !(self.slots[i][0] == 0 && self.slots[i][1] == 0) {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FpTable;

    #[test]
    fn insert_get_and_grow() {
        let mut t = FpTable::new();
        for k in 1..10_000u64 {
            let fp = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            assert_eq!(t.get_or_insert(fp, k as u32), (k as u32, true));
        }
        for k in 1..10_000u64 {
            let fp = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            assert_eq!(t.get(fp), Some(k as u32));
            assert_eq!(t.get_or_insert(fp, 0), (k as u32, false));
        }
        assert_eq!(t.get(2), None);
    }
}
