//! Per-thread and per-process identity, kept without system calls on the hot path.

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    /// The thread's id (0: not read yet).
    static TID: Cell<u32> = const { Cell::new(0) };
    /// Inside the recorder or the allocator it calls: nested allocator
    /// calls (the allocator's own, the recorder's set-up) are not recorded.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// The process's id (0: not read yet; reset in a forked child).
static PID: AtomicU32 = AtomicU32::new(0);

pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: getpid has no preconditions.
            let p = unsafe { libc::getpid() } as u32;
            PID.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

pub fn tid() -> u32 {
    TID.with(|t| match t.get() {
        0 => {
            // SAFETY: gettid has no preconditions.
            let id = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
            t.set(id);
            id
        }
        id => id,
    })
}

/// In a child just forked: its ids are new.
pub fn forked() {
    PID.store(0, Ordering::Relaxed);
    TID.with(|t| t.set(0));
}

/// Marks the thread busy for as long as the guard lives; None if it already was.
pub struct Busy(());

impl Busy {
    #[inline(always)]
    pub fn enter() -> Option<Self> {
        BUSY.with(|b| if b.replace(true) { None } else { Some(Busy(())) })
    }
}

impl Drop for Busy {
    #[inline(always)]
    fn drop(&mut self) {
        BUSY.with(|b| b.set(false));
    }
}

/// Monotonic nanoseconds, the clock the kernel's records use (bpf_ktime_get_ns).
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
