//! Maps and load-time settings shared by every program.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use tracer_common::Counter;

/// All records, in the order they were reserved. Userspace sizes it at load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Traced processes (tgid → 1). The first check of every program.
#[map]
pub static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// Allocator calls in flight, per thread.
#[map]
pub static PENDING: HashMap<u32, Pending> = HashMap::with_max_entries(65536, 0);

/// Sampling mode: the sampled allocations still outstanding, so that only
/// their frees and reallocs are followed.
#[map]
pub static SAMPLED: HashMap<AddrKey, u8> = HashMap::with_max_entries(1 << 20, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct AddrKey {
    pub tgid: u64,
    pub addr: u64,
}

/// What could not be delivered or captured, by [`Counter`].
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Frames to capture per stack (≤ MAX_FRAMES). Set by userspace at load.
#[unsafe(no_mangle)]
static STACK_FRAMES: u32 = tracer_common::MAX_FRAMES as u32;

/// Bytes of unread data above which a record wakes the consumer; below it the
/// consumer polls, which keeps the per-event cost off the traced program.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 1 << 20;

/// Sampling mode when > 1: about one allocator call in SAMPLE_EVERY is traced.
#[unsafe(no_mangle)]
static SAMPLE_EVERY: u32 = 0;

/// 1 when children of traced processes are traced too.
#[unsafe(no_mangle)]
static FOLLOW_FORKS: u32 = 0;

/// Offset of `child_pid` in the sched_process_fork record (read from tracefs at load).
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: u32 = 20;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    /// Nesting of allocator calls on this thread (realloc(NULL, n) calls malloc).
    pub depth: u32,
    /// The outermost call's [`tracer_common::AllocFn`].
    pub func: u32,
    pub size: u64,
    /// realloc's old pointer.
    pub old: u64,
    /// posix_memalign's result pointer.
    pub out: u64,
}

#[inline(always)]
pub fn setting_u32(v: &'static u32) -> u32 {
    // SAFETY: a plain read of a global the loader may have rewritten.
    unsafe { core::ptr::read_volatile(v) }
}

#[inline(always)]
pub fn stack_frames() -> u32 {
    setting_u32(&STACK_FRAMES)
}

#[inline(always)]
pub fn sample_every() -> u32 {
    setting_u32(&SAMPLE_EVERY)
}

#[inline(always)]
pub fn follow_forks() -> bool {
    setting_u32(&FOLLOW_FORKS) == 1
}

#[inline(always)]
pub fn fork_child_pid_offset() -> usize {
    setting_u32(&FORK_CHILD_PID_OFFSET) as usize
}

/// The current pid_tgid when the current process is traced.
#[inline(always)]
pub fn traced() -> Option<u64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: the value is only tested for presence.
    unsafe { TARGETS.get(tgid) }.map(|_| pid_tgid)
}

#[inline(always)]
pub fn count(c: Counter) {
    if let Some(v) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot, no concurrent writer.
        unsafe { *v += 1 };
    }
}

/// Submit flags: wake the consumer only when it has a backlog.
#[inline(always)]
pub fn submit_flags() -> u64 {
    // SAFETY: plain read of a load-time setting.
    let wake = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= wake {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
