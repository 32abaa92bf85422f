//! Mapping leaktrace's shared file: named by `LEAKTRACE_SHM` in the
//! environment (a command leaktrace runs), or passed to
//! [`leaktrace_recorder_attach`] (a process it loads the recorder into).

use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use tracer_common::inprocess::{Shared, FOLLOW_FORKS};

/// The view, once mapped (never unmapped: a thread may be using it).
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(core::ptr::null_mut());
static mut VIEW: Option<Shared> = None;

/// 0: not tried, 1: trying, 2: mapped, 3: inert.
static STATE: AtomicU8 = AtomicU8::new(0);
const MAPPED: u8 = 2;
const INERT: u8 = 3;

pub const ENV_SHM: &[u8] = b"LEAKTRACE_SHM";

/// The shared file, if this process records.
#[inline(always)]
pub fn shared() -> Option<&'static Shared> {
    let p = SHARED.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: set once from a view that is never dropped.
    let s = unsafe { &*p };
    s.enabled().then_some(s)
}

/// Maps the file named in the environment, once. Returns whether it is mapped.
pub fn from_env() -> bool {
    match STATE.load(Ordering::Acquire) {
        MAPPED => return true,
        INERT => return false,
        _ => {}
    }
    // Without it, leaktrace may still connect the recorder it loaded (`map`).
    let Some(path) = crate::env::get(ENV_SHM) else { return false };
    map(path.as_ptr() as *const c_char) == 0
}

/// Maps the file at `path` (NUL-terminated); 0 on success, else an errno.
pub fn map(path: *const c_char) -> c_int {
    if STATE.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return if STATE.load(Ordering::Acquire) == MAPPED { 0 } else { libc::EALREADY };
    }
    let result = map_now(path);
    STATE.store(if result == 0 { MAPPED } else { INERT }, Ordering::Release);
    result
}

fn map_now(path: *const c_char) -> c_int {
    // SAFETY: plain system calls on a path the caller passes NUL-terminated;
    // the descriptor is closed before returning (the mapping stays).
    unsafe {
        let fd = libc::open(path, libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return errno();
        }
        let mut st: libc::stat = core::mem::zeroed();
        let mapped = if libc::fstat(fd, &mut st) == 0 {
            libc::mmap(core::ptr::null_mut(), st.st_size as usize, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        } else {
            libc::MAP_FAILED
        };
        let err = errno();
        libc::close(fd);
        if mapped == libc::MAP_FAILED {
            return err;
        }
        let Some(view) = Shared::new(mapped as *mut u8, st.st_size as u64) else {
            libc::munmap(mapped, st.st_size as usize);
            return libc::EINVAL;
        };
        view.header().connected.fetch_add(1, Ordering::Relaxed);
        VIEW = Some(view);
        if let Some(v) = (*core::ptr::addr_of!(VIEW)).as_ref() {
            SHARED.store(v as *const Shared as *mut Shared, Ordering::Release);
        }
        0
    }
}

fn errno() -> c_int {
    // SAFETY: the thread's errno location.
    unsafe { *libc::__errno_location() }
}

/// Whether children forked without exec record too.
pub fn follows_forks() -> bool {
    // SAFETY: as in `shared`.
    let p = SHARED.load(Ordering::Acquire);
    !p.is_null() && unsafe { (*p).header().flags } & FOLLOW_FORKS != 0
}

/// A forked child that is not followed: records nothing from now on.
pub fn go_inert() {
    SHARED.store(core::ptr::null_mut(), Ordering::Release);
    STATE.store(INERT, Ordering::Release);
}
