//! `attach`'s window: what is traced ends at a moment, releases after it
//! still apply to what was acquired before.

use tracer_common::decode::Body;

use super::{Aggregator, StackId};

impl Aggregator {
    /// Ends the window of what is traced at `end_ns` (`attach`, about to
    /// detach): later acquisitions are left out, later releases still apply.
    /// A handle a busy program opened just before the end and closes just
    /// after is then seen closed, not leaked, once the records of the next
    /// moments are in.
    pub fn close_window(&mut self, end_ns: u64) {
        self.window_end_ns = Some(end_ns);
    }

    /// A record after the window's end: releases of what was acquired before
    /// it; what it acquires (and releases of that) stays out, unknown as any.
    pub(super) fn apply_after_window(&mut self, tgid: u32, ts_ns: u64, body: &Body, stack: Option<StackId>) {
        let before = self.anomalies;
        match *body {
            Body::Alloc { .. } | Body::FdOpen { .. } | Body::FdName { .. } | Body::AllocFailed { .. } => {}
            Body::FdDup { new, old, .. } => {
                if new != old {
                    self.remove_fd(tgid, new);
                }
            }
            // A block moved by realloc is the same block: it keeps counting.
            Body::Realloc { old, .. } if old == 0 || self.allocs.get(&tgid).is_none_or(|m| m.get(old).is_none()) => {}
            _ => {
                let end = self.window_end_ns.take();
                self.apply(tgid, ts_ns, body, stack);
                self.window_end_ns = end;
            }
        }
        // Releases of what the window left out are no anomaly.
        (self.anomalies.unknown_frees, self.anomalies.unknown_closes) = (before.unknown_frees, before.unknown_closes);
    }
}
