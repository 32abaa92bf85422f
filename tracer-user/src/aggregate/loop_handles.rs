//! The event loops' state the aggregator keeps (event_loop.rs applies
//! libuv's records to it): each handle's kind and creation stack, and the
//! calls and accepted connections that may still become a handle's.

use std::collections::HashMap;

use tracer_common::uv::UvHandle;

use super::StackId;

/// Calls remembered per thread that may still be making a descriptor.
const RECENT_CALLS: usize = 8;

#[derive(Default)]
pub(super) struct EventLoops {
    pub(super) handles: HashMap<(u32, u64), LoopHandle>,
    /// Per thread, newest last: (the caller's return address, handle) of
    /// calls that may make the handle's descriptor.
    pub(super) calls: HashMap<u32, Vec<(u64, u64)>>,
    /// Per thread: the connection it accepted last, not yet a handle's.
    pub(super) accepted: HashMap<u32, i32>,
}

#[derive(Clone, Copy)]
pub(super) struct LoopHandle {
    pub(super) kind: UvHandle,
    pub(super) created: StackId,
}

impl EventLoops {
    pub(super) fn note_call(&mut self, tid: u32, ret: u64, handle: u64) {
        let calls = self.calls.entry(tid).or_default();
        if calls.len() == RECENT_CALLS {
            calls.remove(0);
        }
        calls.push((ret, handle));
    }

    /// The handle of the call `frames` (a new descriptor's stack) is inside.
    pub(super) fn caller_of(&self, tid: u32, frames: &[u64]) -> Option<u64> {
        let calls = self.calls.get(&tid)?;
        calls.iter().rev().find(|(ret, _)| frames.iter().skip(1).any(|f| f == ret)).map(|&(_, h)| h)
    }
}
