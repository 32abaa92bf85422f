//! Reading ahead along a chain. A linked list puts one block at a time on
//! the mark stack: read block by block, 100 MiB of 1 KiB nodes costs 100,000
//! system calls. When the stack holds little, the blocks around the one
//! wanted are read with it in one call (the heap's neighbours were mostly
//! allocated together, and a list tends to run through them in order); the
//! window widens while its blocks are used and narrows while they are not,
//! so a chain in random order costs little more than block by block.

use super::index::BlockIndex;
use super::Memory;

/// Bytes per read (and the most a read buffer holds), here and in mark.rs.
pub const BATCH_BYTES: usize = 1 << 20;

/// The narrowest and the first window.
const MIN_SPAN: u64 = 16 << 10;
const FIRST_SPAN: u64 = 256 << 10;
/// Blocks further apart than this are not read together (the gap may be unmapped).
const MAX_GAP: u64 = 4096;

pub struct Window {
    start: u64,
    bytes: Vec<u8>,
    /// Bytes the next window may span.
    span: u64,
    /// Blocks in the window, and how many were scanned from it.
    blocks: usize,
    used: usize,
}

impl Window {
    pub fn new() -> Self {
        Self { start: 0, bytes: Vec::new(), span: FIRST_SPAN, blocks: 0, used: 0 }
    }

    /// The bytes it holds on to.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The bytes of block `b`, `[start, end)` (at most one batch, not
    /// empty), read with its neighbours unless the window holds them; and
    /// the bytes that could not be read.
    pub fn block(&mut self, index: &BlockIndex, b: u32, (start, end): (u64, u64), mem: &mut impl Memory) -> (&[u8], u64) {
        let held = !self.bytes.is_empty() && start >= self.start && end <= self.start + self.bytes.len() as u64;
        let unreadable = if held { 0 } else { self.load(index, b, mem) };
        self.used += 1;
        (&self.bytes[(start - self.start) as usize..(end - self.start) as usize], unreadable)
    }

    /// Reads the blocks around block `b`, first in the direction the chain
    /// went (down when `b` lies below the last window).
    fn load(&mut self, index: &BlockIndex, b: u32, mem: &mut impl Memory) -> u64 {
        if self.blocks > 0 {
            let wider = self.used * 4 >= self.blocks;
            self.span = if wider { (self.span * 2).min(BATCH_BYTES as u64) } else { (self.span / 2).max(MIN_SPAN) };
        }
        let all = index.blocks();
        let (mut lo, mut hi) = (b as usize, b as usize);
        let fits = |lo: usize, hi: usize| all[hi].end() - (all[lo].addr & !7) <= self.span;
        let near = |a: usize| all[a + 1].addr.saturating_sub(all[a].end()) <= MAX_GAP;
        let downward = all[lo].addr < self.start;
        for pass in 0..2 {
            if (pass == 0) == downward {
                while lo > 0 && near(lo - 1) && fits(lo - 1, hi) {
                    lo -= 1;
                }
            } else {
                while hi + 1 < all.len() && near(hi) && fits(lo, hi + 1) {
                    hi += 1;
                }
            }
        }
        self.start = all[lo].addr & !7;
        let len = (all[hi].end() - self.start) as usize;
        self.bytes.resize(len, 0);
        self.blocks = hi - lo + 1;
        self.used = 0;
        mem.read(&[(self.start, len)], &mut self.bytes)
    }
}
