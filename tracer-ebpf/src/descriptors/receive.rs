//! Descriptors received from another process: SCM_RIGHTS and SCM_PIDFD
//! control messages, read back from the receiver's own msghdr (or mmsghdr
//! vector) at recvmsg's or recvmmsg's exit, when the kernel has installed the
//! descriptors, written their numbers and updated `msg_controllen`.
//!
//! The walk goes one control message per `bpf_loop` step, so that a vector
//! of many messages costs the verifier one step's code. Its state is the
//! calling thread's entry in a map: not on the BPF stack (the program's
//! stack budget), and not per CPU, since a syscall tracepoint's program can
//! be preempted on kernels whose syscall tracepoints may fault, and another
//! thread's call would then reuse the CPU's entry mid-walk.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_loop},
    macros::map,
    maps::{Array, HashMap},
};

use super::user;

/// Descriptors followed per call (more are counted as untraced).
pub const MAX_FDS: usize = 16;
/// Control messages and message headers looked at per call.
const STEPS: u32 = 1024;

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const SCM_PIDFD: i32 = 4;
/// `struct msghdr`: msg_control and msg_controllen.
const MSG_CONTROL: u64 = 32;
const MSG_CONTROLLEN: u64 = 40;
/// `struct mmsghdr`: a msghdr and its length, padded.
const MMSGHDR_SIZE: u64 = 64;
/// `struct cmsghdr`: cmsg_len (8 bytes), cmsg_level, cmsg_type.
const CMSG_HDR: u64 = 16;

/// The walk's state and what it found.
#[repr(C)]
pub struct Walk {
    first: u64,
    nmsg: u64,
    msg: u64,
    control: u64,
    len: u64,
    off: u64,
    pub n: u32,
    /// 0 when descriptors were left out (too many, or the walk ran out of steps).
    pub complete: u32,
    pub fds: [i32; MAX_FDS],
}

/// Per thread, created at its first receive and removed at its exit (`process_exit`).
#[map]
pub static RECEIVES: HashMap<u32, Walk> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// One zeroed entry, never written, that a thread's entry is created from.
#[map]
static BLANK_RECEIVE: Array<Walk> = Array::with_max_entries(1, 0);

/// bpf_loop's context: where the thread's state is.
#[repr(C)]
struct Ctx {
    walk: *mut Walk,
}

#[inline(always)]
fn thread_entry(tid: u32) -> Option<*mut Walk> {
    if let Some(w) = RECEIVES.get_ptr_mut(tid) {
        return Some(w);
    }
    // BPF_NOEXIST: only this thread creates its entry.
    RECEIVES.insert(tid, BLANK_RECEIVE.get(0)?, 1).ok()?;
    RECEIVES.get_ptr_mut(tid)
}

#[inline(always)]
fn load_message(w: &mut Walk) {
    let hdr = w.first + w.msg * MMSGHDR_SIZE;
    w.control = user(hdr + MSG_CONTROL);
    w.len = user(hdr + MSG_CONTROLLEN);
    w.off = 0;
}

/// The received descriptors of `nmsg` messages whose headers start at `first`
/// (a msghdr, or an mmsghdr vector: the msghdr is an mmsghdr's first member).
#[inline(always)]
pub fn collect(first: u64, nmsg: u64) -> Option<*const Walk> {
    let w = thread_entry(bpf_get_current_pid_tgid() as u32)?;
    // SAFETY: the thread's own entry: no other program writes it while this one runs.
    unsafe {
        (*w).first = first;
        (*w).nmsg = nmsg;
        (*w).msg = 0;
        (*w).n = 0;
        (*w).complete = 1;
        load_message(&mut *w);
        let mut ctx = Ctx { walk: w };
        let done = bpf_loop(STEPS, step as *mut c_void, (&raw mut ctx).cast(), 0);
        if done >= i64::from(STEPS) {
            (*w).complete = 0;
        }
    }
    Some(w)
}

/// bpf_loop's callback: one control message, or on to the next message.
unsafe extern "C" fn step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is collect's Ctx, on its stack, pointing at the thread's entry.
    let w = unsafe { (*(ctx as *const Ctx)).walk };
    if w.is_null() {
        return 1;
    }
    // SAFETY: as above.
    let w = unsafe { &mut *w };
    if w.off.wrapping_add(CMSG_HDR) > w.len {
        w.msg += 1;
        if w.msg >= w.nmsg {
            return 1;
        }
        load_message(w);
        return 0;
    }
    let at = w.control + w.off;
    let len: u64 = user(at);
    if len < CMSG_HDR {
        w.off = w.len; // malformed: on to the next message
        return 0;
    }
    let (level, kind): (i32, i32) = (user(at + 8), user(at + 12));
    if level == SOL_SOCKET && (kind == SCM_RIGHTS || kind == SCM_PIDFD) {
        let count = (len - CMSG_HDR) / 4;
        for i in 0..MAX_FDS as u64 {
            if i >= count {
                break;
            }
            let n = w.n as usize;
            if n >= MAX_FDS {
                w.complete = 0;
                break;
            }
            w.fds[n] = user(at + CMSG_HDR + 4 * i);
            w.n += 1;
        }
        if count > MAX_FDS as u64 {
            w.complete = 0;
        }
    }
    w.off = w.off.wrapping_add(len.wrapping_add(7) & !7);
    0
}
