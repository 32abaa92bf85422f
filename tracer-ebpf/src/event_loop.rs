//! Probes on libuv's handle functions (the table: `tracer_common::uv`): one
//! program for all of them, the attach cookie naming the function. An init
//! records the handle with the stack that created it; the other calls are
//! small records userspace pairs with descriptors.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::uprobe,
    programs::ProbeContext,
    EbpfContext,
};
use tracer_common::uv::{Shape, UvFn, NO_FD};
use tracer_common::{Counter, EventKind};

use crate::capture::{emit_small, emit_with_stack, UserRegs};

/// The first four arguments of the probed call (System V: rdi, rsi, rdx, rcx).
#[derive(Clone, Copy)]
struct Args {
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
}

impl Args {
    /// Argument `n`, chosen among values already read, never indexed: older
    /// verifiers refuse a read at an offset they cannot bound.
    #[inline(always)]
    fn get(self, n: u8) -> u64 {
        if n == 0 {
            self.a0
        } else if n == 1 {
            self.a1
        } else if n == 2 {
            self.a2
        } else {
            self.a3
        }
    }
}

#[uprobe]
pub fn uv_call(ctx: ProbeContext) -> u32 {
    // SAFETY: the helper reads the cookie of the running probe.
    let Some(func) = UvFn::from_u32(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32) else { return 0 };
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a uprobe's context is the user pt_regs at the function's first instruction.
    let (ip, sp, bp, args) = unsafe {
        let r = &*ctx.regs;
        (r.rip, r.rsp, r.rbp, Args { a0: r.rdi, a1: r.rsi, a2: r.rdx, a3: r.rcx })
    };
    let (a, b) = match func.shape() {
        Shape::Init { fd, .. } => {
            let fd = match fd {
                Some(n) => args.get(n) as i32 as i64 as u64,
                None => NO_FD,
            };
            let abc = [args.get(1), fd, func as u64];
            emit_with_stack(ctx.as_ptr(), EventKind::UvInit, pid_tgid, abc, UserRegs { ip, sp, bp, entry: true }, Counter::LostHandle);
            return 0;
        }
        // At the first instruction the return address is at the stack pointer.
        // SAFETY: a fault-safe read of user memory.
        Shape::Within { handle } => (args.get(handle), unsafe { bpf_probe_read_user(sp as *const u64) }.unwrap_or(0)),
        Shape::Open { handle, fd } => (args.get(handle), args.get(fd)),
        Shape::Accept => (args.get(0), args.get(1)),
        Shape::Close => (args.get(0), 0),
    };
    emit_small(EventKind::UvCall, pid_tgid, a, b, func as u64, Counter::LostHandle);
    0
}
