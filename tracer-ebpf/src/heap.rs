//! Uprobes on the allocator that serves `malloc` in the target.
//!
//! Entry probes note the call in PENDING (per thread); one return probe, shared
//! by every allocation function, emits the record with the user stack. The stack
//! is taken at return: the instruction pointer is then in the caller, so the
//! function that called malloc is the first frame even with frame pointers.
//! Calls nested inside another allocator call (realloc(NULL, n) → malloc,
//! realloc(p, 0) → free) belong to the outer call and are not recorded twice.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext,
};
use tracer_common::{AllocFn, Counter, EventKind};

use crate::capture::{emit_small, emit_with_stack, UserRegs};
use crate::maps::{count, sample_every, AddrKey, Pending, PENDING, SAMPLED};

#[inline(always)]
fn enter(func: AllocFn, size: u64, old: u64, out: u64) -> Result<u32, i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // Each thread's entry stays in the table between calls (depth 0 = none in
    // flight) and is removed when the thread exits: a lookup and a write per
    // call instead of an insert and a delete.
    let slot = PENDING.get_ptr_mut(tid);
    if let Some(p) = slot {
        // SAFETY: the entry belongs to this thread.
        if unsafe { (*p).depth } > 0 {
            unsafe { (*p).depth += 1 };
            return Ok(0);
        }
    }
    let every = sample_every();
    // SAFETY: a helper call without arguments.
    if every > 1 && unsafe { bpf_get_prandom_u32() } % every != 0 {
        // Unsampled: no record, no stack. A realloc of a sampled block is
        // always followed, or the block would look leaked.
        // SAFETY: only tested for presence.
        let follows_sampled = old != 0 && unsafe { SAMPLED.get(AddrKey { tgid: pid_tgid >> 32, addr: old }) }.is_some();
        if !follows_sampled {
            count(Counter::Unsampled);
            return Ok(0);
        }
    }
    let pending = Pending { depth: 1, func: func as u32, size, old, out };
    match slot {
        // SAFETY: the entry belongs to this thread.
        Some(p) => unsafe { *p = pending },
        None => {
            if PENDING.insert(tid, pending, 0).is_err() {
                count(Counter::PendingFull);
            }
        }
    }
    Ok(0)
}

/// n * size as calloc sees it. BPF has no 128-bit multiply (LLVM turns an
/// overflow test into one), so: exact when both fit in 32 bits or one is 1;
/// otherwise the request is beyond any real allocation and saturates.
#[inline(always)]
fn product(n: u64, size: u64) -> u64 {
    if (n | size) >> 32 == 0 {
        n * size
    } else if n == 1 {
        size
    } else if size == 1 {
        n
    } else {
        u64::MAX
    }
}

fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

#[uprobe]
pub fn malloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Malloc, arg(&ctx, 0), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn calloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Calloc, product(arg(&ctx, 0), arg(&ctx, 1)), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn realloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Realloc, arg(&ctx, 1), arg(&ctx, 0), 0).unwrap_or(1)
}

#[uprobe]
pub fn reallocarray_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Reallocarray, product(arg(&ctx, 1), arg(&ctx, 2)), arg(&ctx, 0), 0).unwrap_or(1)
}

#[uprobe]
pub fn posix_memalign_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::PosixMemalign, arg(&ctx, 2), 0, arg(&ctx, 0)).unwrap_or(1)
}

/// memalign(align, size) and aligned_alloc(align, size): one shape.
#[uprobe]
pub fn memalign_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Memalign, arg(&ctx, 1), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn aligned_alloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::AlignedAlloc, arg(&ctx, 1), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn valloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Valloc, arg(&ctx, 0), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn pvalloc_enter(ctx: ProbeContext) -> u32 {
    enter(AllocFn::Pvalloc, arg(&ctx, 0), 0, 0).unwrap_or(1)
}

#[uprobe]
pub fn free_enter(ctx: ProbeContext) -> u32 {
    let addr = arg(&ctx, 0);
    if addr == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: a plain read of this thread's entry.
    if unsafe { PENDING.get(tid) }.is_some_and(|p| p.depth > 0) {
        return 0; // inside realloc: the realloc's record covers it
    }
    if sample_every() > 1 && SAMPLED.remove(AddrKey { tgid: pid_tgid >> 32, addr }).is_err() {
        return 0; // not a sampled block
    }
    emit_small(EventKind::Free, pid_tgid, addr, 0, 0, Counter::LostHeap);
    0
}

#[uretprobe]
pub fn alloc_exit(ctx: RetProbeContext) -> u32 {
    try_alloc_exit(&ctx).unwrap_or(1)
}

fn try_alloc_exit(ctx: &RetProbeContext) -> Result<u32, i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let Some(p) = PENDING.get_ptr_mut(tid) else { return Ok(0) };
    // SAFETY: the entry belongs to this thread.
    let pending = unsafe {
        if (*p).depth == 0 {
            return Ok(0); // a call whose entry was not recorded (unsampled, or before attach)
        }
        (*p).depth -= 1;
        if (*p).depth > 0 {
            return Ok(0);
        }
        *p
    };

    let ret: u64 = ctx.ret::<u64>();
    let addr = if pending.func == AllocFn::PosixMemalign as u32 {
        if ret as u32 != 0 {
            0
        } else {
            // SAFETY: reading the caller's result slot from user memory.
            match unsafe { bpf_probe_read_user(pending.out as *const u64) } {
                Ok(a) => a,
                Err(_) => {
                    count(Counter::ResultReadFailed);
                    return Ok(0);
                }
            }
        }
    } else {
        ret
    };
    let is_realloc = pending.func == AllocFn::Realloc as u32 || pending.func == AllocFn::Reallocarray as u32;
    if addr == 0 {
        // NULL: nothing outstanding. A realloc(p, 0) that returned NULL freed p.
        if is_realloc && pending.old != 0 && pending.size == 0 {
            let _ = SAMPLED.remove(AddrKey { tgid: pid_tgid >> 32, addr: pending.old });
            emit_small(EventKind::Free, pid_tgid, pending.old, 0, 0, Counter::LostHeap);
        } else {
            emit_small(EventKind::AllocFailed, pid_tgid, 0, pending.size, pending.func as u64, Counter::LostHeap);
        }
        return Ok(0);
    }
    if sample_every() > 1 {
        let tgid = pid_tgid >> 32;
        if is_realloc && pending.old != 0 {
            let _ = SAMPLED.remove(AddrKey { tgid, addr: pending.old });
        }
        if SAMPLED.insert(AddrKey { tgid, addr }, 1, 0).is_err() {
            count(Counter::SampledFull);
        }
    }
    // SAFETY: a uretprobe's context is the user pt_regs: at return, ip is in the caller.
    let regs = unsafe { UserRegs { ip: (*ctx.regs).rip, sp: (*ctx.regs).rsp, bp: (*ctx.regs).rbp } };
    let (kind, c) = if is_realloc { (EventKind::Realloc, pending.old) } else { (EventKind::Alloc, pending.func as u64) };
    emit_with_stack(ctx.as_ptr(), kind, pid_tgid, [addr, pending.size, c], regs, Counter::LostHeap);
    Ok(0)
}

/// Benchmarks only (`leaktrace --probe-floor`): empty programs at the same
/// attach points, to measure what the probes cost before any work is done.
#[uprobe]
pub fn floor_enter(_ctx: ProbeContext) -> u32 {
    0
}

#[uretprobe]
pub fn floor_exit(_ctx: RetProbeContext) -> u32 {
    0
}
