//! Descriptors, from the `syscalls/sys_exit_*` tracepoints of exactly the
//! system calls that make or release them (`tracer_common::syscalls`): no
//! program runs on any other system call, and none runs at a call's entry
//! (which would put a second callback on every system call of every process).
//!
//! Each program first checks the return value (a field of the record) and
//! then the traced-process table, before any other work. The new
//! descriptor's kind is read from its file in the descriptor table; a close
//! names the file that holds its number by the time it returns, if any.
//!
//! Classic tracepoint programs always return 0: anything else would also
//! hand the record to perf.

mod files;
mod receive;

pub use receive::RECEIVES;

use files::{lt_fd_file, FileInfo};

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_get_current_task_btf, bpf_probe_read_user, generated::bpf_task_pt_regs},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use tracer_common::fdrecord::{fd_with_tag, file_tag, OpenInfo, NO_PAIR};
use tracer_common::syscalls::{self as sc, by_nr, Cloexec, Effect};
use tracer_common::{Counter, EventKind, FdKind};

use crate::capture::{emit_small, emit_small_read_after, emit_with_stack, UserRegs};
use crate::maps::{count, traced};

/// Byte offsets of a `syscalls/sys_exit_*` record's fields.
const NR: usize = 8;
const RET: usize = 16;

/// A traced process's system call, at its exit.
struct Exit {
    pid_tgid: u64,
    nr: u32,
    ret: i64,
    /// The caller's saved user registers: a BTF-typed kernel pointer, read
    /// as needed rather than copied (the program's frame is part of the
    /// stack budget its walk shares).
    regs: *const pt_regs,
}

impl Exit {
    /// rdi, rsi, rdx, r10, r8, r9: still the caller's arguments at the exit.
    #[inline(always)]
    fn arg(&self, n: u8) -> u64 {
        // SAFETY: the verifier checks these loads against the kernel's pt_regs
        // (a BTF-typed pointer); a fault reads 0.
        let r = unsafe { &*self.regs };
        match n {
            0 => r.rdi,
            1 => r.rsi,
            2 => r.rdx,
            3 => r.r10,
            4 => r.r8,
            5 => r.r9,
            _ => 0,
        }
    }

    /// Where the caller's stack walk starts.
    #[inline(always)]
    fn user_regs(&self) -> UserRegs {
        // SAFETY: as in `arg`.
        let r = unsafe { &*self.regs };
        UserRegs { ip: r.rip, sp: r.rsp, bp: r.rbp, entry: false }
    }
}

#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: an aligned field of the fixed syscall-exit record.
    unsafe { core::ptr::read((ctx.as_ptr() as *const u8).add(offset).cast::<T>()) }
}

#[inline(always)]
fn user<T: Default>(addr: u64) -> T {
    // SAFETY: a fault-safe read of the caller's memory.
    unsafe { bpf_probe_read_user(addr as *const T) }.unwrap_or_default()
}

/// The checks before any work (the return value, then the process), then the
/// call's number and the caller's registers.
#[inline(always)]
fn begin(ctx: &TracePointContext, wanted: impl Fn(i64) -> bool) -> Option<Exit> {
    let ret: i64 = field(ctx, RET);
    if !wanted(ret) {
        return None;
    }
    let pid_tgid = traced()?;
    let nr: i32 = field(ctx, NR);
    // SAFETY: the current task's saved user registers: a BTF-typed pointer,
    // whose fields the verifier lets us load directly (a fault reads 0).
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs };
    Some(Exit { pid_tgid, nr: nr as u32, ret, regs })
}

#[inline(always)]
fn cloexec(c: Cloexec, e: &Exit) -> bool {
    match c {
        Cloexec::Never => false,
        Cloexec::Always => true,
        Cloexec::Arg { arg, mask } => e.arg(arg) & u64::from(mask) != 0,
        // open_how.flags is the struct's first u64.
        Cloexec::OpenHow => user::<u64>(e.arg(2)) & u64::from(sc::O_CLOEXEC) != 0,
    }
}

/// A new descriptor `fd` (and a second one, `pair`, of the same kind): its
/// file, kind and name, with the caller's stack.
#[inline(always)]
fn emit_open(ctx: &TracePointContext, e: &Exit, fd: u64, pair: Option<u64>, mut info: OpenInfo) {
    let mut f = FileInfo { file: 0, kind: 0, _pad: 0, name: [0; 2] };
    if lt_fd_file(fd, &mut f) == 0 {
        // Closed again (by another thread) before this exit: nothing to follow.
        return;
    }
    info.kind = f.kind;
    let c = match pair {
        Some(p) => fd_with_tag(p, file_tag(files::file_at(p))),
        None => NO_PAIR,
    };
    let abc = [fd_with_tag(fd, file_tag(f.file)), info.pack(), c];
    emit_with_stack(ctx.as_ptr(), EventKind::FdOpen, e.pid_tgid, abc, e.user_regs(), Counter::LostHandle);
    if FdKind::from_u32(f.kind).has_name_detail() {
        emit_small(EventKind::FdName, e.pid_tgid, fd, f.name[0], f.name[1], Counter::LostHandle);
    }
}

/// System calls whose return value is a new descriptor.
#[tracepoint]
pub fn fd_new(ctx: TracePointContext) -> u32 {
    let _ = on_new(&ctx);
    0
}

#[inline(always)]
fn on_new(ctx: &TracePointContext) -> Option<()> {
    let e = begin(ctx, |ret| ret >= 0)?;
    let c = match by_nr(e.nr)? {
        Effect::New(c) => c,
        Effect::NewWhenArg0Negative(c) if e.arg(0) as i32 == -1 => c,
        Effect::NewWhenArg2Zero(c) if e.arg(2) == 0 => c,
        Effect::Bpf if e.arg(0) < 64 && (sc::BPF_FD_COMMANDS >> e.arg(0)) & 1 == 1 => Cloexec::Always,
        // io_uring_params.flags, 8 bytes in.
        Effect::IoUring if user::<u32>(e.arg(1) + 8) & sc::IORING_SETUP_REGISTERED_FD_ONLY == 0 => Cloexec::Always,
        Effect::SeccompListener if e.arg(0) == sc::SECCOMP_SET_MODE_FILTER && e.arg(1) & sc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 => {
            Cloexec::Always
        }
        _ => return None,
    };
    let mut info = OpenInfo::new(FdKind::Other, cloexec(c, &e));
    if e.nr == sc::SYS_SOCKET {
        (info.family, info.socktype) = (e.arg(0) as u16, (e.arg(1) & 0xf) as u16);
    }
    emit_open(ctx, &e, e.ret as u64, None, info);
    Some(())
}

/// System calls that write new descriptors to the caller's memory.
#[tracepoint]
pub fn fd_written(ctx: TracePointContext) -> u32 {
    let _ = on_written(&ctx);
    0
}

#[inline(always)]
fn on_written(ctx: &TracePointContext) -> Option<()> {
    let e = begin(ctx, |ret| ret >= 0)?;
    let (fd, pair, info) = match by_nr(e.nr)? {
        Effect::Pair { arg, cloexec: c } => {
            let fds: [i32; 2] = user(e.arg(arg));
            let mut info = OpenInfo::new(FdKind::Other, cloexec(c, &e));
            if e.nr == sc::SYS_SOCKETPAIR {
                (info.family, info.socktype) = (e.arg(0) as u16, (e.arg(1) & 0xf) as u16);
            }
            (fds[0], Some(fds[1] as u32 as u64), info)
        }
        // In the parent (the child returns 0): the pidfd at parent_tid.
        Effect::ClonePidfd if e.ret > 0 && e.arg(0) & sc::CLONE_PIDFD != 0 => {
            (user::<i32>(e.arg(2)), None, OpenInfo::new(FdKind::Pidfd, true))
        }
        // clone_args: flags, then the pointer to the pidfd.
        Effect::Clone3Pidfd if e.ret > 0 && user::<u64>(e.arg(0)) & sc::CLONE_PIDFD != 0 => {
            (user::<i32>(user::<u64>(e.arg(0) + 8)), None, OpenInfo::new(FdKind::Pidfd, true))
        }
        _ => return None,
    };
    emit_open(ctx, &e, fd as u32 as u64, pair, info);
    Some(())
}

/// dup, dup2, dup3, fcntl; ioctl's close-on-exec commands.
#[tracepoint]
pub fn fd_dup(ctx: TracePointContext) -> u32 {
    let _ = on_dup(&ctx);
    0
}

#[inline(always)]
fn on_dup(ctx: &TracePointContext) -> Option<()> {
    let e = begin(ctx, |ret| ret >= 0)?;
    let (old, cx) = match by_nr(e.nr)? {
        Effect::Dup(c) => (e.arg(0), cloexec(c, &e)),
        Effect::Fcntl => match e.arg(1) {
            sc::F_DUPFD => (e.arg(0), false),
            sc::F_DUPFD_CLOEXEC => (e.arg(0), true),
            sc::F_SETFD => {
                let on = e.arg(2) & sc::FD_CLOEXEC != 0;
                emit_small(EventKind::FdSetCloexec, e.pid_tgid, e.arg(0) as u32 as u64, on as u64, 0, Counter::LostHandle);
                return Some(());
            }
            _ => return None,
        },
        Effect::Ioctl => {
            let on = match e.arg(1) as u32 {
                sc::FIOCLEX => true,
                sc::FIONCLEX => false,
                _ => return None,
            };
            emit_small(EventKind::FdSetCloexec, e.pid_tgid, e.arg(0) as u32 as u64, on as u64, 0, Counter::LostHandle);
            return Some(());
        }
        _ => return None,
    };
    let new = e.ret as u64;
    let mut f = FileInfo { file: 0, kind: 0, _pad: 0, name: [0; 2] };
    if lt_fd_file(new, &mut f) != 0 {
        let abc = [fd_with_tag(new, file_tag(f.file)), old as u32 as u64, cx as u64 | u64::from(f.kind) << 8];
        emit_with_stack(ctx.as_ptr(), EventKind::FdDup, e.pid_tgid, abc, e.user_regs(), Counter::LostHandle);
        if FdKind::from_u32(f.kind).has_name_detail() {
            emit_small(EventKind::FdName, e.pid_tgid, new, f.name[0], f.name[1], Counter::LostHandle);
        }
    }
    Some(())
}

/// recvmsg, recvmmsg: descriptors received in control messages.
#[tracepoint]
pub fn fd_receive(ctx: TracePointContext) -> u32 {
    let _ = on_receive(&ctx);
    0
}

#[inline(always)]
fn on_receive(ctx: &TracePointContext) -> Option<()> {
    let e = begin(ctx, |ret| ret >= 0)?;
    // recvmsg(fd, msghdr, flags) returns bytes; recvmmsg(fd, mmsghdr[], vlen, flags, timeout) messages.
    let (nmsg, flags) = match by_nr(e.nr)? {
        Effect::Receive { many: false } => (1, e.arg(2)),
        Effect::Receive { many: true } => (e.ret as u64, e.arg(3)),
        _ => return None,
    };
    let walk = receive::collect(e.arg(1), nmsg)?;
    // SAFETY: the thread's own receive entry, which nothing else writes while this program runs.
    let (n, complete) = unsafe { ((*walk).n, (*walk).complete) };
    if complete == 0 {
        count(Counter::ReceivedUntraced);
    }
    let mut info = OpenInfo::new(FdKind::Other, flags & u64::from(sc::MSG_CMSG_CLOEXEC) != 0);
    info.received = true;
    for i in 0..receive::MAX_FDS {
        if i as u32 >= n {
            break;
        }
        // SAFETY: as above; `i` is within the array.
        let fd = unsafe { (*walk).fds[i] };
        emit_open(ctx, &e, fd as u32 as u64, None, info);
    }
    Some(())
}

/// close, close_range.
#[tracepoint]
pub fn fd_close(ctx: TracePointContext) -> u32 {
    let _ = on_close(&ctx);
    0
}

#[inline(always)]
fn on_close(ctx: &TracePointContext) -> Option<()> {
    // A failed close still frees the number, unless it was not open (EBADF).
    let e = begin(ctx, |ret| ret != -sc::EBADF)?;
    match by_nr(e.nr)? {
        Effect::Close => {
            // The number's holder is read after the record's place is taken:
            // a new holder's record placed before this one is seen here, so
            // the close is not taken for the close of that new descriptor.
            let fd = e.arg(0) as u32 as u64;
            let fields = || [fd_with_tag(fd, file_tag(files::occupant(fd))), 0, 0];
            emit_small_read_after(EventKind::FdClose, e.pid_tgid, fields, Counter::LostHandle);
        }
        Effect::CloseRange if e.ret == 0 => {
            let (first, last, flags) = (e.arg(0) as u32 as u64, e.arg(1) as u32 as u64, e.arg(2) as u32 as u64);
            if flags & sc::CLOSE_RANGE_CLOEXEC == 0 && files::any_open(first, last) {
                count(Counter::CloseRangeRaced);
            }
            emit_small(EventKind::FdCloseRange, e.pid_tgid, first, last, flags, Counter::LostHandle);
        }
        _ => {}
    }
    Some(())
}
