//! One scan of one process: its roots and outstanding blocks in, each
//! block's class out, summed per allocating stack.

use std::collections::HashMap;
use std::time::Instant;

use super::fds::FdWatch;
use super::index::{Block, BlockIndex};
use super::mark::{Class, Marker, Work};
use super::remote::Remote;
use super::roots::{self, Region, Thread};
use super::Memory;
use crate::aggregate::StackId;

/// What to scan: a stopped process, its threads and what it holds.
pub struct ScanInput<'a> {
    pub pid: u32,
    pub threads: &'a [Thread],
    /// Outstanding heap blocks in address order, and the stack that allocated each.
    pub blocks: Vec<Block>,
    pub stacks: Vec<StackId>,
    /// Outstanding descriptors, each with the stack that opened it.
    pub fds: Vec<(i32, StackId)>,
    /// The allocator is glibc's malloc (see [`roots`]).
    pub glibc: bool,
    /// Every outstanding block of the process is known (see [`roots::find`]).
    pub heap_known: bool,
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
    let roots = roots::find(maps, input.threads, &index, input.glibc, input.heap_known);
    let open: Vec<i32> = input.fds.iter().map(|f| f.0).collect();
    let mut fds = FdWatch::new(&open);
    let mut marker = Marker::new(&index, mem, input.glibc, Some(&mut fds));
    marker.scan_values(&roots.values);
    marker.scan_roots(&roots.ranges);
    let (classes, mut work) = marker.finish();
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
    }
}
