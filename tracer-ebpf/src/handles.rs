//! Descriptors, from the raw syscall tracepoints.
//!
//! New descriptors are recorded at syscall exit (the fd is the return value,
//! or written to a user array for pipe/socketpair). Releases are recorded at
//! syscall entry, before the kernel frees the number: a record of a close can
//! then never arrive after the record of a new descriptor that reuses it.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
    EbpfContext,
};
use tracer_common::{Counter, EventKind, FdKind};

use crate::capture::{emit_small, emit_with_stack, UserRegs};
use crate::maps::traced;

// x86_64 syscall numbers.
const PIPE: u64 = 22;
const OPEN: u64 = 2;
const CLOSE: u64 = 3;
const DUP: u64 = 32;
const DUP2: u64 = 33;
const SOCKET: u64 = 41;
const ACCEPT: u64 = 43;
const SOCKETPAIR: u64 = 53;
const FCNTL: u64 = 72;
const CREAT: u64 = 85;
const EPOLL_CREATE: u64 = 213;
const OPENAT: u64 = 257;
const TIMERFD_CREATE: u64 = 283;
const EVENTFD: u64 = 284;
const ACCEPT4: u64 = 288;
const EVENTFD2: u64 = 290;
const EPOLL_CREATE1: u64 = 291;
const DUP3: u64 = 292;
const PIPE2: u64 = 293;
const MEMFD_CREATE: u64 = 319;
const CLOSE_RANGE: u64 = 436;
const OPENAT2: u64 = 437;

/// O_CLOEXEC, SOCK_CLOEXEC, TFD_CLOEXEC, EFD_CLOEXEC and EPOLL_CLOEXEC share this value.
const O_CLOEXEC: u64 = 0o2000000;
const MFD_CLOEXEC: u64 = 1;
const F_DUPFD: u64 = 0;
const F_SETFD: u64 = 2;
const F_DUPFD_CLOEXEC: u64 = 1030;
const FD_CLOEXEC: u64 = 1;
const NO_PAIR: u64 = u64::MAX;

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> u32 {
    let id: u64 = ctx.arg(1);
    if id != CLOSE && id != CLOSE_RANGE {
        return 0;
    }
    let Some(pid_tgid) = traced() else { return 0 };
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: the tracepoint's first argument is the syscall's saved user registers.
    let Ok(r) = (unsafe { bpf_probe_read_kernel(regs) }) else { return 1 };
    if id == CLOSE {
        // close() takes an unsigned int; a number past INT_MAX (close(-1)) is
        // never a descriptor (the kernel's limit is below it) and the call
        // fails: sent as INT_MAX, never open, it counts as an unknown close.
        let fd = (r.rdi as u32).min(i32::MAX as u32);
        emit_small(EventKind::FdClose, pid_tgid, fd as u64, 0, 0, Counter::LostHandle);
    } else {
        emit_small(EventKind::FdCloseRange, pid_tgid, r.rdi as u32 as u64, r.rsi as u32 as u64, r.rdx as u32 as u64, Counter::LostHandle);
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> u32 {
    try_sys_exit(&ctx).unwrap_or(1)
}

fn cloexec(flags: u64, bit: u64) -> u64 {
    (flags & bit != 0) as u64
}

/// The system calls whose exit this program records.
fn makes_descriptors(id: u64) -> bool {
    matches!(
        id,
        SOCKET
            | ACCEPT
            | ACCEPT4
            | TIMERFD_CREATE
            | EVENTFD
            | EVENTFD2
            | EPOLL_CREATE
            | EPOLL_CREATE1
            | OPEN
            | CREAT
            | OPENAT
            | OPENAT2
            | MEMFD_CREATE
            | PIPE
            | PIPE2
            | SOCKETPAIR
            | DUP
            | DUP2
            | DUP3
            | FCNTL
    )
}

fn try_sys_exit(ctx: &RawTracePointContext) -> Result<u32, i64> {
    let ret: i64 = ctx.arg(1);
    if ret < 0 {
        return Ok(0);
    }
    let regs: *const pt_regs = ctx.arg(0);
    // Every system call passes here (x86-64's return probes too, through the
    // uretprobe syscall): its number first, before the table or the registers.
    // SAFETY: reading one field of the syscall's saved user registers.
    let id = unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*regs).orig_rax)) }?;
    if !makes_descriptors(id) {
        return Ok(0);
    }
    let Some(pid_tgid) = traced() else { return Ok(0) };
    // SAFETY: the tracepoint's first argument is the syscall's saved user registers.
    let r = unsafe { bpf_probe_read_kernel(regs) }?;
    let fd = ret as u64;
    // (kind, fd, cloexec, pair) for a new descriptor; dup-family handled apart.
    let (kind, cx, pair) = match r.orig_rax {
        SOCKET => (FdKind::Socket, cloexec(r.rsi, O_CLOEXEC), NO_PAIR),
        ACCEPT => (FdKind::Socket, 0, NO_PAIR),
        ACCEPT4 => (FdKind::Socket, cloexec(r.r10, O_CLOEXEC), NO_PAIR),
        TIMERFD_CREATE => (FdKind::Timerfd, cloexec(r.rsi, O_CLOEXEC), NO_PAIR),
        EVENTFD => (FdKind::Eventfd, 0, NO_PAIR),
        EVENTFD2 => (FdKind::Eventfd, cloexec(r.rsi, O_CLOEXEC), NO_PAIR),
        EPOLL_CREATE => (FdKind::Epoll, 0, NO_PAIR),
        EPOLL_CREATE1 => (FdKind::Epoll, cloexec(r.rdi, O_CLOEXEC), NO_PAIR),
        OPEN => (FdKind::File, cloexec(r.rsi, O_CLOEXEC), NO_PAIR),
        CREAT => (FdKind::File, 0, NO_PAIR),
        OPENAT => (FdKind::File, cloexec(r.rdx, O_CLOEXEC), NO_PAIR),
        OPENAT2 => {
            // SAFETY: open_how.flags is the first u64 of the user struct.
            let flags = unsafe { bpf_probe_read_user(r.rdx as *const u64) }.unwrap_or(0);
            (FdKind::File, cloexec(flags, O_CLOEXEC), NO_PAIR)
        }
        MEMFD_CREATE => (FdKind::File, cloexec(r.rsi, MFD_CLOEXEC), NO_PAIR),
        PIPE | PIPE2 | SOCKETPAIR => {
            let (arr, flags, kind) = match r.orig_rax {
                PIPE => (r.rdi, 0, FdKind::Pipe),
                PIPE2 => (r.rdi, r.rsi, FdKind::Pipe),
                _ => (r.r10, r.rsi, FdKind::Socket),
            };
            // SAFETY: the kernel has just written both fds to this user array.
            let fds = unsafe { bpf_probe_read_user(arr as *const [i32; 2]) }?;
            let cx = cloexec(flags, O_CLOEXEC);
            emit_open(ctx, pid_tgid, &r, fds[0] as u32 as u64, kind, cx, fds[1] as u32 as u64);
            return Ok(0);
        }
        DUP => return Ok(emit_dup(ctx, pid_tgid, &r, fd, r.rdi, 0)),
        DUP2 => return Ok(emit_dup(ctx, pid_tgid, &r, fd, r.rdi, 0)),
        DUP3 => return Ok(emit_dup(ctx, pid_tgid, &r, fd, r.rdi, cloexec(r.rdx, O_CLOEXEC))),
        FCNTL => {
            match r.rsi {
                F_DUPFD => return Ok(emit_dup(ctx, pid_tgid, &r, fd, r.rdi, 0)),
                F_DUPFD_CLOEXEC => return Ok(emit_dup(ctx, pid_tgid, &r, fd, r.rdi, 1)),
                F_SETFD => {
                    emit_small(EventKind::FdSetCloexec, pid_tgid, r.rdi as u32 as u64, cloexec(r.rdx, FD_CLOEXEC), 0, Counter::LostHandle)
                }
                _ => {}
            }
            return Ok(0);
        }
        _ => return Ok(0),
    };
    emit_open(ctx, pid_tgid, &r, fd, kind, cx, pair);
    Ok(0)
}

#[inline(always)]
fn emit_open(ctx: &RawTracePointContext, pid_tgid: u64, r: &pt_regs, fd: u64, kind: FdKind, cx: u64, pair: u64) {
    emit_with_stack(ctx.as_ptr(), EventKind::FdOpen, pid_tgid, [fd, kind as u64 | cx << 8, pair], user_regs(r), Counter::LostHandle);
}

#[inline(always)]
fn emit_dup(ctx: &RawTracePointContext, pid_tgid: u64, r: &pt_regs, new: u64, old: u64, cx: u64) -> u32 {
    emit_with_stack(ctx.as_ptr(), EventKind::FdDup, pid_tgid, [new, old as u32 as u64, cx], user_regs(r), Counter::LostHandle);
    0
}

/// Where the stack walk starts: the user registers saved at the system call.
#[inline(always)]
fn user_regs(r: &pt_regs) -> UserRegs {
    UserRegs { ip: r.rip, sp: r.rsp, bp: r.rbp }
}
