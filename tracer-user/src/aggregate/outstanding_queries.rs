//! What the outstanding tables hold, for reports, scans and checks against /proc.

use std::collections::BTreeMap;

use tracer_common::FdKind;

use super::{Aggregator, ResourceKind, StackId};

impl Aggregator {
    /// Outstanding descriptors and libuv timers by kind.
    pub fn handle_totals(&self) -> BTreeMap<ResourceKind, u64> {
        let mut out = BTreeMap::new();
        for h in self.fds.values() {
            *out.entry(ResourceKind::Fd(h.kind)).or_insert(0) += 1;
        }
        if self.timers_outstanding > 0 {
            out.insert(ResourceKind::Timer, self.timers_outstanding);
        }
        out
    }

    /// Open descriptors of one process, by number (for checks against /proc).
    pub fn open_fds(&self, tgid: u32) -> Vec<(i32, FdKind)> {
        self.fds.range((tgid, i32::MIN)..=(tgid, i32::MAX)).map(|(k, h)| (k.1, h.kind)).collect()
    }

    /// The outstanding heap blocks of one process, (address, size) in
    /// address order, and the stack of each: 20 bytes a block, nothing more.
    pub fn outstanding_blocks(&self, tgid: u32) -> (Vec<(u64, u64)>, Vec<StackId>) {
        let Some(m) = self.allocs.get(&tgid) else { return (Vec::new(), Vec::new()) };
        let mut blocks: Vec<(u64, u64)> = m.iter().map(|(addr, a)| (addr, a.size)).collect();
        blocks.sort_unstable();
        let mut stacks = Vec::with_capacity(blocks.len());
        stacks.extend(blocks.iter().filter_map(|&(addr, _)| m.get(addr).map(|a| a.stack)));
        (blocks, stacks)
    }

    /// The outstanding descriptors of one process with the stack that opened each.
    pub fn outstanding_fds(&self, tgid: u32) -> Vec<(i32, StackId)> {
        self.fds.range((tgid, i32::MIN)..=(tgid, i32::MAX)).map(|(k, h)| (k.1, h.stack)).collect()
    }
}
