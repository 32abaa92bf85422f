//! Fixed-layout records written by the kernel side.

use crate::kinds::EventKind;

/// User frames captured per event (frame-pointer walk by the kernel).
pub const MAX_FRAMES: usize = 32;
/// Words copied from the top of the user stack, for a CFI step over frameless code.
pub const STACK_TOP_WORDS: usize = 32;

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

/// A record with the user stack: allocations and new descriptors.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackEvent {
    pub hdr: EventHeader,
    /// User stack pointer when the stack was taken.
    pub sp: u64,
    /// User frame pointer (rbp) when the stack was taken: the kernel's walk started here.
    pub bp: u64,
    /// Number of valid words in `stack_top`.
    pub stack_top_len: u32,
    pub _pad: u32,
    /// Return addresses; `frames[0]` is the user instruction pointer.
    pub frames: [u64; MAX_FRAMES],
    /// `stack_top[i]` is the word at `sp + 8 * i`.
    pub stack_top: [u64; STACK_TOP_WORDS],
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
pub const SMALL_SIZE: usize = core::mem::size_of::<SmallEvent>();
pub const STACK_SIZE: usize = core::mem::size_of::<StackEvent>();
