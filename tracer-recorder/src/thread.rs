//! Which process and thread is calling, without thread-local storage (a
//! library with a TLS segment makes the dynamic linker allocate every
//! thread's TLS vector larger: the traced program's own blocks would change).
//!
//! The thread's id is read from glibc's thread descriptor, at the offset
//! glibc publishes for debuggers (`_thread_db_pthread_tid`, what
//! libthread_db reads); without it, from the kernel on each call.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The process's id (0: not read yet; reset in a forked child).
static PID: AtomicU32 = AtomicU32::new(0);
/// Offset of the thread id in glibc's `struct pthread` (0: unknown).
static TID_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// Reads where glibc keeps the thread id. Part of the set-up.
pub fn learn_layout() {
    // SAFETY: a NUL-terminated name; the symbol, when present, is glibc's
    // descriptor of the field: three u32 (size in bits, count, offset).
    unsafe {
        let desc = libc::dlsym(libc::RTLD_DEFAULT, c"_thread_db_pthread_tid".as_ptr()) as *const u32;
        if !desc.is_null() && *desc == 32 && *desc.add(1) == 1 {
            TID_OFFSET.store(*desc.add(2) as usize, Ordering::Relaxed);
        }
    }
}

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
    let offset = TID_OFFSET.load(Ordering::Relaxed);
    if offset != 0 {
        let tp: usize;
        // SAFETY: the thread pointer's self-reference (x86-64 TLS ABI): glibc's descriptor of this thread.
        unsafe { core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
        if tp != 0 {
            // SAFETY: the field glibc publishes, inside the live descriptor.
            let id = unsafe { core::ptr::read_volatile((tp + offset) as *const i32) };
            if id > 0 {
                return id as u32;
            }
        }
    }
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// In a child just forked: its process id is new.
pub fn forked() {
    PID.store(0, Ordering::Relaxed);
}

/// Monotonic nanoseconds, the clock the kernel's records use (bpf_ktime_get_ns).
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
