//! The environment, read and edited in place: no allocation.
//!
//! leaktrace starts a command with `LD_PRELOAD` naming the recorder (ahead
//! of the user's own, kept in `LEAKTRACE_LD_PRELOAD`) and `LEAKTRACE_SHM`.
//! Unless children are followed, the recorder takes them out again before
//! the program's code runs, so the program (and anything it starts) sees the
//! environment it was given.

use core::ffi::{c_char, CStr};

unsafe extern "C" {
    static mut environ: *mut *mut c_char;
}

/// `LEAKTRACE_LD_PRELOAD=...` read from its 10th byte is `LD_PRELOAD=...`.
const SAVED_PRELOAD: &[u8] = b"LEAKTRACE_LD_PRELOAD";
const PREFIX: usize = b"LEAKTRACE_".len();

/// The value of `name`, if set.
pub fn get(name: &[u8]) -> Option<&'static CStr> {
    // SAFETY: environ is a NULL-terminated array of NUL-terminated strings.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = CStr::from_ptr(*p).to_bytes_with_nul();
            if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                return Some(CStr::from_bytes_with_nul_unchecked(&entry[name.len() + 1..]));
            }
            p = p.add(1);
        }
        None
    }
}

/// Restores the environment the command was given: leaktrace's variables
/// removed, the user's `LD_PRELOAD` put back (or removed if there was none).
pub fn restore() {
    // SAFETY: environ's entries are moved within the array (never grown); the
    // saved preload's string stays in the environment block, so pointing into it is sound.
    unsafe {
        let saved = find(SAVED_PRELOAD);
        let mut read = environ;
        let mut write = environ;
        while !read.is_null() && !(*read).is_null() {
            let entry = CStr::from_ptr(*read).to_bytes();
            let keep = if is(entry, b"LD_PRELOAD") {
                saved.map(|s| s.add(PREFIX))
            } else if is(entry, crate::connect::ENV_SHM) || is(entry, SAVED_PRELOAD) {
                None
            } else {
                Some(*read)
            };
            if let Some(e) = keep {
                *write = e;
                write = write.add(1);
            }
            read = read.add(1);
        }
        if !write.is_null() {
            *write = core::ptr::null_mut();
        }
    }
}

fn is(entry: &[u8], name: &[u8]) -> bool {
    entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'='
}

/// The whole `name=value` entry.
unsafe fn find(name: &[u8]) -> Option<*mut c_char> {
    // SAFETY: as in `get`.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            if is(CStr::from_ptr(*p).to_bytes(), name) {
                return Some(*p);
            }
            p = p.add(1);
        }
        None
    }
}
