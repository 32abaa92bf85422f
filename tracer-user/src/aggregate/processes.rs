//! Fork inheritance and per-process figures.
//!
//! A child forked without exec starts with a copy of its parent's
//! outstanding blocks and descriptors: each process is charged what it
//! still holds (as valgrind charges it), and its frees and closes of what it
//! inherited are known. The blocks are shared with the parent until one side
//! changes them (process_heap.rs); the descriptors are copied, a table of a
//! few dozen entries as the kernel copies it. libuv's handles stay the
//! parent's: a child of an event loop does not run it.
//!
//! The kernel reports a new thread as a fork too, and its record cannot
//! tell them apart: the copy waits in [`Forked`] until the child's first
//! record says which it is (a process's records carry its own tgid, a
//! thread's its parent's).

use std::collections::BTreeMap;

use super::{Aggregator, Forked, ProcHeap, ResourceKind};

/// What one process holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessTotals {
    pub pid: u32,
    /// Outstanding heap: (bytes, blocks).
    pub heap: (u64, u64),
    /// Outstanding descriptors by kind.
    pub handles: BTreeMap<ResourceKind, u64>,
}

impl Aggregator {
    /// `parent` forked `child` (a process, or a thread of its own): what the
    /// parent holds now, kept for the child.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let heap = self.allocs.get_mut(&parent).map(ProcHeap::fork);
        let fds = self.fds.range((parent, i32::MIN)..=(parent, i32::MAX)).map(|(k, h)| (k.1, *h)).collect();
        let own = self.own_fds.iter().filter(|k| k.0 == parent).map(|k| k.1).collect();
        let std = self.std_open.iter().filter(|k| k.0 == parent).map(|k| k.1).collect();
        self.forks.insert(child, Forked { heap, fds, own, std });
    }

    /// Before each record of thread `tid` of `tgid`: a forked child's first
    /// record says what it is. A process takes what it inherited (its heap
    /// not when that record is its exec, which replaces it); a thread, nothing.
    pub fn adopt(&mut self, tgid: u32, tid: u32, exec: bool) {
        if self.forks.is_empty() {
            return;
        }
        if let Some(f) = self.forks.remove(&tgid) {
            self.inherit(tgid, f, exec);
        } else if tid != tgid {
            self.forks.remove(&tid);
        }
    }

    /// At the end of a session: a child that made no record since its fork
    /// (attached mid-life, it idled until the end) takes what it inherited
    /// when `is_process` says it is a process that still lives; a thread's
    /// copy is dropped.
    pub fn adopt_silent(&mut self, is_process: impl Fn(u32) -> bool) {
        for (child, f) in std::mem::take(&mut self.forks) {
            if is_process(child) {
                self.inherit(child, f, false);
            }
        }
    }

    fn inherit(&mut self, child: u32, f: Forked, exec: bool) {
        for (fd, h) in f.fds {
            self.insert_fd(child, fd, h);
        }
        self.own_fds.extend(f.own.into_iter().map(|fd| (child, fd)));
        self.std_open.extend(f.std.into_iter().map(|fd| (child, fd)));
        let Some(heap) = f.heap.filter(|_| !exec) else { return };
        for (stack, (n, bytes)) in heap.per_stack() {
            let c = self.stacks.counters_mut(stack);
            c.acquired += n;
            c.outstanding += n;
            c.outstanding_bytes += bytes;
        }
        let (bytes, n) = heap.totals();
        self.heap.0 += bytes;
        self.heap.1 += n;
        self.allocs.insert(child, heap);
    }

    /// What each process holds (an ended one: what it held at its end), by pid.
    pub fn processes(&self) -> Vec<ProcessTotals> {
        let mut out: BTreeMap<u32, ProcessTotals> = BTreeMap::new();
        fn of(out: &mut BTreeMap<u32, ProcessTotals>, pid: u32) -> &mut ProcessTotals {
            out.entry(pid).or_insert_with(|| ProcessTotals { pid, ..ProcessTotals::default() })
        }
        for (&pid, &heap) in &self.settled {
            of(&mut out, pid).heap = heap;
        }
        for (&pid, t) in &self.allocs {
            of(&mut out, pid).heap = t.totals();
        }
        for (&(pid, _), h) in &self.fds {
            *of(&mut out, pid).handles.entry(ResourceKind::Fd(h.kind)).or_insert(0) += 1;
        }
        out.into_values().filter(|p| p.heap.1 > 0 || !p.handles.is_empty()).collect()
    }
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
