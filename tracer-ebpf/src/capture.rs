//! Reserving records and filling in the user stack.

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{
        bpf_ktime_get_ns, bpf_probe_read_user, bpf_probe_read_user_buf,
        generated::{bpf_get_stack, bpf_probe_read_kernel},
    },
};
use tracer_common::{Counter, EventHeader, EventKind, SmallEvent, StackCopyEvent, StackEvent, StopReason, MAX_FRAMES, STACK_COPY_WORDS};

use crate::maps::{count, setting_u32, stack_frames, submit_flags, EVENTS};
use crate::walk::{lt_walk, EXACT_FIRST};

/// 1: the kernel's frame-pointer walk (`--unwind fp`) instead of the CFI walker.
#[unsafe(no_mangle)]
static UNWIND_FRAME_POINTERS: u32 = 0;

/// The user registers a stack walk starts from.
#[derive(Clone, Copy)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// At a function's first instruction (an entry probe): `ip` is exact,
    /// and the caller's return address is at `sp`, its frame not yet made.
    pub entry: bool,
}

/// Emits a record without a stack; counts it as lost under `lost` if the ring is full.
#[inline(always)]
pub fn emit_small(kind: EventKind, pid_tgid: u64, a: u64, b: u64, c: u64, lost: Counter) {
    emit_small_flags(kind, pid_tgid, || [a, b, c], lost, submit_flags());
}

/// [`emit_small`], waking the consumer at once.
#[inline(always)]
pub fn emit_small_now(kind: EventKind, pid_tgid: u64, a: u64, b: u64, c: u64, lost: Counter) {
    emit_small_flags(kind, pid_tgid, || [a, b, c], lost, aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64);
}

/// [`emit_small`] with fields read only once the record has its place in the
/// ring: what they read is at least as new as every record placed before it
/// (the consumer reads records in the order they were reserved).
#[inline(always)]
pub fn emit_small_read_after(kind: EventKind, pid_tgid: u64, fields: impl FnOnce() -> [u64; 3], lost: Counter) {
    emit_small_flags(kind, pid_tgid, fields, lost, submit_flags());
}

#[inline(always)]
fn emit_small_flags(kind: EventKind, pid_tgid: u64, fields: impl FnOnce() -> [u64; 3], lost: Counter, flags: u64) {
    let Some(mut entry) = EVENTS.reserve::<SmallEvent>(0) else {
        count(lost);
        return;
    };
    // SAFETY: a helper without arguments.
    let mut hdr = EventHeader::new(kind, pid_tgid, unsafe { bpf_ktime_get_ns() });
    [hdr.a, hdr.b, hdr.c] = fields();
    entry.write(SmallEvent { hdr });
    entry.submit(flags);
}

/// Emits a record with the user stack, walked from `regs` (or by the kernel's
/// frame-pointer walk from `ctx` in `--unwind fp` mode).
#[inline(always)]
pub fn emit_with_stack(ctx: *mut core::ffi::c_void, kind: EventKind, pid_tgid: u64, abc: [u64; 3], regs: UserRegs, lost: Counter) {
    let Some(mut entry) = EVENTS.reserve::<StackEvent>(0) else {
        count(lost);
        return;
    };
    let ev = entry.as_mut_ptr();
    let want = stack_frames().min(MAX_FRAMES as u32);
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        let mut hdr = EventHeader::new(kind, pid_tgid, bpf_ktime_get_ns());
        hdr.a = abc[0];
        hdr.b = abc[1];
        hdr.c = abc[2];
        (*ev).hdr = hdr;
        if setting_u32(&UNWIND_FRAME_POINTERS) == 1 {
            frame_pointer_stack(ctx, ev, want, regs);
        } else {
            lt_walk(ev, regs.ip, regs.sp, regs.bp, want | if regs.entry { EXACT_FIRST } else { 0 });
        }
        let reason = (*ev).stop.reason;
        if (reason == StopReason::NoTable as u32 || reason == StopReason::MapBusy as u32) && with_copy(ev) {
            entry.discard(0);
            return;
        }
    }
    entry.submit(submit_flags());
}

/// `--unwind fp`: the kernel's frame-pointer walk. At a function's entry
/// the frame-pointer chain starts at the caller's caller: the caller's
/// return address, at the stack pointer, goes in between.
#[inline(always)]
unsafe fn frame_pointer_stack(ctx: *mut core::ffi::c_void, ev: *mut StackEvent, want: u32, regs: UserRegs) {
    // SAFETY: the caller owns the record.
    unsafe {
        let first = usize::from(regs.entry);
        let room = (MAX_FRAMES - first) as u32;
        let bytes = bpf_get_stack(ctx, (*ev).frames.as_mut_ptr().add(first).cast(), want.min(room) * 8, BPF_F_USER_STACK as u64);
        if bytes < 0 {
            count(Counter::StackFailed);
        }
        let mut n = if bytes < 0 { 0 } else { (bytes / 8) as u32 };
        if regs.entry && n > 0 {
            (*ev).frames[0] = regs.ip;
            (*ev).frames[1] = bpf_probe_read_user(regs.sp as *const u64).unwrap_or(0);
            n += 1;
        }
        (*ev).hdr.nframes = n.min(want);
        let exact = u32::from(regs.entry);
        (*ev).stop = tracer_common::StackStop { reason: StopReason::FramePointers as u32, exact, ..Default::default() };
    }
}

/// Re-emits `ev` with a copy of the stack from where its walk stopped, for
/// userspace to go on. False when that cannot be done (the small record is
/// then submitted as it is).
#[inline(always)]
unsafe fn with_copy(ev: *const StackEvent) -> bool {
    let Some(mut big) = EVENTS.reserve::<StackCopyEvent>(0) else {
        count(Counter::StackCopyFailed);
        return false;
    };
    let out = big.as_mut_ptr();
    // SAFETY: both records are reserved and ours; reads are fault-safe.
    unsafe {
        let size = core::mem::size_of::<StackEvent>() as u32;
        if bpf_probe_read_kernel((&raw mut (*out).ev).cast(), size, ev.cast()) != 0 {
            big.discard(0);
            count(Counter::StackCopyFailed);
            return false;
        }
        let sp = (*out).ev.stop.sp as *const u8;
        let words = &mut *((&raw mut (*out).copy) as *mut [u8; STACK_COPY_WORDS * 8]);
        // Near the top of the stack a long read fails: try shorter ones.
        let got = if bpf_probe_read_user_buf(sp, words).is_ok() {
            STACK_COPY_WORDS
        } else if bpf_probe_read_user_buf(sp, &mut words[..4096]).is_ok() {
            512
        } else if bpf_probe_read_user_buf(sp, &mut words[..1024]).is_ok() {
            128
        } else if bpf_probe_read_user_buf(sp, &mut words[..128]).is_ok() {
            16
        } else {
            0
        };
        (*out).ev.stop.copy_words = got as u32;
    }
    // Wake the consumer now: it asks for the missing table, and every walk
    // through that module carries a copy until the table is in.
    big.submit(aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64);
    true
}
