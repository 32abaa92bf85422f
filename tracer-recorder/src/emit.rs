//! Records into the ring, in the layouts the eBPF programs write
//! (`tracer_common::record`): leaktrace's pipeline reads both alike.

use tracer_common::inprocess::Shared;
use tracer_common::record::{EventHeader, StackStop, HEADER_SIZE, SMALL_SIZE, STACK_SIZE};
use tracer_common::unwind::Regs;
use tracer_common::{AllocFn, EventKind, StopReason, MAX_FRAMES, STACK_COPY_WORDS};

use crate::thread;
use crate::walk;

/// How long a writer waits for room before it checks leaktrace is alive.
const CHECK_EVERY: u64 = 1 << 12;

/// Waits for the reader to make room: yields, and gives up only if leaktrace is gone.
fn wait_for_room(shared: &Shared, n: u64) -> bool {
    if n % CHECK_EVERY == CHECK_EVERY - 1 {
        // SAFETY: signal 0 only checks the process exists.
        let alive = unsafe { libc::kill(shared.header().consumer_pid as i32, 0) } == 0;
        if !alive {
            // No one will read again: every recorder forwards only, from now on.
            shared.header().enabled.0.store(0, core::sync::atomic::Ordering::Relaxed);
            return false;
        }
    }
    // SAFETY: no preconditions.
    unsafe { libc::sched_yield() };
    true
}

fn header(kind: EventKind, ts_ns: u64, a: u64, b: u64, c: u64) -> EventHeader {
    let pid_tgid = (u64::from(thread::pid()) << 32) | u64::from(thread::tid());
    let mut h = EventHeader::new(kind, pid_tgid, ts_ns);
    (h.a, h.b, h.c) = (a, b, c);
    h
}

/// A record without a stack: a free, a failed allocation.
pub fn small(shared: &Shared, kind: EventKind, a: u64, b: u64, c: u64) {
    let h = header(kind, thread::now_ns(), a, b, c);
    let Some(r) = shared.reserve(SMALL_SIZE as u64, h.tgid, h.tid, |n| wait_for_room(shared, n)) else { return };
    // SAFETY: SMALL_SIZE bytes of payload are ours.
    unsafe { (r.payload as *mut EventHeader).write_unaligned(h) };
    r.commit();
}

/// An allocation with the stack of its caller: `caller` are the registers
/// at the allocator's return (pc is the return address).
pub fn with_stack(shared: &Shared, kind: EventKind, a: u64, b: u64, c: u64, caller: Regs) {
    let ts = thread::now_ns();
    let max = shared.header().max_frames as usize;
    let w = walk::walk(shared, caller, max);
    let mut h = header(kind, ts, a, b, c);
    h.nframes = w.n as u32;
    // Where the walk stopped for want of a table, userspace goes on from a copy of the stack.
    let copy_words = if w.stop.wants_copy() { ((w.top.saturating_sub(w.last.sp)) / 8).min(STACK_COPY_WORDS as u64) } else { 0 };
    let stop = StackStop {
        reason: w.stop as u32,
        exact: w.exact,
        pc: w.last.pc,
        sp: w.last.sp,
        bp: w.last.bp,
        module: w.missing,
        copy_words: copy_words as u32,
        _pad: 0,
    };
    // Without a copy the record ends after the frames taken (leaktrace reads no further).
    let bytes = if copy_words == 0 { (STACK_SIZE - 8 * (MAX_FRAMES - w.n)) as u64 } else { STACK_SIZE as u64 + 8 * copy_words };
    let Some(r) = shared.reserve(bytes, h.tgid, h.tid, |n| wait_for_room(shared, n)) else { return };
    // SAFETY: `bytes` of payload are ours: the header, the stop, the frames
    // taken (the others are never read) and the copy, read from the thread's
    // own stack between its stack pointer and its top.
    unsafe {
        let p = r.payload;
        (p as *mut EventHeader).write_unaligned(h);
        (p.add(HEADER_SIZE) as *mut StackStop).write_unaligned(stop);
        let frames = p.add(HEADER_SIZE + core::mem::size_of::<StackStop>());
        core::ptr::copy_nonoverlapping(w.frames.as_ptr() as *const u8, frames, 8 * w.n);
        if copy_words > 0 {
            core::ptr::copy_nonoverlapping(w.last.sp as *const u8, p.add(STACK_SIZE), 8 * copy_words as usize);
        }
    }
    r.commit();
}

/// The record of a successful allocation call.
pub fn allocated(shared: &Shared, func: AllocFn, addr: u64, size: u64, caller: Regs) {
    with_stack(shared, EventKind::Alloc, addr, size, func as u64, caller);
}

pub fn reallocated(shared: &Shared, old: u64, new: u64, size: u64, caller: Regs) {
    with_stack(shared, EventKind::Realloc, new, size, old, caller);
}

pub fn failed(shared: &Shared, func: AllocFn, size: u64) {
    small(shared, EventKind::AllocFailed, 0, size, func as u64);
}

pub fn freed(shared: &Shared, addr: u64) {
    small(shared, EventKind::Free, addr, 0, 0);
}

const _: () = assert!(HEADER_SIZE + core::mem::size_of::<StackStop>() + 8 * tracer_common::MAX_FRAMES == STACK_SIZE);
const _: () = assert!(StopReason::NoTable.wants_copy());
