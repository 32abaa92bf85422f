//! The outstanding blocks of one process, sorted by address, with a bucket
//! table per dense region so that "which block does this word point into"
//! costs a range check and a short search, not a search over every block.

/// Bucket width: 4 KiB of address space per table entry.
const BUCKET_SHIFT: u32 = 12;
/// A gap wider than this between two blocks starts a new region (a table
/// entry costs 4 bytes per 4 KiB, so a gap this wide would cost 4 KiB).
const REGION_GAP: u64 = 4 << 20;

/// One outstanding block: where it starts and its requested size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub addr: u64,
    pub size: u64,
}

impl Block {
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// Where a word points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The block's index in address order.
    pub block: u32,
    /// The word is the block's start (else it points inside it).
    pub at_start: bool,
}

struct Region {
    lo: u64,
    hi: u64,
    /// `buckets[i]`: the index of the first block starting at or after `lo + i * 4 KiB`.
    buckets: Vec<u32>,
}

pub struct BlockIndex {
    blocks: Vec<Block>,
    regions: Vec<Region>,
    /// The lowest start and the highest end: most words fail this one test.
    lo: u64,
    span: u64,
}

impl BlockIndex {
    /// `blocks` in any order; sorted here.
    pub fn new(mut blocks: Vec<Block>) -> Self {
        blocks.sort_unstable_by_key(|b| b.addr);
        let mut regions = Vec::new();
        let mut first = 0;
        for i in 1..=blocks.len() {
            let split = i == blocks.len() || blocks[i].addr.saturating_sub(blocks[i - 1].end()) > REGION_GAP;
            if split {
                regions.push(Self::region(&blocks, first, i));
                first = i;
            }
        }
        let lo = blocks.first().map_or(0, |b| b.addr);
        let hi = blocks.iter().map(Block::end).max().map_or(0, |e| e.max(lo + 1));
        Self { blocks, regions, lo, span: hi - lo }
    }

    fn region(blocks: &[Block], first: usize, end: usize) -> Region {
        let lo = blocks[first].addr;
        // A zero-sized block still owns its start address.
        let hi = blocks[first..end].iter().map(|b| b.end().max(b.addr + 1)).max().unwrap_or(lo + 1);
        let n = ((hi - lo) >> BUCKET_SHIFT) as usize + 2;
        let mut buckets = Vec::with_capacity(n);
        let mut j = first;
        for b in 0..n {
            let at = lo + ((b as u64) << BUCKET_SHIFT);
            while j < end && blocks[j].addr < at {
                j += 1;
            }
            buckets.push(j as u32);
        }
        Region { lo, hi, buckets }
    }

    /// What the index holds in memory.
    pub fn heap_bytes(&self) -> usize {
        let buckets: usize = self.regions.iter().map(|r| r.buckets.capacity() * 4).sum();
        self.blocks.capacity() * std::mem::size_of::<Block>() + self.regions.capacity() * std::mem::size_of::<Region>() + buckets
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn block(&self, i: u32) -> Block {
        self.blocks[i as usize]
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The block `word` points into, as valgrind decides it: at or after its
    /// start and before its end (a zero-sized block: its start only).
    #[inline]
    pub fn find(&self, word: u64) -> Option<Hit> {
        if word.wrapping_sub(self.lo) >= self.span {
            return None;
        }
        let r = self.regions.partition_point(|r| r.lo <= word).checked_sub(1)?;
        let region = &self.regions[r];
        if word >= region.hi {
            return None;
        }
        let b = ((word - region.lo) >> BUCKET_SHIFT) as usize;
        let (from, to) = (region.buckets[b] as usize, region.buckets[b + 1] as usize);
        // The last block starting at or before `word`: in this bucket, or the one before it.
        let p = from + self.blocks[from..to].partition_point(|blk| blk.addr <= word);
        let i = p.checked_sub(1)?;
        let blk = self.blocks[i];
        let inside = word < blk.end() || word == blk.addr;
        (inside && blk.addr <= word).then_some(Hit { block: i as u32, at_start: word == blk.addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(blocks: &[(u64, u64)]) -> BlockIndex {
        BlockIndex::new(blocks.iter().map(|&(addr, size)| Block { addr, size }).collect())
    }

    #[test]
    fn words_find_the_block_they_point_into() {
        let ix = index(&[(0x5000, 0x20), (0x1000, 0x10), (0x1010, 0x3000), (0x7f00_0000_0000, 0x100), (0x9000, 0)]);
        assert_eq!(ix.find(0x1000), Some(Hit { block: 0, at_start: true }));
        assert_eq!(ix.find(0x100f), Some(Hit { block: 0, at_start: false }));
        assert_eq!(ix.find(0x1010), Some(Hit { block: 1, at_start: true }));
        assert_eq!(ix.find(0x3fff), Some(Hit { block: 1, at_start: false }), "a block spanning buckets is found from a later one");
        assert_eq!(ix.find(0x4010), None, "past its end");
        assert_eq!(ix.find(0x5018), Some(Hit { block: 2, at_start: false }));
        assert_eq!(ix.find(0x9000), Some(Hit { block: 3, at_start: true }), "a zero-sized block owns its start");
        assert_eq!(ix.find(0x9001), None);
        assert_eq!(ix.find(0x7f00_0000_0080), Some(Hit { block: 4, at_start: false }), "a far region");
        assert_eq!(ix.find(0x7f00_0000_0100), None);
        assert_eq!(ix.find(0x7000_0000_0000), None, "between regions");
        assert_eq!(ix.find(0xfff), None);
        assert_eq!(ix.find(u64::MAX), None);
        assert_eq!(ix.regions.len(), 2);
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let ix = index(&[]);
        assert_eq!(ix.find(0), None);
        assert_eq!(ix.find(0x1234), None);
    }

    #[test]
    fn every_word_of_dense_blocks_agrees_with_a_linear_search() {
        let mut blocks = Vec::new();
        let mut at = 0x10_0000u64;
        for i in 0..500u64 {
            let size = (i * 37) % 300;
            blocks.push((at, size));
            at += size + 16 + (i % 7) * 8;
        }
        let ix = index(&blocks);
        for w in (0x10_0000 - 64..at + 64).step_by(8) {
            let linear = blocks.iter().position(|&(a, s)| w >= a && (w < a + s || w == a));
            assert_eq!(ix.find(w).map(|h| h.block as usize), linear, "word {w:#x}");
        }
    }
}
