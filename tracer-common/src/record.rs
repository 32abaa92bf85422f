//! Fixed-layout records written by the kernel side.

use crate::kinds::EventKind;

/// User frames captured per event.
pub const MAX_FRAMES: usize = 32;
/// Words of user stack attached when the kernel's walk stops at code whose
/// unwind table is not loaded yet: userspace goes on from there with the same rules.
pub const STACK_COPY_WORDS: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] discriminant.
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Number of valid entries in [`StackEvent::frames`] (0 for small events).
    pub nframes: u32,
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns).
    pub ts_ns: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

impl EventHeader {
    pub const fn new(kind: EventKind, pid_tgid: u64, ts_ns: u64) -> Self {
        Self { kind: kind as u32, tgid: (pid_tgid >> 32) as u32, tid: pid_tgid as u32, nframes: 0, ts_ns, a: 0, b: 0, c: 0 }
    }
}

/// A record without a stack: frees, closes, process events.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallEvent {
    pub hdr: EventHeader,
}

/// Where the kernel's stack walk ended, and from where userspace can go on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StackStop {
    /// A [`crate::StopReason`] discriminant.
    pub reason: u32,
    /// Bit i set: `frames[i]` is an exact instruction address (the frame a
    /// signal interrupted), not a return address.
    pub exact: u32,
    /// The registers of the last frame taken, the one the walk could not step over.
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// With [`crate::StopReason::NoTable`]: the file whose table is missing.
    pub module: crate::ModuleKey,
    /// Words of stack copy that follow the record (a [`StackCopyEvent`]), else 0.
    pub copy_words: u32,
    pub _pad: u32,
}

/// A record with the user stack: allocations and new descriptors.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackEvent {
    pub hdr: EventHeader,
    pub stop: StackStop,
    /// Innermost first; `frames[0]` is the instruction pointer (a return
    /// address at an allocator's return).
    pub frames: [u64; MAX_FRAMES],
}

/// A [`StackEvent`] whose walk stopped where userspace can do better: the
/// user stack from `stop.sp` upward follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackCopyEvent {
    pub ev: StackEvent,
    /// `copy[i]` is the word at `stop.sp + 8 * i`.
    pub copy: [u64; STACK_COPY_WORDS],
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
pub const SMALL_SIZE: usize = core::mem::size_of::<SmallEvent>();
pub const STACK_SIZE: usize = core::mem::size_of::<StackEvent>();
pub const STACK_COPY_SIZE: usize = core::mem::size_of::<StackCopyEvent>();
