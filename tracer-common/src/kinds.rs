//! Discriminants shared by kernel and userspace. Values are part of the ABI
//! between the two halves: append, never renumber.

/// What a ring-buffer record describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A successful allocation: `a` = address, `b` = size, `c` = [`AllocFn`].
    Alloc = 1,
    /// A successful realloc: `a` = new address, `b` = size, `c` = old address.
    Realloc = 2,
    /// free(): `a` = address (never 0).
    Free = 3,
    /// A new descriptor: `a` = fd, `b` = [`FdKind`] | cloexec << 8, `c` = second fd of a pair or `u64::MAX`.
    FdOpen = 4,
    /// A duplicated descriptor: `a` = new fd, `b` = old fd, `c` = 1 when the new fd is close-on-exec.
    FdDup = 5,
    /// close(): `a` = fd.
    FdClose = 6,
    /// close_range(): `a` = first, `b` = last, `c` = flags.
    FdCloseRange = 7,
    /// fcntl(F_SETFD): `a` = fd, `b` = 1 when FD_CLOEXEC is now set.
    FdSetCloexec = 8,
    /// The process replaced its image (execve succeeded).
    Exec = 9,
    /// A thread exited; `tid == tgid` for the thread-group leader.
    Exit = 10,
    /// A traced process forked: `a` = child pid (only with follow-forks).
    Fork = 11,
    /// A failed allocation (NULL): `b` = size, `c` = [`AllocFn`]. Counted, never outstanding.
    AllocFailed = 12,
    /// The dynamic linker has mapped objects (startup, dlopen): their
    /// unwind tables are wanted before their code runs. (13 is kept for the
    /// descriptor names of the syscall table.)
    Loaded = 14,
}

impl EventKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Alloc,
            2 => Self::Realloc,
            3 => Self::Free,
            4 => Self::FdOpen,
            5 => Self::FdDup,
            6 => Self::FdClose,
            7 => Self::FdCloseRange,
            8 => Self::FdSetCloexec,
            9 => Self::Exec,
            10 => Self::Exit,
            11 => Self::Fork,
            12 => Self::AllocFailed,
            14 => Self::Loaded,
            _ => return None,
        })
    }

    /// Whether records of this kind are [`crate::StackEvent`]s (else [`crate::SmallEvent`]s).
    pub const fn has_stack(self) -> bool {
        matches!(self, Self::Alloc | Self::Realloc | Self::FdOpen | Self::FdDup)
    }
}

/// The kind of kernel object a descriptor refers to.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FdKind {
    Other = 0,
    Socket = 1,
    Timerfd = 2,
    Eventfd = 3,
    Epoll = 4,
    Pipe = 5,
    File = 6,
}

impl FdKind {
    pub const ALL: [FdKind; 7] = [Self::Socket, Self::Timerfd, Self::Eventfd, Self::Epoll, Self::Pipe, Self::File, Self::Other];

    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Socket,
            2 => Self::Timerfd,
            3 => Self::Eventfd,
            4 => Self::Epoll,
            5 => Self::Pipe,
            6 => Self::File,
            _ => Self::Other,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Socket => "socket",
            Self::Timerfd => "timerfd",
            Self::Eventfd => "eventfd",
            Self::Epoll => "epoll",
            Self::Pipe => "pipe",
            Self::File => "file",
        }
    }
}

/// The allocator entry point a uprobe sits on. Also the value of a uprobe's
/// attach cookie, so one program serves every function of the same shape.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocFn {
    Malloc = 1,
    Calloc = 2,
    Realloc = 3,
    Reallocarray = 4,
    PosixMemalign = 5,
    AlignedAlloc = 6,
    Memalign = 7,
    Valloc = 8,
    Pvalloc = 9,
    Free = 10,
}

impl AllocFn {
    pub const ALL: [AllocFn; 10] = [
        Self::Malloc,
        Self::Calloc,
        Self::Realloc,
        Self::Reallocarray,
        Self::PosixMemalign,
        Self::AlignedAlloc,
        Self::Memalign,
        Self::Valloc,
        Self::Pvalloc,
        Self::Free,
    ];

    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Malloc,
            2 => Self::Calloc,
            3 => Self::Realloc,
            4 => Self::Reallocarray,
            5 => Self::PosixMemalign,
            6 => Self::AlignedAlloc,
            7 => Self::Memalign,
            8 => Self::Valloc,
            9 => Self::Pvalloc,
            10 => Self::Free,
            _ => return None,
        })
    }

    /// The exported symbol name.
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Malloc => "malloc",
            Self::Calloc => "calloc",
            Self::Realloc => "realloc",
            Self::Reallocarray => "reallocarray",
            Self::PosixMemalign => "posix_memalign",
            Self::AlignedAlloc => "aligned_alloc",
            Self::Memalign => "memalign",
            Self::Valloc => "valloc",
            Self::Pvalloc => "pvalloc",
            Self::Free => "free",
        }
    }
}

/// Per-CPU counters of what the kernel side could not deliver or capture.
/// Nothing is lost silently: userspace sums these into the report.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Ring buffer full: a heap event was dropped.
    LostHeap = 0,
    /// Ring buffer full: a handle event was dropped.
    LostHandle = 1,
    /// Ring buffer full: a process event (exec, exit, fork) was dropped.
    LostProcess = 2,
    /// The per-thread table of allocator calls in flight was full.
    PendingFull = 3,
    /// bpf_get_stack failed; the record carries no frames.
    StackFailed = 4,
    /// A walk that stopped at a module without a loaded table could not attach
    /// its stack copy (ring full): its stack ends there. (Slot 5 once counted
    /// failed reads of the old fixed stack-top copy.)
    StackCopyFailed = 5,
    /// A posix_memalign result could not be read back from user memory.
    ResultReadFailed = 6,
    /// The traced-process table was full (follow-forks).
    TargetsFull = 7,
    /// Allocator calls skipped by sampling (sampling mode only).
    Unsampled = 8,
    /// The table of sampled addresses was full: a sampled allocation is not followed.
    SampledFull = 9,
}

impl Counter {
    pub const COUNT: u32 = 10;
    pub const ALL: [Counter; 10] = [
        Self::LostHeap,
        Self::LostHandle,
        Self::LostProcess,
        Self::PendingFull,
        Self::StackFailed,
        Self::StackCopyFailed,
        Self::ResultReadFailed,
        Self::TargetsFull,
        Self::Unsampled,
        Self::SampledFull,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::LostHeap => "lost_heap_events",
            Self::LostHandle => "lost_handle_events",
            Self::LostProcess => "lost_process_events",
            Self::PendingFull => "pending_table_full",
            Self::StackFailed => "stack_capture_failed",
            Self::StackCopyFailed => "stack_copy_failed",
            Self::ResultReadFailed => "result_read_failed",
            Self::TargetsFull => "targets_table_full",
            Self::Unsampled => "unsampled_calls",
            Self::SampledFull => "sampled_table_full",
        }
    }

    /// Whether a non-zero value means events were lost (the report is incomplete).
    pub const fn is_loss(self) -> bool {
        matches!(self, Self::LostHeap | Self::LostHandle | Self::LostProcess | Self::PendingFull | Self::TargetsFull | Self::SampledFull)
    }
}
