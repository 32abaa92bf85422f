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
    /// A new descriptor (the fields: [`crate::fdrecord`]).
    FdOpen = 4,
    /// A duplicated descriptor: `a` = new fd and its file, `b` = old fd, `c` = close-on-exec and the file's kind.
    FdDup = 5,
    /// close(), at its exit: `a` = fd and the file at that number by then.
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
    /// The name of the file behind the descriptor just opened (a memfd's,
    /// a BPF object's, an unknown anonymous inode's): `a` = fd, `b`, `c` = 16 bytes.
    FdName = 13,
    /// The dynamic linker has mapped objects (startup, dlopen): their
    /// unwind tables are wanted before their code runs.
    Loaded = 14,
    /// A libuv handle was initialised (see [`crate::uv`]): `a` = handle,
    /// `b` = the descriptor its caller gave ([`crate::uv::NO_FD`]: none), `c` = [`crate::uv::UvFn`].
    UvInit = 15,
    /// Another probed libuv call: `a`, `b` by its [`crate::uv::Shape`], `c` = [`crate::uv::UvFn`].
    UvCall = 16,
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
            13 => Self::FdName,
            14 => Self::Loaded,
            15 => Self::UvInit,
            16 => Self::UvCall,
            _ => return None,
        })
    }

    /// Whether records of this kind are [`crate::StackEvent`]s (else [`crate::SmallEvent`]s).
    pub const fn has_stack(self) -> bool {
        matches!(self, Self::Alloc | Self::Realloc | Self::FdOpen | Self::FdDup | Self::UvInit)
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
    /// glibc's `__malloc_arena_thread_freeres` (a local symbol, found in its
    /// debug file; `tcache_thread_shutdown` is inlined there): at a thread's
    /// exit it frees the thread's cache and the blocks cached in it, all past
    /// what the probes saw allocated (or already freed by the program). Not
    /// in [`AllocFn::ALL`]: nothing it frees is recorded, it allocates nothing.
    ThreadCacheShutdown = 11,
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
            11 => Self::ThreadCacheShutdown,
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
            Self::ThreadCacheShutdown => "__malloc_arena_thread_freeres",
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
    /// its stack copy (ring full): its stack ends there.
    StackCopyFailed = 5,
    /// A posix_memalign result could not be read back from user memory.
    ResultReadFailed = 6,
    /// The traced-process table was full (follow-forks).
    TargetsFull = 7,
    /// Allocator calls skipped by sampling (sampling mode only).
    Unsampled = 8,
    /// The table of sampled addresses was full: a sampled allocation is not followed.
    SampledFull = 9,
    /// close_range() found descriptors in its range open again at its exit
    /// (another thread's): userspace may have closed them.
    CloseRangeRaced = 10,
    /// A recvmsg/recvmmsg call received descriptors the kernel side did not
    /// follow (more than 16 in one call, or messages past its 1024 steps).
    ReceivedUntraced = 11,
}

impl Counter {
    pub const COUNT: u32 = 12;
    pub const ALL: [Counter; 12] = [
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
        Self::CloseRangeRaced,
        Self::ReceivedUntraced,
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
            Self::CloseRangeRaced => "close_range_raced",
            Self::ReceivedUntraced => "received_untraced",
        }
    }

    /// Whether a non-zero value means events were lost (the report is incomplete).
    pub const fn is_loss(self) -> bool {
        matches!(
            self,
            Self::LostHeap
                | Self::LostHandle
                | Self::LostProcess
                | Self::PendingFull
                | Self::TargetsFull
                | Self::SampledFull
                | Self::CloseRangeRaced
                | Self::ReceivedUntraced
        )
    }
}
