//! The user-stack walker: the binaries' own CFI, compiled by userspace into
//! compact rows per module (see `tracer_common::unwind`), walked here one
//! frame per `bpf_loop` iteration.
//!
//! Each frame's module comes from its mapping ([`vma`]); a search of the
//! module's rows ([`rows`]) gives the rule that finds the frame's CFA,
//! return address and saved rbp (`tracer_common::unwind::step_rule`, the
//! same code userspace walks with). Anonymous executable memory (JIT code)
//! and modules without unwind information are stepped with frame pointers.
//! Where a module's table is not loaded yet, the walk stops and the record
//! carries a copy of the stack for userspace to go on with the same rules.

mod rows;
mod vma;

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_loop};
use tracer_common::unwind::{step_frame_pointer, step_rule, Regs, StackMemory};
use tracer_common::{ModuleKey, StackEvent, StopReason, MAX_FRAMES};

use rows::find_row;
pub use vma::KEPT;
use vma::{map_version, mapping, Cache, Code, Kept, MapVersion, EMPTY};

/// The walk's state, on [`lt_walk`]'s stack; [`lt_step`] sees it as plain
/// memory (no pointers in it: a global function could not use them).
#[repr(C)]
pub struct Walk {
    pc: u64,
    sp: u64,
    bp: u64,
    n: u32,
    max: u32,
    exact: u32,
    next_exact: u32,
    reason: StopReason,
    missing: ModuleKey,
    cache: Cache,
}

/// The traced process's own stack, read fault-safe.
struct LiveStack;

impl StackMemory for LiveStack {
    #[inline(always)]
    fn word(&self, addr: u64) -> Option<u64> {
        // SAFETY: a fault-safe read of user memory.
        unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
    }

    #[inline(always)]
    fn pair(&self, addr: u64) -> Option<[u64; 2]> {
        // SAFETY: a fault-safe read of user memory.
        unsafe { bpf_probe_read_user(addr as *const [u64; 2]) }.ok()
    }
}

/// bpf_loop's callback: one frame, by [`lt_step`].
unsafe extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is lt_walk's Loop, on its stack.
    unsafe {
        let l = ctx as *mut Loop;
        // bpf_loop's callbacks return 0 (go on) or 1 (stop), nothing else.
        i64::from(lt_step(&raw mut (*l).walk, (*l).ev, index) != 0)
    }
}

/// One frame: record it in `ev` at `index`, then step to its caller.
/// Returns 0 to go on, else 1 + why the walk stops. A global function:
/// verified once, on its own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_step(w: *mut Walk, ev: *mut StackEvent, index: u64) -> i64 {
    if w.is_null() || ev.is_null() {
        return 1 + StopReason::BadFrame as i64;
    }
    // SAFETY: both point at memory the caller owns, of their types' sizes.
    let (w, ev) = unsafe { (&mut *w, &mut *ev) };
    // The slot is the loop's own index (not a count kept in the context): the
    // verifier then sees every iteration alike.
    let n = index as usize;
    if n >= MAX_FRAMES || index >= u64::from(w.max) {
        w.reason = StopReason::MaxDepth;
        return 1 + StopReason::MaxDepth as i64;
    }
    ev.frames[n] = w.pc;
    if w.next_exact != 0 {
        w.exact |= 1 << n;
    }
    w.n = n as u32 + 1;
    let lookup = if w.next_exact != 0 { w.pc } else { w.pc.wrapping_sub(1) };
    let here = Regs { pc: w.pc, sp: w.sp, bp: w.bp };
    let next = match mapping(&mut w.cache, lookup, &mut w.missing) {
        Err(reason) => Err(reason),
        Ok(m) => match m.code {
            Code::Table => match find_row(&m.rows, lookup.wrapping_add(m.base)) {
                Some(row) => step_rule(row, lookup, here, &LiveStack),
                // Before the module's first row: uncovered code, frame pointers.
                None => step_frame_pointer(here, &LiveStack),
            },
            Code::Missing => Err(StopReason::NoTable),
            _ => step_frame_pointer(here, &LiveStack),
        },
    };
    match next {
        Ok(c) => {
            (w.pc, w.sp, w.bp, w.next_exact) = (c.regs.pc, c.regs.sp, c.regs.bp, c.exact as u32);
            0
        }
        Err(reason) => {
            w.reason = reason;
            1 + reason as i64
        }
    }
}

/// bpf_loop's context: the record (a pointer the callback can pass on) and the state.
#[repr(C)]
struct Loop {
    ev: *mut StackEvent,
    walk: Walk,
}

/// A thread's cache from its last walk, when its memory map has not changed since.
#[inline(always)]
fn kept_cache(tid: u32, version: Option<MapVersion>) -> Cache {
    match (version, KEPT.get_ptr(tid)) {
        // SAFETY: the entry is this thread's; only it writes it.
        (Some(v), Some(k)) if unsafe { (*k).mm == v.mm && (*k).seq == v.seq } => unsafe { (*k).cache },
        _ => [EMPTY; 2],
    }
}

/// Keeps the walk's cache for the thread's next walk.
#[inline(always)]
fn keep_cache(tid: u32, version: Option<MapVersion>, cache: &Cache) {
    // An odd sequence: the map was being changed when it was read.
    let Some(v) = version.filter(|v| v.seq & 1 == 0) else { return };
    if KEPT.get_ptr_mut(tid).is_none() {
        let _ = KEPT.insert(tid, Kept { mm: 0, seq: u64::MAX, cache: [EMPTY; 2] }, 0);
    }
    if let Some(k) = KEPT.get_ptr_mut(tid) {
        // SAFETY: the entry is this thread's; only it writes it.
        unsafe {
            (*k).cache = *cache;
            (*k).mm = v.mm;
            (*k).seq = v.seq;
        }
    }
}

/// Walks the user stack from (pc, sp, bp) into `ev`: frames, nframes and
/// stop. A global function: verified once, whatever the call site.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_walk(ev: *mut StackEvent, pc: u64, sp: u64, bp: u64, max: u32) -> u32 {
    if ev.is_null() {
        return 0;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let version = map_version();
    let mut l = Loop {
        ev,
        walk: Walk {
            pc,
            sp,
            bp,
            n: 0,
            max,
            exact: 0,
            next_exact: 0,
            reason: StopReason::MaxDepth,
            missing: ModuleKey { dev: 0, ino: 0 },
            cache: kept_cache(tid, version),
        },
    };
    // SAFETY: our callback with our context; one iteration per frame (and one to notice the last).
    unsafe { bpf_loop(max + 1, step as *mut c_void, &mut l as *mut Loop as *mut c_void, 0) };
    let w = &l.walk;
    keep_cache(tid, version, &w.cache);
    // SAFETY: the record is ours until submitted.
    unsafe {
        (*ev).hdr.nframes = w.n;
        (*ev).stop.reason = w.reason as u32;
        (*ev).stop.exact = w.exact;
        (*ev).stop.pc = w.pc;
        (*ev).stop.sp = w.sp;
        (*ev).stop.bp = w.bp;
        (*ev).stop.module = w.missing;
        (*ev).stop.copy_words = 0;
        (*ev).stop._pad = 0;
    }
    w.reason as u32
}
