//! Reserving records and filling in the user stack.

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user_buf, generated::bpf_get_stack},
};
use tracer_common::{Counter, EventHeader, EventKind, SmallEvent, StackEvent, MAX_FRAMES, STACK_TOP_WORDS};

use crate::maps::{count, stack_frames, submit_flags, EVENTS};

/// Emits a record without a stack; counts it as lost under `lost` if the ring is full.
#[inline(always)]
pub fn emit_small(kind: EventKind, pid_tgid: u64, a: u64, b: u64, c: u64, lost: Counter) {
    let Some(mut entry) = EVENTS.reserve::<SmallEvent>(0) else {
        count(lost);
        return;
    };
    let mut hdr = EventHeader::new(kind, pid_tgid, unsafe { bpf_ktime_get_ns() });
    hdr.a = a;
    hdr.b = b;
    hdr.c = c;
    entry.write(SmallEvent { hdr });
    entry.submit(submit_flags());
}

/// Emits a record with the user stack, taken from `ctx` (the program's context)
/// plus the user registers `sp`/`bp` and a copy of the stack top for a CFI step.
#[inline(always)]
pub fn emit_with_stack(ctx: *mut core::ffi::c_void, kind: EventKind, pid_tgid: u64, abc: [u64; 3], sp: u64, bp: u64, lost: Counter) {
    let Some(mut entry) = EVENTS.reserve::<StackEvent>(0) else {
        count(lost);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        let mut hdr = EventHeader::new(kind, pid_tgid, bpf_ktime_get_ns());
        hdr.a = abc[0];
        hdr.b = abc[1];
        hdr.c = abc[2];
        (*ev).sp = sp;
        (*ev).bp = bp;
        (*ev)._pad = 0;

        let mut want = stack_frames();
        if want > MAX_FRAMES as u32 {
            want = MAX_FRAMES as u32;
        }
        let bytes = bpf_get_stack(ctx, (*ev).frames.as_mut_ptr().cast(), want * 8, BPF_F_USER_STACK as u64);
        if bytes < 0 {
            count(Counter::StackFailed);
            hdr.nframes = 0;
        } else {
            hdr.nframes = (bytes / 8) as u32;
        }
        (*ev).hdr = hdr;

        let top = &mut *((&raw mut (*ev).stack_top) as *mut [u8; STACK_TOP_WORDS * 8]);
        if bpf_probe_read_user_buf(sp as *const u8, top).is_ok() {
            (*ev).stack_top_len = STACK_TOP_WORDS as u32;
        } else if bpf_probe_read_user_buf(sp as *const u8, &mut top[..64]).is_ok() {
            // Near the end of the stack mapping: a shorter copy still gives the caller.
            (*ev).stack_top_len = 8;
        } else {
            count(Counter::StackTopFailed);
            (*ev).stack_top_len = 0;
        }
    }
    entry.submit(submit_flags());
}
