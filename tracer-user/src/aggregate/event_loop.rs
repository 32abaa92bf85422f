//! libuv handles (see `tracer_common::uv`): where each was created, which
//! descriptor it holds, and timers as a kind of their own.
//!
//! A descriptor becomes a handle's when the caller gives it (`uv_tcp_open`,
//! `uv_poll_init`), when it is made inside a call on the handle (a bind, a
//! connect: its stack holds the return address of that call), or when the
//! loop accepted it for the server a `uv_accept` names (the last connection
//! the thread accepted: libuv accepts one, then runs the callback that
//! takes it). The descriptor then moves to a stack of its own, the same
//! frames with the handle's creation stack as [`Origin`], which the report
//! names the site from when the descriptor's own stack does not reach the
//! user's code.
//!
//! A timer is outstanding from `uv_timer_init` to `uv_close`: libuv's rule
//! for every handle, and what a timer never stopped or closed breaks.

use tracer_common::decode::Body;
use tracer_common::uv::{Shape, UvCall, UvFn, UvHandle};
use tracer_common::FdKind;

use super::super::stacks::Origin;
use super::loop_handles::LoopHandle;
use super::{Aggregator, ResourceKind, StackId};

/// The kind a handle's creation stack is interned with: a timer's is the
/// timer's own; another handle's counts nothing and takes the kind of the
/// descriptor it will hold.
pub fn creation_kind(func: UvFn) -> ResourceKind {
    let Shape::Init { kind, .. } = func.shape() else { return ResourceKind::Fd(FdKind::Other) };
    match kind {
        UvHandle::Timer => ResourceKind::Timer,
        UvHandle::Tty => ResourceKind::Fd(FdKind::File),
        UvHandle::FsEvent => ResourceKind::Fd(FdKind::Inotify),
        UvHandle::Signal => ResourceKind::Fd(FdKind::Pipe),
        UvHandle::Tcp | UvHandle::Udp | UvHandle::Pipe | UvHandle::Poll => ResourceKind::Fd(FdKind::Socket),
    }
}

/// Whether a handle of `handle` kind holds a descriptor of `fd` kind: a
/// loop's own descriptors made inside a handle's first call (the reserve
/// descriptor of the first stream, the signal pipe) are not its.
fn holds(handle: UvHandle, fd: FdKind) -> bool {
    match handle {
        UvHandle::Tcp | UvHandle::Udp | UvHandle::Pipe | UvHandle::Poll => fd == FdKind::Socket,
        UvHandle::Tty => fd == FdKind::File,
        UvHandle::FsEvent | UvHandle::Signal | UvHandle::Timer => false,
    }
}

impl Aggregator {
    /// The libuv side of an event of thread `tid`, once [`Self::apply`] has applied it.
    pub fn apply_event_loop(&mut self, tgid: u32, tid: u32, ts_ns: u64, body: &Body, stack: Option<StackId>) {
        let after_window = self.window_end_ns.is_some_and(|end| ts_ns > end);
        match *body {
            Body::UvInit { handle, func, fd } if !after_window => {
                let (Some(created), Shape::Init { kind, .. }) = (stack, func.shape()) else { return };
                // Its memory held a handle nobody closed: that one is over.
                self.end_handle(tgid, handle, true);
                if kind == UvHandle::Timer {
                    let c = self.stacks.counters_mut(created);
                    c.acquired += 1;
                    c.outstanding += 1;
                    self.timers_outstanding += 1;
                }
                self.event_loops.handles.insert((tgid, handle), LoopHandle { kind, created });
                // The init's caller: a descriptor made inside (uv_tcp_init_ex) is the handle's.
                if let Some(&ret) = self.stacks.get(created).frames.get(1) {
                    self.event_loops.note_call(tid, ret, handle);
                }
                if let Some(fd) = fd {
                    self.bind(tgid, fd, handle, None);
                }
            }
            Body::UvCall { call, .. } => match call {
                UvCall::Within { handle, ret } => self.event_loops.note_call(tid, ret, handle),
                UvCall::Open { handle, fd } => self.bind(tgid, fd, handle, None),
                UvCall::Accept { server, client } => {
                    if let Some(fd) = self.event_loops.accepted.remove(&tid) {
                        self.bind(tgid, fd, client, Some(server));
                    }
                }
                UvCall::Close { handle } => self.end_handle(tgid, handle, true),
            },
            Body::FdOpen { fd, kind, meta, .. } if !after_window => {
                let Some(stack) = stack else { return };
                let handle = self.event_loops.caller_of(tid, &self.stacks.get(stack).frames);
                if let Some(h) = handle.filter(|h| self.event_loops.handles.get(&(tgid, *h)).is_some_and(|h| holds(h.kind, kind))) {
                    self.bind(tgid, fd, h, None);
                } else if kind == FdKind::Socket && meta.family == 0 && !meta.received {
                    // accept's (socket and socketpair say their family).
                    self.event_loops.accepted.insert(tid, fd);
                }
            }
            Body::Exec => {
                // The old image's handles are gone with it, as its heap is: not released, not leaked.
                let gone: Vec<u64> = self.event_loops.handles.keys().filter(|k| k.0 == tgid).map(|k| k.1).collect();
                gone.into_iter().for_each(|h| self.end_handle(tgid, h, false));
                self.forget_thread(tid);
            }
            Body::Exit { .. } => self.forget_thread(tid),
            _ => {}
        }
    }

    fn forget_thread(&mut self, tid: u32) {
        self.event_loops.calls.remove(&tid);
        self.event_loops.accepted.remove(&tid);
    }

    /// The handle at `handle` is over: closed (`released`), or gone with its image.
    fn end_handle(&mut self, tgid: u32, handle: u64, released: bool) {
        let Some(h) = self.event_loops.handles.remove(&(tgid, handle)) else { return };
        if h.kind == UvHandle::Timer {
            let c = self.stacks.counters_mut(h.created);
            c.outstanding -= 1;
            c.released += u64::from(released);
            self.timers_outstanding -= 1;
        }
    }

    /// Descriptor `fd` is now `handle`'s (an accepted one's server: `server`).
    fn bind(&mut self, tgid: u32, fd: i32, handle: u64, server: Option<u64>) {
        let Some(h) = self.event_loops.handles.get(&(tgid, handle)) else { return };
        let server = server.and_then(|s| self.event_loops.handles.get(&(tgid, s))).map(|s| s.created);
        let origin = Origin { created: h.created, server };
        let Some(from) = self.fds.get(&(tgid, fd)).map(|d| d.stack) else { return };
        if self.stacks.get(from).origin == Some(origin) {
            return;
        }
        let to = self.stacks.with_origin(from, origin);
        let c = self.stacks.counters_mut(from);
        c.acquired -= 1;
        c.outstanding -= 1;
        let c = self.stacks.counters_mut(to);
        c.acquired += 1;
        c.outstanding += 1;
        self.details.copy(from, to);
        if let Some(d) = self.fds.get_mut(&(tgid, fd)) {
            d.stack = to;
        }
    }
}
