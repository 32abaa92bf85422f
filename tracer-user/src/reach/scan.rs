//! One scan of one process: its roots and outstanding blocks in, each
//! block's class out, summed per allocating stack.

use std::collections::HashMap;
use std::time::Instant;

use super::fds::FdWatch;
use super::index::{Block, BlockIndex};
use super::mark::{Class, Marker, Work, REGISTER};
use super::remote::Remote;
use super::roots::{self, Region, Thread};
use super::Memory;
use crate::aggregate::StackId;

/// What to scan: a stopped process, its threads and what it holds.
pub struct ScanInput<'a> {
    pub pid: u32,
    pub threads: &'a [Thread],
    /// Where the process's ended threads left their stack pointers, oldest first.
    pub ended: &'a [u64],
    /// Outstanding heap blocks in address order, and the stack that allocated each.
    pub blocks: Vec<Block>,
    pub stacks: Vec<StackId>,
    /// Outstanding descriptors, each with the stack that opened it.
    pub fds: Vec<(i32, StackId)>,
    /// The allocator is glibc's malloc (see [`roots`]).
    pub glibc: bool,
    /// Every outstanding block of the process is known (see [`roots::find`]).
    pub heap_known: bool,
    /// Explain why each block of at least this many bytes that is not lost
    /// is reached ([`ScanResult::explained`]): a debugging aid.
    pub explain: Option<u64>,
}

/// The blocks of one class that one stack allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackClass {
    pub stack: StackId,
    pub class: Class,
    pub count: u64,
    pub bytes: u64,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanResult {
    pub pid: u32,
    /// Sorted by stack: only the classes a stack has (24 bytes each).
    pub per_stack: Vec<StackClass>,
    /// Descriptors whose number is found in a lost block and no live one, per opening stack.
    pub owned_by_lost: HashMap<StackId, u64>,
    pub blocks: u64,
    pub threads: u32,
    pub heap_known: bool,
    pub work: Work,
    /// How long the scan itself took.
    pub scan_ms: f64,
    /// How long the target was held stopped for it (attach), when known.
    pub stopped_ms: Option<f64>,
    /// With [`ScanInput::explain`]: one line per block reached, from the
    /// block to the root (see [`explain`]).
    pub explained: Vec<String>,
}

/// Scans a process stopped by the caller (its threads' registers taken).
pub fn scan(input: ScanInput) -> std::io::Result<ScanResult> {
    // Paths are bytes (any encoding); the scan only tells kinds of regions apart by them.
    let maps = roots::parse_maps(&String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/maps", input.pid))?));
    let mut mem = Remote::new(input.pid);
    Ok(scan_with(input, &maps, &mut mem))
}

/// The scan over given maps and memory (tests give their own).
pub fn scan_with(input: ScanInput, maps: &[Region], mem: &mut impl Memory) -> ScanResult {
    let started = Instant::now();
    let index = BlockIndex::new(input.blocks);
    let roots = roots::find(maps, input.threads, input.ended, &index, input.glibc, input.heap_known);
    let open: Vec<i32> = input.fds.iter().map(|f| f.0).collect();
    let mut fds = FdWatch::new(&open);
    let mut marker = Marker::new(&index, mem, input.glibc, Some(&mut fds));
    if input.explain.is_some() {
        marker.keep_reasons();
    }
    marker.scan_values(&roots.values);
    marker.scan_roots(&roots.ranges);
    let (classes, mut work, reasons) = marker.finish_with_reasons();
    let explained = match (input.explain, reasons) {
        (Some(min), Some(reasons)) => explain(&index, &classes, &reasons, maps, input.threads, min),
        _ => Vec::new(),
    };
    work.memory_bytes += (input.stacks.capacity() * std::mem::size_of::<StackId>()) as u64;
    let mut sums: HashMap<(StackId, Class), (u64, u64)> = HashMap::new();
    for ((b, stack), class) in index.blocks().iter().zip(&input.stacks).zip(&classes) {
        let e = sums.entry((*stack, *class)).or_default();
        e.0 += 1;
        e.1 += b.size;
    }
    let mut per_stack: Vec<StackClass> =
        sums.into_iter().map(|((stack, class), (count, bytes))| StackClass { stack, class, count, bytes }).collect();
    per_stack.sort_unstable_by_key(|s| (s.stack, s.class));
    let owned = fds.owned_by_lost();
    let mut owned_by_lost: HashMap<StackId, u64> = HashMap::new();
    for (fd, stack) in &input.fds {
        if owned.binary_search(fd).is_ok() {
            *owned_by_lost.entry(*stack).or_default() += 1;
        }
    }
    ScanResult {
        pid: input.pid,
        per_stack,
        owned_by_lost,
        blocks: index.len() as u64,
        threads: input.threads.len() as u32,
        heap_known: input.heap_known,
        work,
        scan_ms: started.elapsed().as_secs_f64() * 1e3,
        stopped_ms: None,
        explained,
    }
}

/// Why each block of at least `min` bytes that is not lost was reached: the
/// chain of words from it back to a root, each word's address and where it
/// lies — a block (its start, size and class), a thread's register, or a
/// root's region as /proc/PID/maps gives it (and whose stack it is):
///
/// `0x5581f000 (15360 B, reachable) <- 0x7ffd1230 in 7ffd0000-7ffd2000 rw-p [stack] (stack of 812, sp 0x7ffd11f8)`
pub fn explain(index: &BlockIndex, classes: &[Class], reasons: &[u64], maps: &[Region], threads: &[Thread], min: u64) -> Vec<String> {
    let name = |c: Class| match c {
        Class::Definite => "definitely lost",
        Class::Indirect => "indirectly lost",
        Class::Possible => "possibly lost",
        Class::Reachable => "reachable",
    };
    let describe = |b: usize| {
        let blk = index.block(b as u32);
        format!("{:#x} ({} B, {})", blk.addr, blk.size, name(classes[b]))
    };
    let mut out = Vec::new();
    for (b, blk) in index.blocks().iter().enumerate() {
        if blk.size < min || !matches!(classes[b], Class::Possible | Class::Reachable) {
            continue;
        }
        let mut line = describe(b);
        let mut at = b;
        // A chain is as long as the blocks it runs through, at most.
        for _ in 0..index.len() {
            let from = reasons[at];
            if from == REGISTER {
                line.push_str(" <- a register");
                break;
            }
            if let Some(hit) = index.find(from).filter(|h| h.block as usize != at) {
                let p = hit.block as usize;
                line.push_str(&format!(" <- {from:#x} (+{}) in {}", from - index.block(hit.block).addr, describe(p)));
                at = p;
                continue;
            }
            line.push_str(&format!(" <- {from:#x} in {}", region_of(maps, threads, from)));
            break;
        }
        out.push(line);
    }
    out
}

/// The maps line of the region `addr` lies in, and the thread whose stack it is.
pub(super) fn region_of(maps: &[Region], threads: &[Thread], addr: u64) -> String {
    let Some(r) = maps.iter().find(|r| (r.start..r.end).contains(&addr)) else { return "no mapped region".into() };
    let flag = |on: bool, c: char| if on { c } else { '-' };
    let perms = format!("{}{}{}{}", flag(r.read, 'r'), flag(r.write, 'w'), flag(r.exec, 'x'), if r.shared { 's' } else { 'p' });
    let mut s = format!("{:x}-{:x} {perms} {} {} {}", r.start, r.end, r.file.0, r.file.1, r.path);
    if let Some(t) = threads.iter().find(|t| (r.start..r.end).contains(&t.sp)) {
        s.push_str(&format!(" (stack of {}, sp {:#x})", t.tid, t.sp));
    }
    s.trim_end().to_owned()
}
