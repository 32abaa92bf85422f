//! The stack walk, in the process itself: the same CFI rules and the same
//! tables as the kernel's walker (`tracer_common::unwind`, the rows
//! leaktrace publishes in the shared file), reading the live stack.
//!
//! Reads stay inside the thread's stack, between the allocator call's stack
//! pointer and the stack's top: a frame that points elsewhere ends the walk
//! (ReadFault) instead of faulting the program.

use tracer_common::inprocess::Shared;
use tracer_common::unwind::{search_range, step_frame_pointer, step_rule, Regs, StackMemory};
use tracer_common::{ModuleKey, ModuleRows, StopReason, UnwindRow, MAX_FRAMES};

use crate::modules;

/// The running thread's stack from `lo` up to `hi`.
struct Live {
    lo: u64,
    hi: u64,
}

impl StackMemory for Live {
    #[inline(always)]
    fn word(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi || !addr.is_multiple_of(8) {
            return None;
        }
        // SAFETY: inside the thread's own stack, aligned.
        Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }
}

/// What the walk found.
pub struct Walked {
    pub frames: [u64; MAX_FRAMES],
    pub n: usize,
    pub exact: u32,
    pub stop: StopReason,
    /// The registers of the frame the walk could not step over.
    pub last: Regs,
    pub missing: ModuleKey,
    /// The stack's readable top (a copy for userspace ends there).
    pub top: u64,
}

unsafe extern "C" {
    /// The main thread's stack at the program's start (the dynamic linker's).
    static __libc_stack_end: *const core::ffi::c_void;
}

/// The top of the running thread's stack, or `sp` where it is unknown.
fn stack_top(sp: u64) -> u64 {
    // Above the start's stack pointer: argc, argv and envp pointers, auxv.
    const ABOVE_START: u64 = 512;
    // glibc puts a thread's descriptor (what the thread pointer points at)
    // at the top of the block its stack is carved from. The main thread's
    // descriptor is elsewhere, below its stack.
    let tp: u64;
    // SAFETY: reads the thread pointer's self-reference (x86-64 TLS ABI).
    unsafe { core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    if tp > sp && tp - sp < 1 << 30 {
        return tp;
    }
    // SAFETY: a pointer the dynamic linker sets before any code runs.
    let end = unsafe { __libc_stack_end } as u64;
    if end > sp && end - sp < 1 << 30 {
        return end + ABOVE_START;
    }
    sp
}

/// Walks from the frame `start` (its pc a return address) up to `max` frames.
pub fn walk(shared: &Shared, start: Regs, max: usize) -> Walked {
    let top = stack_top(start.sp);
    let mem = Live { lo: start.sp, hi: top };
    let mut w = Walked { frames: [0; MAX_FRAMES], n: 0, exact: 0, stop: StopReason::End, last: start, missing: ModuleKey::default(), top };
    let (mut here, mut exact) = (start, false);
    let max = max.min(MAX_FRAMES);
    // Consecutive frames are mostly in one module: its segment and rows.
    let mut last: Option<(modules::Segment, Option<ModuleRows>)> = None;
    loop {
        if w.n >= max {
            w.stop = StopReason::MaxDepth;
            break;
        }
        w.frames[w.n] = here.pc;
        if exact {
            w.exact |= 1 << w.n;
        }
        w.n += 1;
        w.last = here;
        let lookup = if exact { here.pc } else { here.pc.wrapping_sub(1) };
        let known = last.filter(|(seg, _)| (seg.start..seg.end).contains(&lookup));
        let found = known.or_else(|| modules::find(lookup).map(|seg| (seg, shared.module(&seg.key))));
        last = found;
        let step = match found {
            Some((seg, rows)) => match rows {
                Some(rows) if rows.count > 0 => match find_row(shared, rows, lookup.wrapping_add(seg.base)) {
                    Some(row) => step_rule(row, lookup, here, &mem),
                    None => step_frame_pointer(here, &mem),
                },
                Some(_) => step_frame_pointer(here, &mem),
                None => {
                    w.missing = seg.key;
                    Err(StopReason::NoTable)
                }
            },
            // Not in a module: JIT code, stepped by frame pointers as the kernel does.
            None => step_frame_pointer(here, &mem),
        };
        match step {
            Ok(caller) => (here, exact) = (caller.regs, caller.exact),
            Err(reason) => {
                w.stop = reason;
                break;
            }
        }
    }
    w
}

/// The row in force at file offset `offset` of a module.
#[inline(always)]
fn find_row(shared: &Shared, m: ModuleRows, offset: u64) -> Option<UnwindRow> {
    let (mut lo, mut hi) = search_range(m.count, m.pages, offset, |p| if p < m.pages { shared.page(m.pages_first + p) } else { None });
    // The last row at or below `offset`, in [lo, hi).
    let mut found = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row = shared.row(m.first + mid)?;
        if u64::from(row.offset) <= offset {
            found = Some(row);
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    found
}
