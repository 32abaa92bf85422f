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
mod state;
mod vma;

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_loop};
use tracer_common::unwind::{step_frame_pointer, step_rule, Regs, StackMemory};
use tracer_common::{StackEvent, StopReason, MAX_FRAMES};

use rows::find_row;
pub use state::WALKS;
use state::{thread_walk, Code, Walk};
use vma::{map_version, mapping, MISSING};

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

/// bpf_loop's context, on [`lt_walk`]'s stack: two pointers, the state is in the map.
#[repr(C)]
struct Loop {
    ev: *mut StackEvent,
    walk: *mut Walk,
}

/// bpf_loop's callback: one frame, by [`lt_step`].
unsafe extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is lt_walk's Loop, on its stack.
    unsafe {
        let l = ctx as *const Loop;
        // bpf_loop's callbacks return 0 (go on) or 1 (stop), nothing else.
        i64::from(lt_step((*l).walk, (*l).ev, index) != 0)
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
    // SAFETY: the thread's walk entry and its record, of their types' sizes.
    let (w, ev) = unsafe { (&mut *w, &mut *ev) };
    let reason = match frame(w, ev, index) {
        Ok(()) => return 0,
        Err(reason) => reason,
    };
    w.reason = reason as u32;
    1 + reason as i64
}

/// Records frame `index` and steps to its caller.
#[inline(always)]
fn frame(w: &mut Walk, ev: &mut StackEvent, index: u64) -> Result<(), StopReason> {
    // The slot is the loop's own index (not a count kept in the state): the
    // verifier then sees every iteration alike.
    let n = index as usize;
    if n >= MAX_FRAMES || index >= u64::from(w.max) {
        return Err(StopReason::MaxDepth);
    }
    ev.frames[n] = w.pc;
    if w.next_exact != 0 {
        w.exact |= 1 << n;
    }
    w.n = n as u32 + 1;
    let lookup = if w.next_exact != 0 { w.pc } else { w.pc.wrapping_sub(1) };
    let here = Regs { pc: w.pc, sp: w.sp, bp: w.bp };
    let slot = mapping(w, lookup)?;
    if slot >= MISSING {
        return Err(StopReason::NoTable);
    }
    let m = &w.cache[slot];
    let next = match m.code {
        Code::Table => match find_row(&m.rows, lookup.wrapping_add(m.base)) {
            Some(row) => step_rule(row, lookup, here, &LiveStack),
            // Before the module's first row: uncovered code, frame pointers.
            None => step_frame_pointer(here, &LiveStack),
        },
        _ => step_frame_pointer(here, &LiveStack),
    }?;
    (w.pc, w.sp, w.bp, w.next_exact) = (next.regs.pc, next.regs.sp, next.regs.bp, next.exact as u32);
    Ok(())
}

/// Set in [`lt_walk`]'s `max`: `pc` is the instruction about to run (an
/// entry probe's), not a return address. A flag rather than an argument:
/// a global function takes five.
pub const EXACT_FIRST: u32 = 1 << 31;

/// Walks the user stack from (pc, sp, bp) into `ev`: frames, nframes and
/// stop. A global function: verified once, whatever the call site.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_walk(ev: *mut StackEvent, pc: u64, sp: u64, bp: u64, max: u32) -> u32 {
    let (max, first_exact) = (max & !EXACT_FIRST, max >> 31);
    if ev.is_null() {
        return 0;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(walk) = thread_walk(tid) else {
        // SAFETY: the record is ours until submitted.
        unsafe { stopped(ev, StopReason::NoState) };
        return StopReason::NoState as u32;
    };
    let version = map_version();
    // SAFETY: the thread's own entry: no other program writes it while this one runs.
    unsafe {
        (*walk).start(pc, sp, bp, max, version);
        (*walk).next_exact = first_exact;
    }
    let mut l = Loop { ev, walk };
    // SAFETY: our callback with our context; one iteration per frame (and one to notice the last).
    unsafe { bpf_loop(max + 1, step as *mut c_void, &mut l as *mut Loop as *mut c_void, 0) };
    // SAFETY: as above; the record is ours until submitted.
    unsafe {
        let w = &mut *walk;
        w.keep(version);
        (*ev).hdr.nframes = w.n;
        (*ev).stop.reason = w.reason;
        (*ev).stop.exact = w.exact;
        (*ev).stop.pc = w.pc;
        (*ev).stop.sp = w.sp;
        (*ev).stop.bp = w.bp;
        (*ev).stop.module = w.missing;
        (*ev).stop.copy_words = 0;
        (*ev).stop._pad = 0;
        w.reason
    }
}

/// A walk that could not start: no frames.
#[inline(always)]
unsafe fn stopped(ev: *mut StackEvent, reason: StopReason) {
    // SAFETY: the caller's record; field by field, not a struct built on the stack.
    unsafe {
        (*ev).hdr.nframes = 0;
        (*ev).stop.reason = reason as u32;
        (*ev).stop.exact = 0;
        (*ev).stop.copy_words = 0;
    }
}
