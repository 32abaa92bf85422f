//! Process lifecycle: exec (close-on-exec descriptors go, the heap is new),
//! thread and process exit (with the thread's stack pointer), and forks
//! when children are followed.

use aya_ebpf::{
    bindings::{pt_regs, BPF_RB_FORCE_WAKEUP},
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task_btf, generated::bpf_task_pt_regs},
    macros::{map, raw_tracepoint, tracepoint},
    maps::RingBuf,
    programs::{RawTracePointContext, TracePointContext},
};
use tracer_common::{Counter, EventKind};

use crate::capture::emit_small;
use crate::descriptors::RECEIVES;
use crate::maps::{count, follow_forks, fork_child_pid_offset, setting_u32, traced, PENDING, TARGETS};
use crate::walk::WALKS;

/// `attach` only (leaktrace does not ptrace an attached process): forks,
/// execs, exits and the dynamic linker's new objects (loaded.rs) of traced
/// processes as `EventKind | pid << 32`, each waking
/// leaktrace at once, so it can put allocator probes on a new process or a
/// new image, or take them off. Rare events: the wake-up costs nothing that counts.
#[map]
static NOTICES: RingBuf = RingBuf::with_byte_size(64 << 10, 0);

/// 1 when leaktrace reads NOTICES. Set by userspace at load.
#[unsafe(no_mangle)]
static NOTICE_LIFECYCLE: u32 = 0;

#[inline(always)]
pub(crate) fn notice(kind: EventKind, pid: u32) {
    if setting_u32(&NOTICE_LIFECYCLE) == 0 {
        return;
    }
    let record = u64::from(kind as u32) | u64::from(pid) << 32;
    if NOTICES.output::<u64>(record, BPF_RB_FORCE_WAKEUP as u64).is_err() {
        count(Counter::LostProcess);
    }
}

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn process_exec(_ctx: RawTracePointContext) -> u32 {
    if let Some(pid_tgid) = traced() {
        emit_small(EventKind::Exec, pid_tgid, 0, 0, 0, Counter::LostProcess);
        notice(EventKind::Exec, (pid_tgid >> 32) as u32);
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn process_exit(_ctx: RawTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // SAFETY: only tested for presence.
    if unsafe { TARGETS.get(tgid) }.is_none() {
        return 0;
    }
    let _ = PENDING.remove(tid);
    let _ = WALKS.remove(tid);
    let _ = RECEIVES.remove(tid);
    // SAFETY: the current task's saved user registers, a BTF-typed pointer
    // whose fields the verifier lets us load (a fault reads 0).
    let sp = unsafe { (*(bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs)).rsp };
    // Where the thread's stack pointer was: glibc keeps an ended thread's
    // stack for the next, and the reachability scan reads it from there up.
    emit_small(EventKind::Exit, pid_tgid, sp, 0, 0, Counter::LostProcess);
    if tid == tgid {
        notice(EventKind::Exit, tgid);
    }
    if follow_forks() && tid == tgid {
        let _ = TARGETS.remove(tgid);
    } else if tid != tgid {
        // With follow-forks a new thread's tid was added at clone: drop it.
        let _ = TARGETS.remove(tid);
    }
    0
}

/// sched:sched_process_fork, attached only with follow-forks. Fires in the
/// parent before the child first runs, so the child is traced from its start.
#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    let Some(pid_tgid) = traced() else { return 0 };
    // SAFETY: the offset comes from the tracepoint's format in tracefs.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(fork_child_pid_offset()) }) else { return 1 };
    let child = child as u32;
    // A new thread gets its tid added too (the record cannot tell); it is removed at its exit.
    if TARGETS.insert(child, 1, 0).is_err() {
        count(Counter::TargetsFull);
    }
    emit_small(EventKind::Fork, pid_tgid, child as u64, 0, 0, Counter::LostProcess);
    notice(EventKind::Fork, child);
    0
}
