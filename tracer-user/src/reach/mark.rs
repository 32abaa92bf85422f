//! valgrind memcheck's leak search (mc_leakcheck.c) over leaktrace's
//! outstanding blocks: every aligned word of the roots that points to a
//! block's start makes it reachable, one that points inside it possibly
//! reachable; blocks are scanned in turn, transitively (a block reached only
//! through a possibly reachable one is possibly reachable too, and is raised
//! when a start pointer from a reachable one turns up). What is left is
//! lost: in address order, each lost block not yet claimed leads a clique
//! and claims every lost block it reaches as indirectly lost; the leaders
//! are definitely lost.
//!
//! Memory is read in batches (up to [`BATCH_BLOCKS`] blocks and
//! [`BATCH_BYTES`] a read) into one reused buffer: what is held is one state
//! byte per block, the mark stack and that buffer, never a copy of the heap.

use super::fds::FdWatch;
use super::index::{BlockIndex, Hit};
use super::window::{Window, BATCH_BYTES};
use super::Memory;

/// Blocks per read (the kernel's IOV_MAX).
pub const BATCH_BLOCKS: usize = 1024;
/// Root ranges this close are read as one piece.
const JOIN_GAP: u64 = 4096;
/// A batch of this many blocks or fewer is read through the window (a chain).
const FEW: usize = 2;

const UNREACHED: u8 = 0;
const POSSIBLE: u8 = 1;
const REACHABLE: u8 = 2;
const INDIRECT: u8 = 3;

/// valgrind's four kinds of leak, for one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Nothing points to it, or only other lost blocks that it leads (a clique's leader).
    Definite,
    /// Reachable only from a definitely lost block.
    Indirect,
    /// Reachable from the roots only through a pointer into its interior.
    Possible,
    /// Reachable from the roots through pointers to the start of each block on the way.
    Reachable,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Definite, Class::Indirect, Class::Possible, Class::Reachable];

    /// valgrind's names (`--show-leak-kinds`, `--errors-for-leak-kinds`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Definite => "definite",
            Self::Indirect => "indirect",
            Self::Possible => "possible",
            Self::Reachable => "reachable",
        }
    }
}

/// How a word found while scanning counts.
#[derive(Clone, Copy)]
enum Mode {
    /// From the roots or a block they reach; `definite`: the source is reachable, not possibly.
    Live { definite: bool },
    /// Inside the lost clique led by this block.
    Clique { leader: u32 },
}

/// What a scan read, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub root_bytes: u64,
    pub block_bytes: u64,
    /// Bytes that could not be read (zeros were scanned instead).
    pub unreadable_bytes: u64,
    /// The scan's own memory at the end: the block index, the stacks, a
    /// state byte and a class per block, the mark stack and the read buffers.
    pub memory_bytes: u64,
}

pub struct Marker<'a, M: Memory> {
    index: &'a BlockIndex,
    mem: &'a mut M,
    state: Vec<u8>,
    stack: Vec<u32>,
    buf: Vec<u8>,
    /// glibc malloc: a word at the offset of the next chunk's header is the
    /// allocator's (its bins and top point there), never the program's.
    chunk_headers: bool,
    fds: Option<&'a mut FdWatch>,
    window: Window,
    pub work: Work,
    /// When asked ([`Marker::keep_reasons`]): for each block, the address of
    /// the word that last raised its state ([`REGISTER`] for a register).
    reasons: Option<Vec<u64>>,
}

/// The reason of a block raised by a register's value.
pub const REGISTER: u64 = 0;

/// glibc's chunk size for a request of `n` bytes (request2size).
fn chunk_size(n: u64) -> u64 {
    ((n + 8 + 15) & !15).max(32)
}

impl<'a, M: Memory> Marker<'a, M> {
    pub fn new(index: &'a BlockIndex, mem: &'a mut M, chunk_headers: bool, fds: Option<&'a mut FdWatch>) -> Self {
        Self {
            index,
            mem,
            state: vec![UNREACHED; index.len()],
            stack: Vec::new(),
            buf: Vec::new(),
            chunk_headers,
            fds,
            window: Window::new(),
            work: Work::default(),
            reasons: None,
        }
    }

    /// Notes, for each block, where the word that raised it lies (see
    /// [`Marker::finish_with_reasons`]); a scan made to explain itself.
    pub fn keep_reasons(&mut self) {
        self.reasons = Some(vec![u64::MAX; self.index.len()]);
    }

    /// Values held in registers: each may point to a block.
    pub fn scan_values(&mut self, values: &[u64]) {
        for &w in values {
            if let Some(hit) = self.index.find(w) {
                self.push(w, hit, Mode::Live { definite: true }, REGISTER);
            }
        }
        self.drain(None);
    }

    /// Root ranges, read like blocks (up to [`BATCH_BLOCKS`] pieces and
    /// [`BATCH_BYTES`] a read), each batch drained before the next. When a
    /// heap is a root, the ranges are the many small gaps between its known
    /// blocks: a range that follows the one before within [`JOIN_GAP`] is
    /// read with it in one piece (the block between is read, not scanned).
    pub fn scan_roots(&mut self, ranges: &[(u64, u64)]) {
        let mut reads: Vec<(u64, usize)> = Vec::new();
        // The root parts of the batch: (offset in it, length).
        let mut parts: Vec<(usize, usize, u64)> = Vec::new();
        let mut total = 0usize;
        for &(start, end) in ranges {
            let (mut at, end) = ((start + 7) & !7, end & !7);
            while at < end {
                let len = ((end - at) as usize).min(BATCH_BYTES);
                let last_end = reads.last().map(|&(s, l)| s + l as u64);
                let extra = last_end.filter(|&e| at >= e && at - e <= JOIN_GAP).map(|e| (at - e) as usize + len);
                if let Some(extra) = extra.filter(|&x| total + x <= BATCH_BYTES) {
                    reads.last_mut().expect("joined to a read").1 += extra;
                    parts.push((total + extra - len, len, at));
                    total += extra;
                } else {
                    if !reads.is_empty() && (total + len > BATCH_BYTES || reads.len() == BATCH_BLOCKS) {
                        self.scan_root_batch(&reads, &parts, total);
                        (reads, parts, total) = (Vec::new(), Vec::new(), 0);
                    }
                    reads.push((at, len));
                    parts.push((total, len, at));
                    total += len;
                }
                at += len as u64;
            }
        }
        if !reads.is_empty() {
            self.scan_root_batch(&reads, &parts, total);
        }
    }

    fn scan_root_batch(&mut self, reads: &[(u64, usize)], parts: &[(usize, usize, u64)], total: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(total, 0);
        self.work.unreadable_bytes += self.mem.read(reads, &mut buf);
        for &(at, len, addr) in parts {
            self.work.root_bytes += len as u64;
            self.scan_words(&buf[at..at + len], addr, Mode::Live { definite: true }, false);
        }
        self.buf = buf;
        self.drain(None);
    }

    /// After the roots: the lost blocks' cliques, then each block's class (in address order).
    #[cfg(test)]
    pub fn finish(self) -> (Vec<Class>, Work) {
        let (classes, work, _) = self.finish_with_reasons();
        (classes, work)
    }

    /// [`Marker::finish`], and each block's reason when they were kept:
    /// the address of the word that gave the block its class (a root's, a
    /// block's, or [`REGISTER`]; `u64::MAX` for a definitely lost one).
    pub fn finish_with_reasons(mut self) -> (Vec<Class>, Work, Option<Vec<u64>>) {
        for leader in 0..self.state.len() as u32 {
            if self.state[leader as usize] == UNREACHED {
                self.stack.push(leader);
                self.drain(Some(leader));
            }
        }
        let held = self.state.capacity() + self.stack.capacity() * 4 + self.buf.capacity() + self.window.capacity();
        self.work.memory_bytes = (held + self.index.heap_bytes()) as u64;
        // In place: a class is a byte too.
        let classes = std::mem::take(&mut self.state)
            .into_iter()
            .map(|s| match s {
                REACHABLE => Class::Reachable,
                POSSIBLE => Class::Possible,
                INDIRECT => Class::Indirect,
                _ => Class::Definite,
            })
            .collect();
        (classes, self.work, self.reasons)
    }

    /// A word that points into block `hit`: valgrind's lc_push_*_if_a_chunk_ptr.
    #[inline]
    fn push(&mut self, word: u64, hit: Hit, mode: Mode, from: u64) {
        let b = hit.block as usize;
        let blk = self.index.block(hit.block);
        if !hit.at_start && self.chunk_headers && word == blk.addr + chunk_size(blk.size) - 16 {
            return;
        }
        match mode {
            Mode::Live { definite } => {
                let st = self.state[b];
                if st == REACHABLE {
                    return;
                }
                let via_start = hit.at_start || (st == UNREACHED || definite) && self.heuristic(hit.block, word - blk.addr);
                if via_start && definite {
                    self.state[b] = REACHABLE;
                    self.stack.push(hit.block);
                } else if st == UNREACHED {
                    self.state[b] = POSSIBLE;
                    self.stack.push(hit.block);
                } else {
                    return;
                }
            }
            Mode::Clique { leader } => {
                if self.state[b] == UNREACHED && hit.block != leader {
                    self.state[b] = INDIRECT;
                    self.stack.push(hit.block);
                } else {
                    return;
                }
            }
        }
        if let Some(reasons) = self.reasons.as_mut() {
            reasons[b] = from;
        }
    }

    /// valgrind's default heuristics (`--leak-check-heuristics=all`) for an
    /// interior pointer that stands for the start: a C++ string's characters
    /// (`stdstring`), the second word after a 64-bit length (`length64`) or
    /// after a `new[]` element count (`newarray`). (`multipleinheritance`
    /// is not applied.)
    fn heuristic(&mut self, block: u32, offset: u64) -> bool {
        let blk = self.index.block(block);
        if offset != 8 && offset != 24 || blk.size < offset {
            return false;
        }
        let mut head = [0u8; 24];
        let len = offset.min(16) as usize;
        self.mem.read(&[(blk.addr, len)], &mut head[..len]);
        let word = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        if offset == 24 {
            let (length, capacity) = (word(0), word(1));
            return capacity.checked_add(25) == Some(blk.size) && length <= capacity;
        }
        // length64 (the rest's size) is the special case of newarray (a count dividing it).
        let first = word(0);
        first > 0 && (blk.size - 8).is_multiple_of(first)
    }

    /// Scans the mark stack until it is empty, in batched reads (a chain,
    /// a block or two at a time, through the window).
    fn drain(&mut self, leader: Option<u32>) {
        let mut batch: Vec<(u32, (u64, usize), Mode)> = Vec::with_capacity(BATCH_BLOCKS);
        let mut ranges: Vec<(u64, usize)> = Vec::with_capacity(BATCH_BLOCKS);
        while !self.stack.is_empty() {
            batch.clear();
            let mut total = 0usize;
            while let Some(&b) = self.stack.last() {
                let blk = self.index.block(b);
                let (start, end) = ((blk.addr + 7) & !7, blk.end() & !7);
                let len = end.saturating_sub(start) as usize;
                if !batch.is_empty() && (total + len > BATCH_BYTES || batch.len() == BATCH_BLOCKS) {
                    break;
                }
                self.stack.pop();
                let mode = match leader {
                    // valgrind's is_prior_definite, taken when the block is popped.
                    None => Mode::Live { definite: self.state[b as usize] != POSSIBLE },
                    Some(leader) => Mode::Clique { leader },
                };
                if len > BATCH_BYTES {
                    self.scan_large(start, end, mode);
                } else if len > 0 {
                    batch.push((b, (start, len), mode));
                    total += len;
                }
            }
            self.work.block_bytes += total as u64;
            if batch.len() <= FEW {
                for &(b, (start, len), mode) in &batch {
                    let mut window = std::mem::replace(&mut self.window, Window::new());
                    let (bytes, unreadable) = window.block(self.index, b, (start, start + len as u64), self.mem);
                    self.work.unreadable_bytes += unreadable;
                    self.scan_words(bytes, start, mode, true);
                    self.window = window;
                }
                continue;
            }
            ranges.clear();
            ranges.extend(batch.iter().map(|&(_, r, _)| r));
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(total, 0);
            self.work.unreadable_bytes += self.mem.read(&ranges, &mut buf);
            let mut at = 0;
            for &(_, (start, len), mode) in &batch {
                self.scan_words(&buf[at..at + len], start, mode, true);
                at += len;
            }
            self.buf = buf;
        }
    }

    /// A block larger than one read, in pieces (its targets wait on the stack).
    fn scan_large(&mut self, start: u64, end: u64, mode: Mode) {
        let mut piece = vec![0u8; BATCH_BYTES];
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(BATCH_BYTES);
            self.work.unreadable_bytes += self.mem.read(&[(at, len)], &mut piece[..len]);
            self.work.block_bytes += len as u64;
            self.scan_words(&piece[..len], at, mode, true);
            at += len as u64;
        }
    }

    /// Every aligned word of `bytes` (which start 8-aligned, read from
    /// `addr`). In a block, descriptor numbers are noted too, by which side
    /// of the search found them.
    #[inline]
    fn scan_words(&mut self, bytes: &[u8], addr: u64, mode: Mode, in_block: bool) {
        let index = self.index;
        let lost = matches!(mode, Mode::Clique { .. });
        // Zero words (most of a cleared block) are neither pointers nor,
        // past the first, new descriptor numbers: noted once, after.
        let mut zero = false;
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if w == 0 {
                zero = true;
                continue;
            }
            if in_block {
                if let Some(fds) = self.fds.as_deref_mut() {
                    fds.note(w, lost);
                }
            }
            if let Some(hit) = index.find(w) {
                self.push(w, hit, mode, addr + 8 * i as u64);
            }
        }
        if let (true, true, Some(fds)) = (zero, in_block, self.fds.as_deref_mut()) {
            fds.note(0, lost);
        }
    }
}
