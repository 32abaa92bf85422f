//! Every system call that gives a process a descriptor or takes one away
//! (x86-64), in one table: userspace attaches one program to each call's
//! `syscalls/sys_exit_NAME` tracepoint, by the call's [`Effect`]; the kernel
//! side looks the call up by number ([`by_nr`]) to read its arguments.
//!
//! Everything is recorded at the exit, closes included: a program at the
//! entry of any system call puts a second callback on every system call of
//! every process on the machine, which costs more than the kernel's floor for
//! syscall tracepoints. A close recorded at exit names whatever holds the
//! number by then (see [`crate::fdrecord`]), so userspace can tell a close from
//! a reuse of the number by another thread in between.

/// Whether a new descriptor is close-on-exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloexec {
    Never,
    /// The call always sets it (pidfds, BPF objects, io_uring).
    Always,
    /// When argument `arg` has one of the bits of `mask`.
    Arg {
        arg: u8,
        mask: u32,
    },
    /// openat2: O_CLOEXEC in `open_how.flags`, in user memory at argument 2.
    OpenHow,
}

/// O_CLOEXEC, and every flag that shares its value (SOCK_, TFD_, EFD_,
/// EPOLL_, IN_, SFD_, OPEN_TREE_CLOEXEC, MSG_CMSG_CLOEXEC is another).
pub const O_CLOEXEC: u32 = 0o2000000;
/// MFD_CLOEXEC, FAN_CLOEXEC, FSOPEN/FSPICK/FSMOUNT_CLOEXEC.
pub const ONE_CLOEXEC: u32 = 1;
pub const PERF_FLAG_FD_CLOEXEC: u32 = 8;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

const fn arg(arg: u8, mask: u32) -> Cloexec {
    Cloexec::Arg { arg, mask }
}

/// What a system call does to the descriptor table when it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The return value is a new descriptor.
    New(Cloexec),
    /// signalfd, signalfd4: a new descriptor when argument 0 is -1 (else it
    /// changes that one).
    NewWhenArg0Negative(Cloexec),
    /// landlock_create_ruleset: a descriptor when its flags (argument 2) are 0
    /// (else the return value is an ABI version).
    NewWhenArg2Zero(Cloexec),
    /// bpf(2): a descriptor for the commands that make one.
    Bpf,
    /// io_uring_setup: a descriptor unless IORING_SETUP_REGISTERED_FD_ONLY.
    IoUring,
    /// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER): the listener.
    SeccompListener,
    /// Two descriptors in the `int[2]` at argument `arg` (pipe, socketpair).
    Pair { arg: u8, cloexec: Cloexec },
    /// clone(CLONE_PIDFD): a pidfd in the `int` at argument 2, in the parent.
    ClonePidfd,
    /// clone3(CLONE_PIDFD): a pidfd where `clone_args.pidfd` points, in the parent.
    Clone3Pidfd,
    /// The return value is a copy of argument 0.
    Dup(Cloexec),
    /// fcntl: F_DUPFD and F_DUPFD_CLOEXEC copy, F_SETFD sets close-on-exec.
    Fcntl,
    /// ioctl: FIOCLEX and FIONCLEX set and clear close-on-exec (libuv's way,
    /// and Python's `os.set_inheritable`).
    Ioctl,
    /// Descriptors received in SCM_RIGHTS (and SCM_PIDFD) control messages:
    /// recvmsg's one message at argument 1, or recvmmsg's vector.
    Receive { many: bool },
    /// close(argument 0).
    Close,
    /// close_range(first, last, flags).
    CloseRange,
}

/// The kernel program that serves a system call's exit tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitProgram {
    /// The return value is a new descriptor.
    New,
    /// Descriptors written to user memory (pipe, socketpair, clone's pidfd).
    Written,
    /// Copies and close-on-exec changes (dup*, fcntl, ioctl).
    Dup,
    /// SCM_RIGHTS.
    Receive,
    /// close, close_range.
    Close,
}

impl ExitProgram {
    pub const ALL: [ExitProgram; 5] = [Self::New, Self::Written, Self::Dup, Self::Receive, Self::Close];

    /// The program's name in the eBPF object.
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "fd_new",
            Self::Written => "fd_written",
            Self::Dup => "fd_dup",
            Self::Receive => "fd_receive",
            Self::Close => "fd_close",
        }
    }
}

impl Effect {
    pub const fn program(self) -> ExitProgram {
        match self {
            Self::New(_) | Self::NewWhenArg0Negative(_) | Self::NewWhenArg2Zero(_) | Self::Bpf | Self::IoUring | Self::SeccompListener => {
                ExitProgram::New
            }
            Self::Pair { .. } | Self::ClonePidfd | Self::Clone3Pidfd => ExitProgram::Written,
            Self::Dup(_) | Self::Fcntl | Self::Ioctl => ExitProgram::Dup,
            Self::Receive { .. } => ExitProgram::Receive,
            Self::Close | Self::CloseRange => ExitProgram::Close,
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// x86-64 number.
    pub nr: u32,
    /// The tracepoint is `syscalls/sys_exit_{name}`.
    pub name: &'static str,
    pub effect: Effect,
    /// Whether every kernel leaktrace supports has it: a missing one means the
    /// kernel lacks syscall tracepoints. The others (calls added since 5.0)
    /// are traced where present; a kernel without them cannot make such a
    /// descriptor either.
    pub required: bool,
}

macro_rules! table {
    ($($name:ident = $nr:literal, $req:literal => $effect:expr;)*) => {
        /// Every row, for userspace to attach.
        pub const SYSCALLS: &[Syscall] = &[$(Syscall { nr: $nr, name: stringify!($name), effect: $effect, required: $req }),*];

        /// The effect of system call `nr`, for the kernel side (a switch, no search).
        #[inline(always)]
        pub const fn by_nr(nr: u32) -> Option<Effect> {
            match nr {
                $($nr => Some($effect),)*
                _ => None,
            }
        }
    };
}

use Cloexec::{Always, Never};
use Effect::*;

table! {
    open = 2, true => New(arg(1, O_CLOEXEC));
    openat = 257, true => New(arg(2, O_CLOEXEC));
    openat2 = 437, false => New(Cloexec::OpenHow);
    creat = 85, true => New(Never);
    open_by_handle_at = 304, true => New(arg(2, O_CLOEXEC));
    open_tree = 428, false => New(arg(2, O_CLOEXEC));
    open_tree_attr = 467, false => New(arg(2, O_CLOEXEC));
    fsopen = 430, false => New(arg(1, ONE_CLOEXEC));
    fspick = 433, false => New(arg(2, ONE_CLOEXEC));
    fsmount = 432, false => New(arg(1, ONE_CLOEXEC));
    mq_open = 240, false => New(arg(1, O_CLOEXEC));
    socket = 41, true => New(arg(1, O_CLOEXEC));
    accept = 43, true => New(Never);
    accept4 = 288, true => New(arg(3, O_CLOEXEC));
    timerfd_create = 283, true => New(arg(1, O_CLOEXEC));
    eventfd = 284, true => New(Never);
    eventfd2 = 290, true => New(arg(1, O_CLOEXEC));
    epoll_create = 213, true => New(Never);
    epoll_create1 = 291, true => New(arg(0, O_CLOEXEC));
    inotify_init = 253, true => New(Never);
    inotify_init1 = 294, true => New(arg(0, O_CLOEXEC));
    signalfd = 282, true => NewWhenArg0Negative(Never);
    signalfd4 = 289, true => NewWhenArg0Negative(arg(3, O_CLOEXEC));
    fanotify_init = 300, false => New(arg(0, ONE_CLOEXEC));
    userfaultfd = 323, false => New(arg(0, O_CLOEXEC));
    perf_event_open = 298, false => New(arg(4, PERF_FLAG_FD_CLOEXEC));
    bpf = 321, false => Bpf;
    memfd_create = 319, true => New(arg(1, ONE_CLOEXEC));
    memfd_secret = 447, false => New(arg(0, O_CLOEXEC));
    pidfd_open = 434, false => New(Always);
    pidfd_getfd = 438, false => New(Always);
    io_uring_setup = 425, false => IoUring;
    landlock_create_ruleset = 444, false => NewWhenArg2Zero(Always);
    seccomp = 317, false => SeccompListener;
    pipe = 22, true => Pair { arg: 0, cloexec: Never };
    pipe2 = 293, true => Pair { arg: 0, cloexec: arg(1, O_CLOEXEC) };
    socketpair = 53, true => Pair { arg: 3, cloexec: arg(1, O_CLOEXEC) };
    clone = 56, true => ClonePidfd;
    clone3 = 435, false => Clone3Pidfd;
    dup = 32, true => Dup(Never);
    dup2 = 33, true => Dup(Never);
    dup3 = 292, true => Dup(arg(2, O_CLOEXEC));
    fcntl = 72, true => Fcntl;
    ioctl = 16, true => Ioctl;
    recvmsg = 47, true => Receive { many: false };
    recvmmsg = 299, true => Receive { many: true };
    close = 3, true => Close;
    close_range = 436, false => CloseRange;
}

pub const SYS_SOCKET: u32 = 41;
pub const SYS_SOCKETPAIR: u32 = 53;

/// bpf(2) commands that return a new descriptor: MAP_CREATE, PROG_LOAD,
/// OBJ_GET, PROG/MAP_GET_FD_BY_ID, RAW_TRACEPOINT_OPEN, BTF_LOAD,
/// BTF_GET_FD_BY_ID, LINK_CREATE, LINK_GET_FD_BY_ID, ENABLE_STATS,
/// ITER_CREATE, TOKEN_CREATE.
pub const BPF_FD_COMMANDS: u64 =
    1 << 0 | 1 << 5 | 1 << 7 | 1 << 13 | 1 << 14 | 1 << 17 | 1 << 18 | 1 << 19 | 1 << 28 | 1 << 30 | 1 << 32 | 1 << 33 | 1 << 36;
/// `io_uring_params.flags` (at byte 8): the ring is a registered index, not a descriptor.
pub const IORING_SETUP_REGISTERED_FD_ONLY: u32 = 1 << 15;
pub const SECCOMP_SET_MODE_FILTER: u64 = 1;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u64 = 1 << 3;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const F_DUPFD: u64 = 0;
pub const F_SETFD: u64 = 2;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const FD_CLOEXEC: u64 = 1;
pub const FIONCLEX: u32 = 0x5450;
pub const FIOCLEX: u32 = 0x5451;
/// close_range: mark close-on-exec instead of closing.
pub const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
pub const EBADF: i64 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_lookup_agree() {
        for s in SYSCALLS {
            assert_eq!(by_nr(s.nr), Some(s.effect), "{}", s.name);
            assert_eq!(SYSCALLS.iter().filter(|o| o.nr == s.nr || o.name == s.name).count(), 1, "{} is listed once", s.name);
        }
        let known = (0..1024).filter(|&nr| by_nr(nr).is_some()).count();
        assert_eq!(known, SYSCALLS.len());
        assert_eq!(by_nr(39), None, "getpid makes no descriptor");
    }

    #[test]
    fn every_program_serves_some_call() {
        for p in ExitProgram::ALL {
            assert!(SYSCALLS.iter().any(|s| s.effect.program() == p), "{p:?}");
        }
        assert_eq!(by_nr(3).map(Effect::program), Some(ExitProgram::Close));
        assert_eq!(by_nr(47).map(Effect::program), Some(ExitProgram::Receive));
    }

    #[test]
    fn the_issue_list_is_covered() {
        for name in [
            "recvmsg",
            "recvmmsg",
            "pidfd_getfd",
            "pidfd_open",
            "io_uring_setup",
            "inotify_init",
            "inotify_init1",
            "signalfd",
            "signalfd4",
            "fanotify_init",
            "userfaultfd",
            "perf_event_open",
            "bpf",
            "memfd_create",
            "memfd_secret",
            "open_by_handle_at",
            "open_tree",
            "fsopen",
            "fsmount",
            "fspick",
            "socket",
            "socketpair",
            "accept",
            "accept4",
            "timerfd_create",
            "eventfd",
            "eventfd2",
            "epoll_create",
            "epoll_create1",
            "pipe",
            "pipe2",
            "dup",
            "dup2",
            "dup3",
            "fcntl",
            "ioctl",
            "open",
            "openat",
            "openat2",
            "creat",
            "close",
            "close_range",
        ] {
            assert!(SYSCALLS.iter().any(|s| s.name == name), "{name} is missing");
        }
    }
}
