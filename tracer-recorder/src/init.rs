//! Start-up, forks, and the entry points leaktrace calls in a process it
//! loaded the recorder into.

use core::ffi::{c_char, c_int};

use crate::{connect, entry, env, got, thread};

/// Runs when the dynamic linker initialises the library (before the
/// program's own code when preloaded).
extern "C" fn init() {
    entry::set_up();
    if connect::shared().is_some() && !connect::follows_forks() {
        env::restore();
    }
    // SAFETY: registers a handler that only touches the recorder's own atomics.
    unsafe { libc::pthread_atfork(None, None, Some(forked)) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

/// In a child just forked: new ids, and nothing more recorded unless children are followed.
extern "C" fn forked() {
    thread::forked();
    got::forked();
    if !connect::follows_forks() {
        connect::go_inert();
    }
}

/// Connects a recorder leaktrace loaded into a running process to the
/// shared file at `path`. 0, or an errno.
#[unsafe(no_mangle)]
pub extern "C" fn leaktrace_recorder_attach(path: *const c_char) -> c_int {
    entry::set_up();
    connect::map(path)
}
