//! Where the roots are: what a program reaches its heap from without going
//! through the heap. The writable segments of every loaded module (data,
//! relro, bss), each thread's stack from its stack pointer (and the 128-byte
//! red zone below it, as valgrind, when the thread was stopped in user code
//! rather than in a system call), its thread-local storage and control
//! block (at fs_base), and its registers. With glibc's malloc, whose heap
//! is known by its shape, also the rest of the program's writable memory,
//! as valgrind scans it (what a program or a runtime maps for itself:
//! Python's object arenas, a custom pool), except the allocator's heaps
//! and the stacks of threads that have ended. Those glibc keeps for its next
//! thread, as valgrind, from where the thread's stack pointer was at its
//! exit up (its TLS and control block are at the top). Outstanding blocks
//! are never roots, wherever they lie.

use std::collections::HashSet;

use super::index::BlockIndex;

/// glibc malloc's smallest chunk (header included) on 64-bit.
const GLIBC_MIN_CHUNK: u64 = 32;
/// x86-64's red zone below the stack pointer.
const RED_ZONE: u64 = 128;
/// glibc's arenas other than the main one reserve heaps of this size, aligned to it.
const ARENA_HEAP: u64 = 64 << 20;
/// glibc's thread control block (struct pthread, 2,368 bytes in 2.36) starts at fs_base.
const TCB_BYTES: u64 = 4096;
/// Static TLS lies below fs_base: as much as this is scanned when fs_base is in no root.
const TLS_BELOW: u64 = 1 << 20;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// Mapped MAP_SHARED (`s`), not private (`p`).
    pub shared: bool,
    /// (device, inode); inode 0 for anonymous memory.
    pub file: (String, u64),
    pub path: String,
}

impl Region {
    fn anonymous(&self) -> bool {
        self.file.1 == 0 && !self.path.starts_with('[')
    }

    fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// No access at all: a guard page or a reservation.
    fn reserved(&self) -> bool {
        !self.read && !self.write && !self.exec && self.file.1 == 0
    }
}

pub fn parse_maps(text: &str) -> Vec<Region> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Region> {
    let mut f = line.splitn(6, ' ');
    let (range, perms, _offset, dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let path = f.next().unwrap_or("").trim_start().to_owned();
    let (start, end) = range.split_once('-')?;
    let p = perms.as_bytes();
    Some(Region {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        read: p.first() == Some(&b'r'),
        write: p.get(1) == Some(&b'w'),
        exec: p.get(2) == Some(&b'x'),
        shared: p.get(3) == Some(&b's'),
        file: (dev.to_owned(), inode.parse().ok()?),
        path,
    })
}

/// A stopped thread, as the scan needs it.
#[derive(Debug, Clone, Default)]
pub struct Thread {
    pub tid: u32,
    pub sp: u64,
    pub fs_base: u64,
    /// Stopped inside a system call: what lies below its stack pointer is
    /// dead (else, interrupted in user code, a leaf function's 128-byte red
    /// zone below it may be live).
    pub in_syscall: bool,
    /// Every general-purpose register.
    pub registers: Vec<u64>,
}

/// Root ranges (sorted, disjoint, no outstanding block inside) and register values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Roots {
    pub ranges: Vec<(u64, u64)>,
    pub values: Vec<u64>,
}

/// The roots of a process from its maps and its threads. `glibc_heap`: the
/// allocator is glibc's, so the program's other writable memory is scanned
/// too. `heap_known`: every outstanding block of the process is in `blocks`
/// (traced since its exec); else (attached, or a fork that has not exec'd)
/// all its writable memory but the known blocks is a root: a block held
/// only by one allocated before tracing began is not lost. `ended`: the
/// stack pointers ended threads left, oldest first.
pub fn find(maps: &[Region], threads: &[Thread], ended: &[u64], blocks: &BlockIndex, glibc_heap: bool, heap_known: bool) -> Roots {
    let modules: HashSet<&(String, u64)> = maps.iter().filter(|r| r.exec && r.file.1 != 0).map(|r| &r.file).collect();
    let is_module = |r: &Region| r.file.1 != 0 && modules.contains(&r.file);
    let stack_of = |r: &Region| threads.iter().any(|t| r.contains(t.sp));
    let mut ranges = Vec::new();
    for (i, r) in maps.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &maps[p]).filter(|p| p.end == r.start);
        if !(r.read && r.write) || stack_of(r) || leaktrace_own(r) || (r.anonymous() && prev.is_some_and(leaktrace_own)) {
            continue;
        }
        let next = maps.get(i + 1).filter(|n| n.start == r.end);
        let bss = r.anonymous() && prev.is_some_and(is_module);
        // Behind a guard page: a thread stack (no live thread's, here).
        let guarded = prev.is_some_and(Region::reserved);
        let own = glibc_heap && (r.anonymous() || r.file.1 != 0) && !arena_heap(r, next) && !guarded;
        let stack = r.anonymous() && guarded && !arena_heap(r, next);
        if is_module(r) || bss || own || !heap_known {
            ranges.push((r.start, r.end));
        } else if let Some(&sp) = ended.iter().rev().find(|&&sp| stack && r.contains(sp)) {
            // An ended thread's, kept by glibc: from the last pointer left in
            // it (a later thread's, when glibc handed it on). Only memory
            // shaped as a thread stack: where glibc unmapped one, an
            // allocator's memory may lie now.
            ranges.push((sp, r.end));
        }
    }
    for t in threads {
        if let Some(r) = maps.iter().find(|r| r.contains(t.sp) && r.read) {
            let below = if t.in_syscall { 0 } else { RED_ZONE };
            ranges.push((t.sp.saturating_sub(below).max(r.start), r.end));
        }
    }
    for t in threads {
        let covered = ranges.iter().any(|&(s, e)| (s..e).contains(&t.fs_base));
        if let (false, Some(r)) = (covered, maps.iter().find(|r| r.contains(t.fs_base) && r.read)) {
            ranges.push((t.fs_base.saturating_sub(TLS_BELOW).max(r.start), (t.fs_base + TCB_BYTES).min(r.end)));
        }
    }
    let values = threads.iter().flat_map(|t| t.registers.iter().copied()).collect();
    // Between two known blocks of glibc's heap, less than a chunk holds no
    // other block: only a chunk header and the first block's padding.
    let min_gap = if glibc_heap { GLIBC_MIN_CHUNK } else { 0 };
    Roots { ranges: without_blocks(merge(ranges), blocks, min_gap), values }
}

/// leaktrace's in-process recorder (its library's data) and the ring it
/// writes: they hold the address of every block, and are not the program's.
fn leaktrace_own(r: &Region) -> bool {
    r.path.starts_with("/memfd:leaktrace-")
}

/// A heap of one of glibc's other arenas: aligned to its 64 MiB reservation,
/// whose remainder is mapped without access right after it.
fn arena_heap(r: &Region, next: Option<&Region>) -> bool {
    r.anonymous()
        && r.start.is_multiple_of(ARENA_HEAP)
        && (r.end - r.start == ARENA_HEAP || next.is_some_and(|n| n.reserved() && n.end == r.start + ARENA_HEAP))
}

fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The ranges less every outstanding block's bytes, and less the gaps
/// between two blocks narrower than `min_gap` (under `attach`, where the
/// heap is a root, 100,000 blocks would otherwise leave 100,000 ranges of a
/// chunk header each, read one by one while the target is stopped).
fn without_blocks(ranges: Vec<(u64, u64)>, blocks: &BlockIndex, min_gap: u64) -> Vec<(u64, u64)> {
    let all = blocks.blocks();
    let mut out = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        let mut at = s;
        // Blocks are sorted by start and do not overlap: the first that ends after `s`.
        let first = all.partition_point(|b| b.end() <= s);
        for b in all[first..].iter().take_while(|b| b.addr < e) {
            let after_block = at > s || (first > 0 && all[first - 1].end() == s);
            if b.addr > at && !(after_block && b.addr - at < min_gap) {
                out.push((at, b.addr));
            }
            at = at.max(b.end());
        }
        if at < e {
            out.push((at, e));
        }
    }
    out
}

#[cfg(test)]
#[path = "roots_tests.rs"]
mod tests;
