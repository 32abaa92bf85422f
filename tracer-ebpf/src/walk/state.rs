//! The walk's state, one entry per thread in a map: never on the BPF stack.
//!
//! Kernels without private BPF stacks give a program and every function and
//! callback it calls 512 bytes in all; the walk runs under a syscall
//! tracepoint or a uprobe program that already holds its own frame, through
//! `bpf_loop` and `bpf_find_vma` callbacks. Per thread rather than per CPU:
//! a uprobe program can be preempted on `PREEMPT` kernels and another
//! thread's walk then runs on the same CPU, while a thread runs one
//! program at a time. The entry stays between walks: its mapping cache is
//! reused while the thread's memory map is unchanged (its mmap lock
//! sequence says so), and it goes with the thread (`process_exit`).

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap},
};
use tracer_common::{ModuleKey, ModuleRows, StopReason};

/// What a mapping holds.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    Empty = 0,
    /// A module with rows.
    Table = 1,
    /// Anonymous executable memory, or a module without unwind information.
    FramePointers = 2,
    /// A file whose table is not loaded (never cached: it may be loaded soon).
    Missing = 3,
}

/// One mapping.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// file offset = address + base
    pub base: u64,
    pub rows: ModuleRows,
    pub code: Code,
    pub _pad: u32,
}

/// The mappings a walk has met: stacks mostly alternate between a program and its C library.
pub const CACHED: usize = 2;

/// One thread's walk.
#[repr(C)]
pub struct Walk {
    /// The memory map (an exec gives the thread another) and its sequence
    /// under which `cache` was filled.
    pub mm: u64,
    pub seq: u64,
    pub cache: [Mapping; CACHED],
    /// What `bpf_find_vma`'s callback found last.
    pub found: Mapping,
    pub found_key: ModuleKey,
    /// The frame being stepped.
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// Frames recorded, and the most the walk may record.
    pub n: u32,
    pub max: u32,
    /// Bit n: frame n's pc is exact (interrupted by a signal), not a return address.
    pub exact: u32,
    pub next_exact: u32,
    /// A [`StopReason`].
    pub reason: u32,
    pub _pad: u32,
    /// The module whose table was missing.
    pub missing: ModuleKey,
}

/// Per thread; allocated as threads first walk.
#[map]
pub static WALKS: HashMap<u32, Walk> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// One zeroed entry, never written: a new thread's entry is inserted from it
/// (a value from the stack would take the whole struct's room there).
#[map]
static BLANK: Array<Walk> = Array::with_max_entries(1, 0);

/// The calling thread's entry, created on its first walk.
#[inline(always)]
pub fn thread_walk(tid: u32) -> Option<*mut Walk> {
    if let Some(w) = WALKS.get_ptr_mut(tid) {
        return Some(w);
    }
    let blank = BLANK.get(0)?;
    // BPF_NOEXIST: only this thread creates its entry.
    WALKS.insert(tid, blank, 1).ok()?;
    WALKS.get_ptr_mut(tid)
}

impl Walk {
    /// Starts a walk at (pc, sp, bp); the cache is kept only if the memory map is what it was filled under.
    #[inline(always)]
    pub fn start(&mut self, pc: u64, sp: u64, bp: u64, max: u32, version: Option<(u64, u64)>) {
        if version != Some((self.mm, self.seq)) {
            for c in self.cache.iter_mut() {
                c.code = Code::Empty;
            }
        }
        (self.pc, self.sp, self.bp) = (pc, sp, bp);
        (self.n, self.max, self.exact, self.next_exact) = (0, max, 0, 0);
        self.reason = StopReason::MaxDepth as u32;
        self.missing = ModuleKey { dev: 0, ino: 0 };
    }

    /// Keeps the cache for the thread's next walk under `version` (an odd
    /// sequence: the map was being changed when it was read, keep nothing).
    #[inline(always)]
    pub fn keep(&mut self, version: Option<(u64, u64)>) {
        (self.mm, self.seq) = match version {
            Some((mm, seq)) if seq & 1 == 0 => (mm, seq),
            _ => (0, u64::MAX),
        };
    }
}
