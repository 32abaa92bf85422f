//! Probes on the allocator that serves `malloc` in the target.
//!
//! One entry program serves every allocator function: the attach cookie of
//! each probe point names its [`AllocFn`], and the arguments are read by the
//! function's shape. Entries note the call in PENDING (per thread); the
//! return side emits the record with the user stack, taken at return: the
//! instruction pointer is then in the caller, so the function that called
//! malloc is the first frame even with frame pointers. Calls nested inside
//! another allocator call (realloc(NULL, n) → malloc, realloc(p, 0) → free)
//! belong to the outer call and are not recorded twice.
//!
//! Three ways to hang them on the allocator, chosen by the loader: a uprobe
//! session (one program for entry and return; an entry that returns non-zero
//! never arms its return probe, so nested and unsampled calls cost a bare
//! entry hit), or uprobe_multi / perf-event uprobes with a separate return
//! probe that fires for every allocating call.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_probe_read_user,
        generated::{bpf_get_attach_cookie, bpf_get_func_ip},
    },
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext,
};
use tracer_common::{AllocFn, Counter, EventKind};

use crate::capture::{emit_small, emit_with_stack, UserRegs};
use crate::maps::{count, sample_every, AddrKey, Pending, PENDING, SAMPLED};

/// An entry's answer to a uprobe session: run the return program for this call.
const ARM_RETURN: u32 = 0;
/// ... or do not (ignored by the kernel outside sessions, where the return
/// probe of an allocating function always fires).
const SKIP_RETURN: u32 = 1;

/// Notes an allocating call; the answer for a session.
#[inline(always)]
fn enter(func: AllocFn, size: u64, old: u64, out: u64, session: bool) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // In a session an unsampled call is decided first, before any table is
    // touched: it arms no return probe, so nothing needs balancing. Elsewhere
    // the return probe fires anyway and the nesting depth must count it.
    if session && !sampled(pid_tgid, old) {
        return SKIP_RETURN;
    }
    let tid = pid_tgid as u32;
    // Each thread's entry stays in the table between calls (depth 0 = none in
    // flight) and is removed when the thread exits: a lookup and a write per
    // call instead of an insert and a delete.
    let slot = PENDING.get_ptr_mut(tid);
    if let Some(p) = slot {
        // SAFETY: the entry belongs to this thread.
        if unsafe { (*p).depth } > 0 {
            if session {
                return SKIP_RETURN; // no return probe: the depth stays that of the outer call
            }
            unsafe { (*p).depth += 1 };
            return ARM_RETURN;
        }
    }
    if !session && !sampled(pid_tgid, old) {
        return SKIP_RETURN;
    }
    let pending = Pending { depth: 1, func: func as u32, size, old, out };
    match slot {
        // SAFETY: the entry belongs to this thread.
        Some(p) => unsafe { *p = pending },
        None => {
            if PENDING.insert(tid, pending, 0).is_err() {
                count(Counter::PendingFull);
                return SKIP_RETURN;
            }
        }
    }
    ARM_RETURN
}

/// Sampling mode: whether this call is traced (about one in SAMPLE_EVERY; a
/// realloc of a sampled block always is, or the block would look leaked).
/// No record and no stack for the others.
#[inline(always)]
fn sampled(pid_tgid: u64, old: u64) -> bool {
    let every = sample_every();
    // SAFETY: a helper call without arguments.
    if every <= 1 || unsafe { bpf_get_prandom_u32() } % every == 0 {
        return true;
    }
    // SAFETY: only tested for presence.
    if old != 0 && unsafe { SAMPLED.get(AddrKey { tgid: pid_tgid >> 32, addr: old }) }.is_some() {
        return true;
    }
    count(Counter::Unsampled);
    false
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

/// The allocator function this probe point sits on, from its attach cookie.
#[inline(always)]
fn probed_function(ctx: *mut core::ffi::c_void) -> Option<AllocFn> {
    // SAFETY: the helper reads the cookie of the running probe.
    AllocFn::from_u32(unsafe { bpf_get_attach_cookie(ctx) } as u32)
}

/// The entry of any allocator function: (size, old pointer, result slot) by its shape.
#[inline(always)]
fn on_entry(ctx: &ProbeContext, session: bool) -> u32 {
    let Some(func) = probed_function(ctx.as_ptr()) else { return SKIP_RETURN };
    let (size, old, out) = match func {
        AllocFn::Free => {
            on_free(arg(ctx, 0));
            return SKIP_RETURN;
        }
        AllocFn::Malloc | AllocFn::Valloc | AllocFn::Pvalloc => (arg(ctx, 0), 0, 0),
        AllocFn::Calloc => (product(arg(ctx, 0), arg(ctx, 1)), 0, 0),
        AllocFn::Realloc => (arg(ctx, 1), arg(ctx, 0), 0),
        AllocFn::Reallocarray => (product(arg(ctx, 1), arg(ctx, 2)), arg(ctx, 0), 0),
        AllocFn::PosixMemalign => (arg(ctx, 2), 0, arg(ctx, 0)),
        // memalign(align, size) and aligned_alloc(align, size): one shape.
        AllocFn::Memalign | AllocFn::AlignedAlloc => (arg(ctx, 1), 0, 0),
        // A call in flight: the frees inside it are not recorded.
        AllocFn::ThreadCacheShutdown => (0, 0, 0),
    };
    enter(func, size, old, out, session)
}

#[inline(always)]
fn on_free(addr: u64) {
    if addr == 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // Sampling mode: only sampled blocks are followed, and most frees are of
    // others: a lookup settles it first (a delete would take the bucket's lock).
    let key = AddrKey { tgid: pid_tgid >> 32, addr };
    // SAFETY: only tested for presence.
    if sample_every() > 1 && unsafe { SAMPLED.get(key) }.is_none() {
        return;
    }
    // SAFETY: a plain read of this thread's entry.
    if unsafe { PENDING.get(pid_tgid as u32) }.is_some_and(|p| p.depth > 0) {
        return; // inside realloc: the realloc's record covers it
    }
    if sample_every() > 1 && SAMPLED.remove(key).is_err() {
        return; // freed meanwhile by another thread
    }
    emit_small(EventKind::Free, pid_tgid, addr, 0, 0, Counter::LostHeap);
}

/// Entry probes of perf-event uprobes and uprobe_multi links (cookie = [`AllocFn`]).
#[uprobe]
pub fn alloc_enter(ctx: ProbeContext) -> u32 {
    on_entry(&ctx, false)
}

/// The return probe shared by every allocating function (perf-event uprobes
/// and uprobe_multi return links).
#[uretprobe]
pub fn alloc_exit(ctx: RetProbeContext) -> u32 {
    on_return(ctx.as_ptr(), ctx.regs).unwrap_or(1)
}

/// Session programs are written out: aya's `#[uprobe]` returns 0 whatever
/// the function returns, and a session entry answers with its return value.
macro_rules! session_program {
    ($(#[$doc:meta])* $name:ident, $body:ident) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        #[unsafe(link_section = "uprobe")]
        pub fn $name(ctx: *mut core::ffi::c_void) -> u32 {
            $body(ProbeContext::new(ctx))
        }
    };
}

session_program!(
    /// A uprobe session: entry and return in one program. At the return the
    /// user instruction pointer is the caller's return address; at the entry
    /// it is the probed address itself (what bpf_get_func_ip reports in both).
    alloc_session,
    session
);

#[inline(always)]
fn session(ctx: ProbeContext) -> u32 {
    if is_return(&ctx) {
        return on_return(ctx.as_ptr(), ctx.regs).unwrap_or(1);
    }
    on_entry(&ctx, true)
}

#[inline(always)]
fn is_return(ctx: &ProbeContext) -> bool {
    // SAFETY: a uprobe's context is the user pt_regs; the helper reads the probe's address.
    unsafe { (*ctx.regs).rip != bpf_get_func_ip(ctx.as_ptr()) }
}

fn on_return(ctx: *mut core::ffi::c_void, regs: *mut pt_regs) -> Result<u32, i64> {
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
    if pending.func == AllocFn::ThreadCacheShutdown as u32 {
        return Ok(0);
    }

    // SAFETY: the probe's context is the user pt_regs: at return, ip is in the caller.
    let (ret, caller) = unsafe { ((*regs).rax, UserRegs { ip: (*regs).rip, sp: (*regs).rsp, bp: (*regs).rbp, entry: false }) };
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
    let (kind, c) = if is_realloc { (EventKind::Realloc, pending.old) } else { (EventKind::Alloc, pending.func as u64) };
    emit_with_stack(ctx, kind, pid_tgid, [addr, pending.size, c], caller, Counter::LostHeap);
    Ok(0)
}

/// Benchmarks only (`--probe-floor`): empty programs at the same attach
/// points, to measure what the probes cost before any work is done.
#[uprobe]
pub fn floor_enter(_ctx: ProbeContext) -> u32 {
    0
}

#[uretprobe]
pub fn floor_exit(_ctx: RetProbeContext) -> u32 {
    0
}

session_program!(
    /// The floor as a session: the return is armed where leaktrace arms it
    /// (every allocating function).
    floor_session,
    floor_session_answer
);

#[inline(always)]
fn floor_session_answer(ctx: ProbeContext) -> u32 {
    match probed_function(ctx.as_ptr()) {
        Some(AllocFn::Free) | None => SKIP_RETURN,
        Some(_) => ARM_RETURN,
    }
}

session_program!(
    /// Bare entry hits as a session (`--probe-floor=floor-entries`).
    floor_session_entries,
    never_return
);

#[inline(always)]
fn never_return(_ctx: ProbeContext) -> u32 {
    SKIP_RETURN
}
