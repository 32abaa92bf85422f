//! The dynamic linker announcing new objects: a uprobe on `_dl_debug_state`,
//! the hook it calls for debuggers once objects are mapped (at start-up and
//! at every dlopen) and before their initialisers run. The walker needs their
//! unwind tables before their code does anything: the consumer is woken at
//! once, and under `run`, where leaktrace is the ptrace tracer, the thread
//! also stops until the tables are in (a signal the tracer intercepts and
//! never delivers). Under `attach` it is also a notice (process.rs), so that
//! the probes of a library loaded by dlopen (libuv) follow.

use aya_ebpf::{
    helpers::generated::bpf_send_signal_thread,
    macros::{map, uprobe},
    maps::HashMap,
    programs::ProbeContext,
};
use tracer_common::{Counter, EventKind};

use crate::capture::emit_small_now;
use crate::maps::{setting_u32, traced};
use crate::process::notice;

/// 1 under `run`: the thread that mapped objects stops until their tables are in.
#[unsafe(no_mangle)]
static PAUSE_ON_LOAD: u32 = 0;

/// The signal that stops it; the tracer recognises it by this table and never delivers it.
pub const PAUSE_SIGNAL: u32 = 23; // SIGURG: ignored by default, should it ever slip through

/// Threads stopped for tables: tid → tgid.
#[map]
pub static PAUSED: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

#[uprobe]
pub fn dl_loaded(_ctx: ProbeContext) -> u32 {
    let Some(pid_tgid) = traced() else { return 0 };
    emit_small_now(EventKind::Loaded, pid_tgid, 0, 0, 0, Counter::LostProcess);
    // Under `attach`, a libuv loaded by dlopen gets its probes from the notice.
    notice(EventKind::Loaded, (pid_tgid >> 32) as u32);
    if setting_u32(&PAUSE_ON_LOAD) == 1 && PAUSED.insert(pid_tgid as u32, (pid_tgid >> 32) as u32, 0).is_ok() {
        // SAFETY: a signal to the current thread, delivered on its way back to user space.
        unsafe { bpf_send_signal_thread(PAUSE_SIGNAL) };
    }
    0
}
