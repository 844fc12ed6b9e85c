//! A vector stored in fixed-size blocks.
//!
//! The graph's per-state and per-edge arrays grow to millions of entries one push at a time.
//! In a `Vec`, each doubling copies everything into a new allocation while the old one is
//! still resident, so the peak memory of a run is up to twice the data (and the allocator
//! may keep the freed block around). In blocks, growing allocates one more block and never
//! moves anything: the resident size stays within one block of the data.

use std::ops::{Index, IndexMut};

/// log2 of the entries per block.
const BLOCK_BITS: u32 = 16;
const BLOCK: usize = 1 << BLOCK_BITS;

pub(crate) struct BlockVec<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for BlockVec<T> {
    fn default() -> Self {
        BlockVec {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> BlockVec<T> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn push(&mut self, v: T) {
        match self.blocks.last_mut() {
            Some(b) if b.len() < BLOCK => b.push(v),
            _ => {
                // The first block starts small: many graphs are tiny.
                let mut b = Vec::with_capacity(if self.blocks.is_empty() { 64 } else { BLOCK });
                b.push(v);
                self.blocks.push(b);
            }
        }
        self.len += 1;
    }

    /// Releases the unused capacity of the last block.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some(b) = self.blocks.last_mut() {
            b.shrink_to_fit();
        }
    }

    /// Bytes allocated, from the blocks' capacities.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<T>()
    }
}

impl<T> Index<usize> for BlockVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.blocks[i >> BLOCK_BITS][i & (BLOCK - 1)]
    }
}

impl<T> IndexMut<usize> for BlockVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.blocks[i >> BLOCK_BITS][i & (BLOCK - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::{BlockVec, BLOCK};

    #[test]
    fn push_index_across_blocks() {
        let mut v = BlockVec::default();
        for i in 0..3 * BLOCK + 5 {
            v.push(i as u32);
        }
        assert_eq!(v.len(), 3 * BLOCK + 5);
        for i in [0, 63, 64, BLOCK - 1, BLOCK, 2 * BLOCK + 1, 3 * BLOCK + 4] {
            assert_eq!(v[i], i as u32);
        }
        v[BLOCK] = 7;
        assert_eq!(v[BLOCK], 7);
        v.shrink_to_fit();
        assert!(v.bytes() >= v.len() * 4);
    }
}
