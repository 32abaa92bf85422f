//! Host-side decoding of ring-buffer records, bounds-checked.

use std::string::String;
use std::vec::Vec;

use crate::fdkind::FdKind;
use crate::fdrecord::{self, OpenInfo, NO_PAIR};
use crate::kinds::{AllocFn, EventKind};
use crate::record::{HEADER_SIZE, MAX_FRAMES, SMALL_SIZE, STACK_COPY_WORDS, STACK_SIZE};
use crate::unwind::{ModuleKey, StopReason};
use crate::uv::{UvCall, UvFn, NO_FD};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Short { need: usize, got: usize },
    UnknownKind(u32),
    BadField(&'static str),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { need, got } => write!(f, "record too short: {got} bytes, need {need}"),
            Self::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            Self::BadField(what) => write!(f, "invalid field: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What the kernel captured of the user stack for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStack {
    /// Innermost first.
    pub frames: Vec<u64>,
    /// Bit i: `frames[i]` is an exact instruction address, not a return address.
    pub exact: u32,
    pub stop: StopReason,
    /// The registers of the last frame, where the kernel's walk stopped.
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// With [`StopReason::NoTable`]: the module whose table was missing.
    pub module: ModuleKey,
    /// Words of user stack from `sp` upward (only when the walk stopped where
    /// userspace can go on).
    pub copy: Vec<u64>,
}

impl RawStack {
    /// A complete stack of return addresses (tests, hand-made events).
    pub fn complete(frames: Vec<u64>) -> Self {
        Self { frames, exact: 0, stop: StopReason::End, pc: 0, sp: 0, bp: 0, module: ModuleKey::default(), copy: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Alloc {
        addr: u64,
        size: u64,
        func: AllocFn,
    },
    AllocFailed {
        size: u64,
        func: AllocFn,
    },
    Realloc {
        old: u64,
        new: u64,
        size: u64,
    },
    Free {
        addr: u64,
    },
    FdOpen {
        fd: i32,
        kind: FdKind,
        cloexec: bool,
        pair: Option<i32>,
        meta: FdMeta,
    },
    /// `file`: the tag of the file both numbers now refer to; `kind`: what it is.
    FdDup {
        new: i32,
        old: i32,
        cloexec: bool,
        file: u32,
        kind: FdKind,
    },
    /// `occupant`: the tag of the file at that number when close returned (0: none).
    FdClose {
        fd: i32,
        occupant: u32,
    },
    /// The dentry name of the file behind `fd`, just opened.
    FdName {
        fd: i32,
        name: String,
    },
    FdCloseRange {
        first: u32,
        last: u32,
        flags: u32,
    },
    FdSetCloexec {
        fd: i32,
        on: bool,
    },
    Exec,
    /// A thread or process ended; `sp`: its user stack pointer then.
    Exit {
        sp: u64,
    },
    Fork {
        child: u32,
    },
    Loaded,
    /// A libuv handle was initialised; `fd`: the descriptor its caller gave.
    UvInit {
        handle: u64,
        func: UvFn,
        fd: Option<i32>,
    },
    UvCall {
        func: UvFn,
        call: UvCall,
    },
}

/// What a new descriptor's record says besides its number and kind (see [`crate::fdrecord`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdMeta {
    /// Tags of the files behind the descriptor and its pair.
    pub file: u32,
    pub pair_file: u32,
    /// Received from another process over a Unix socket.
    pub received: bool,
    /// socket/socketpair's address family and type (0 otherwise).
    pub family: u16,
    pub socktype: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub tgid: u32,
    pub tid: u32,
    pub ts_ns: u64,
    pub body: Body,
    /// Present for kinds that carry a stack.
    pub stack: Option<RawStack>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]))
}

/// The descriptor number in the low half of a word (the high half may hold a file tag).
fn fd_of(v: u64, what: &'static str) -> Result<i32, DecodeError> {
    fdrecord::fd_of(v).ok_or(DecodeError::BadField(what))
}

fn fd_open(a: u64, b: u64, c: u64) -> Result<Body, DecodeError> {
    let info = OpenInfo::unpack(b);
    let (pair, pair_file) = if c == NO_PAIR { (None, 0) } else { (Some(fd_of(c, "pair fd")?), fdrecord::tag_of(c)) };
    Ok(Body::FdOpen {
        fd: fd_of(a, "fd")?,
        kind: FdKind::from_u32(info.kind),
        cloexec: info.cloexec,
        pair,
        meta: FdMeta { file: fdrecord::tag_of(a), pair_file, received: info.received, family: info.family, socktype: info.socktype },
    })
}

fn fd_name(a: u64, b: u64, c: u64) -> Result<Body, DecodeError> {
    let (bytes, len) = fdrecord::name_bytes([b, c]);
    Ok(Body::FdName { fd: fd_of(a, "fd")?, name: String::from_utf8_lossy(&bytes[..len]).into_owned() })
}

/// The stack part of a [`crate::StackEvent`] (and its copy, when one follows).
fn decode_stack(b: &[u8], nframes: u32) -> Result<RawStack, DecodeError> {
    let base = HEADER_SIZE;
    let reason = u32_at(b, base);
    let stop = StopReason::from_u32(reason).ok_or(DecodeError::BadField("stop reason"))?;
    let module = ModuleKey { dev: u64_at(b, base + 32), ino: u64_at(b, base + 40) };
    let copy_words = (u32_at(b, base + 48) as usize).min(STACK_COPY_WORDS);
    let frames_off = base + 56;
    let copy_off = frames_off + 8 * MAX_FRAMES;
    let n = (nframes as usize).min(MAX_FRAMES);
    // Without a copy, the frames not taken may be left out (the in-process
    // recorder's records end after the last frame).
    let need = if copy_words == 0 { frames_off + 8 * n } else { copy_off + 8 * copy_words };
    if b.len() < need {
        return Err(DecodeError::Short { need, got: b.len() });
    }
    Ok(RawStack {
        frames: (0..n).map(|i| u64_at(b, frames_off + 8 * i)).collect(),
        exact: u32_at(b, base + 4),
        stop,
        pc: u64_at(b, base + 8),
        sp: u64_at(b, base + 16),
        bp: u64_at(b, base + 24),
        module,
        copy: (0..copy_words).map(|i| u64_at(b, copy_off + 8 * i)).collect(),
    })
}

impl TryFrom<&[u8]> for Event {
    type Error = DecodeError;

    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        if b.len() < HEADER_SIZE {
            return Err(DecodeError::Short { need: HEADER_SIZE, got: b.len() });
        }
        let kind_raw = u32_at(b, 0);
        let kind = EventKind::from_u32(kind_raw).ok_or(DecodeError::UnknownKind(kind_raw))?;
        // A stack record is at least its header and stop; decode_stack checks the rest.
        let need = if kind.has_stack() { STACK_SIZE - 8 * MAX_FRAMES } else { SMALL_SIZE };
        if b.len() < need {
            return Err(DecodeError::Short { need, got: b.len() });
        }
        let (tgid, tid, nframes, ts_ns) = (u32_at(b, 4), u32_at(b, 8), u32_at(b, 12), u64_at(b, 16));
        let (a, bb, c) = (u64_at(b, 24), u64_at(b, 32), u64_at(b, 40));
        let alloc_fn = |v: u64| AllocFn::from_u32(v as u32).ok_or(DecodeError::BadField("alloc fn"));
        let uv_fn = |v: u64| UvFn::from_u32(v as u32).ok_or(DecodeError::BadField("uv fn"));
        let body = match kind {
            EventKind::Alloc => Body::Alloc { addr: a, size: bb, func: alloc_fn(c)? },
            EventKind::AllocFailed => Body::AllocFailed { size: bb, func: alloc_fn(c)? },
            EventKind::Realloc => Body::Realloc { old: c, new: a, size: bb },
            EventKind::Free => Body::Free { addr: a },
            EventKind::FdOpen => fd_open(a, bb, c)?,
            EventKind::FdDup => Body::FdDup {
                new: fd_of(a, "new fd")?,
                old: fd_of(bb, "old fd")?,
                cloexec: c & 1 == 1,
                file: fdrecord::tag_of(a),
                kind: FdKind::from_u32(((c >> 8) & 0xff) as u32),
            },
            EventKind::FdClose => Body::FdClose { fd: fd_of(a, "fd")?, occupant: fdrecord::tag_of(a) },
            EventKind::FdName => fd_name(a, bb, c)?,
            EventKind::FdCloseRange => Body::FdCloseRange { first: a as u32, last: bb.min(u32::MAX as u64) as u32, flags: c as u32 },
            EventKind::FdSetCloexec => Body::FdSetCloexec { fd: fd_of(a, "fd")?, on: bb == 1 },
            EventKind::Exec => Body::Exec,
            EventKind::Exit => Body::Exit { sp: a },
            EventKind::Fork => Body::Fork { child: a as u32 },
            EventKind::Loaded => Body::Loaded,
            EventKind::UvInit => Body::UvInit { handle: a, func: uv_fn(c)?, fd: (bb != NO_FD).then_some(bb as i32) },
            EventKind::UvCall => {
                let func = uv_fn(c)?;
                Body::UvCall { func, call: UvCall::of(func, a, bb).ok_or(DecodeError::BadField("uv call"))? }
            }
        };
        let stack = if kind.has_stack() { Some(decode_stack(b, nframes)?) } else { None };
        Ok(Event { tgid, tid, ts_ns, body, stack })
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
