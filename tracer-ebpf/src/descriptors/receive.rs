//! Descriptors received from another process: SCM_RIGHTS and SCM_PIDFD
//! control messages, read back from the receiver's own msghdr (or mmsghdr
//! vector) at recvmsg's or recvmmsg's exit, when the kernel has installed the
//! descriptors, written their numbers and updated `msg_controllen`.
//!
//! The walk goes one control message per `bpf_loop` step, its state in a
//! per-CPU scratch record, so that a vector of many messages costs the
//! verifier one step's code.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_loop, macros::map, maps::PerCpuArray};

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

#[map]
static RECEIVE_WALK: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

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
    let w = RECEIVE_WALK.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch record; the program runs with preemption off.
    unsafe {
        *w = Walk { first, nmsg, msg: 0, control: 0, len: 0, off: 0, n: 0, complete: 1, fds: [-1; MAX_FDS] };
        load_message(&mut *w);
        let done = bpf_loop(STEPS, step as *mut c_void, core::ptr::null_mut(), 0);
        if done >= i64::from(STEPS) {
            (*w).complete = 0;
        }
    }
    Some(w)
}

/// bpf_loop's callback: one control message, or on to the next message.
unsafe extern "C" fn step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = RECEIVE_WALK.get_ptr_mut(0) else { return 1 };
    // SAFETY: this CPU's scratch record.
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
