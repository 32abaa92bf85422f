//! The outstanding tables and every path that releases from them.

use std::collections::{BTreeMap, HashMap, HashSet};

use tracer_common::decode::{Body, FdMeta};
use tracer_common::FdKind;

use super::blocks::{ns_of, older, ts_of, Allocation};
use super::details::{self, Details, FdDetail};
use super::process_heap::{each_held, ProcHeap};
use super::stacks::{StackCounters, StackId, StackTable};
use super::ResourceKind;

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
const TARGET_RESERVE: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
pub(super) struct Handle {
    stack: StackId,
    kind: FdKind,
    ts_ns: u64,
    cloexec: bool,
    /// The kernel's tag of the file behind it (0: unknown).
    file: u32,
}

/// What a child forked from its parent, until it is known to be a process.
pub(super) struct Forked {
    heap: Option<ProcHeap>,
    fds: Vec<(i32, Handle)>,
    /// leaktrace's own files among them.
    own: Vec<i32>,
    /// Standard streams the parent made (followed only with --track-std-fds).
    std: Vec<i32>,
}

/// Things seen that are not leaks but say something about the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Anomalies {
    /// free() of an address allocated before tracing began (or by an untraced path).
    pub unknown_frees: u64,
    /// close() of a descriptor opened before tracing began.
    pub unknown_closes: u64,
    /// Allocations that returned NULL (never outstanding).
    pub failed_allocations: u64,
    /// An address handed out again while still outstanding: its free was missed.
    pub reused_addresses: u64,
    /// A descriptor number handed out again while still outstanding: its close was missed.
    pub reused_descriptors: u64,
}

/// One descriptor of an FdOpen record.
#[derive(Clone, Copy)]
struct NewFd {
    fd: i32,
    file: u32,
}

/// Per-stack figures for reports and the TUI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackSummary {
    pub stack: StackId,
    pub kind: ResourceKind,
    pub counters: StackCounters,
    /// Acquisition time of the oldest outstanding item, if any.
    pub oldest_ns: Option<u64>,
    /// Names, socket families, received: for descriptors.
    pub detail: Option<FdDetail>,
}

#[derive(Default)]
pub struct Aggregator {
    pub stacks: StackTable,
    /// Outstanding heap per process, by address (a forked child's shares its parent's, see process_heap.rs).
    allocs: HashMap<u32, ProcHeap>,
    fds: BTreeMap<(u32, i32), Handle>,
    anomalies: Anomalies,
    exited: HashSet<u32>,
    /// The oldest outstanding block's time ([`ts_of`]) per stack, of the address
    /// tables folded once their processes ended ([`Self::settle_exited`]).
    settled_oldest: HashMap<StackId, u32>,
    /// Outstanding heap (bytes, allocations), kept as the tables change.
    heap: (u64, u64),
    details: Details,
    /// Numbers handed out again while outstanding, whose close has not come
    /// yet: a close in flight in another thread when the new one was recorded.
    replaced: HashMap<(u32, i32), u32>,
    /// `attach`'s end: nothing acquired after this time counts (see [`Self::close_window`]).
    window_end_ns: Option<u64>,
    /// leaktrace's own files, opened in the process by the dynamic linker or
    /// the recorder (never the program's): their closes are not counted.
    own_fds: HashSet<(u32, i32)>,
    /// libuv's handles (see event_loop.rs).
    event_loops: loop_handles::EventLoops,
    timers_outstanding: u64,
    /// Descriptors 0, 1 and 2 are followed like any other (`--track-std-fds`).
    track_std: bool,
    /// Else, those the program made (whose close is no anomaly).
    std_open: HashSet<(u32, i32)>,
    /// Children forked, until their first record says whether they are processes (see processes.rs).
    forks: HashMap<u32, Forked>,
    /// Outstanding heap (bytes, blocks) of each process whose table was dropped at its end.
    settled: HashMap<u32, (u64, u64)>,
}

/// The names of leaktrace's memfds (the recorder library, the shared file).
const LEAKTRACE_FILES: &str = "memfd:leaktrace-";

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether descriptors 0, 1 and 2 are followed. By default they are
    /// not, however they came to be open (inherited, or a dup2 or open that
    /// landed on one): they are the process's standard streams, which it
    /// keeps until its end, and valgrind never lists them either (but under
    /// --track-fds=all). Inherited ones never are: no call site made them.
    pub fn track_std_fds(&mut self, on: bool) {
        self.track_std = on;
    }

    /// Applies one event of process `tgid`. `stack` is the interned stack for
    /// kinds that carry one (allocation, new descriptor), interned with the kind
    /// the event creates (for a dup, the kind the kernel read from the file).
    pub fn apply(&mut self, tgid: u32, ts_ns: u64, body: &Body, stack: Option<StackId>) {
        if self.window_end_ns.is_some_and(|end| ts_ns > end) {
            self.apply_after_window(tgid, ts_ns, body, stack);
            return;
        }
        match *body {
            Body::Alloc { addr, size, .. } => {
                if let Some(stack) = stack {
                    self.insert_alloc(tgid, addr, Allocation { stack, size, ts: ts_of(ts_ns) });
                }
            }
            Body::Realloc { old, new, size } => {
                if old != 0 {
                    self.release_alloc(tgid, old);
                }
                if let Some(stack) = stack {
                    self.insert_alloc(tgid, new, Allocation { stack, size, ts: ts_of(ts_ns) });
                }
            }
            Body::Free { addr } => self.release_alloc(tgid, addr),
            Body::AllocFailed { .. } => self.anomalies.failed_allocations += 1,
            Body::FdOpen { fd, kind, cloexec, pair, meta } => {
                if let Some(stack) = stack {
                    self.open(tgid, stack, kind, cloexec, ts_ns, fd, pair, &meta);
                }
            }
            Body::FdDup { new, old, cloexec, file, kind } => {
                if new == old {
                    return; // dup2(fd, fd): nothing changes
                }
                // dup2/dup3 onto an open descriptor closes it first.
                self.remove_fd(tgid, new);
                if let Some(stack) = stack {
                    self.insert_fd(tgid, new, Handle { stack, kind, ts_ns, cloexec, file });
                }
            }
            Body::FdClose { fd, occupant } => self.close(tgid, fd, occupant),
            Body::FdName { fd, ref name } if name.starts_with(LEAKTRACE_FILES) => self.forget_own(tgid, fd),
            Body::FdName { fd, ref name } => {
                if let Some(h) = self.fds.get(&(tgid, fd)) {
                    self.details.note(h.stack, name.clone());
                }
            }
            Body::FdCloseRange { first, last, flags } => {
                let (lo, hi) = (first.min(i32::MAX as u32) as i32, last.min(i32::MAX as u32) as i32);
                let keys: Vec<(u32, i32)> = self.fds.range((tgid, lo)..=(tgid, hi)).map(|(k, _)| *k).collect();
                for k in keys {
                    if flags & CLOSE_RANGE_CLOEXEC != 0 {
                        if let Some(h) = self.fds.get_mut(&k) {
                            h.cloexec = true;
                        }
                    } else {
                        self.remove_fd(k.0, k.1);
                    }
                }
            }
            Body::FdSetCloexec { fd, on } => {
                if let Some(h) = self.fds.get_mut(&(tgid, fd)) {
                    h.cloexec = on;
                }
            }
            Body::Exec => self.exec(tgid),
            Body::Exit { .. } | Body::Fork { .. } | Body::Loaded | Body::UvInit { .. } | Body::UvCall { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(&mut self, tgid: u32, stack: StackId, kind: FdKind, cloexec: bool, ts_ns: u64, fd: i32, pair: Option<i32>, meta: &FdMeta) {
        if meta.received {
            self.details.mark_received(stack);
        }
        if meta.family != 0 {
            self.details.note(stack, details::socket(meta.family, meta.socktype));
        }
        let first = NewFd { fd, file: meta.file };
        let second = pair.map(|fd| NewFd { fd, file: meta.pair_file });
        for n in std::iter::once(first).chain(second) {
            self.insert_fd(tgid, n.fd, Handle { stack, kind, ts_ns, cloexec, file: n.file });
        }
    }

    /// A close, recorded when it returned. If another thread has meanwhile
    /// been given the same number and its record came first, the number's
    /// holder (`occupant`) is that new file: the close was of the one it
    /// replaced. A close of a number nobody holds may be such a close too,
    /// once the new one is gone as well.
    fn close(&mut self, tgid: u32, fd: i32, occupant: u32) {
        if self.own_fds.remove(&(tgid, fd)) || self.std_open.remove(&(tgid, fd)) {
            return;
        }
        let of_new_holder = occupant != 0 && self.fds.get(&(tgid, fd)).is_some_and(|h| h.file == occupant);
        if !of_new_holder && self.remove_fd(tgid, fd) {
            return;
        }
        match self.replaced.get_mut(&(tgid, fd)) {
            Some(n) => {
                // The reuse took the old one out and counted a missed close: it was not missed.
                self.anomalies.reused_descriptors = self.anomalies.reused_descriptors.saturating_sub(1);
                *n -= 1;
                if *n == 0 {
                    self.replaced.remove(&(tgid, fd));
                }
            }
            None if of_new_holder => {}
            None => self.anomalies.unknown_closes += 1,
        }
    }

    /// The process has exited: what it still holds is leaked at exit.
    pub fn mark_exited(&mut self, tgid: u32) {
        self.exited.insert(tgid);
    }

    /// Drops the address tables of ended processes, keeping of each block
    /// only its stack's oldest time: nothing of theirs is freed any more, and
    /// the counters per stack already hold what is outstanding. Their memory
    /// (tens of MiB for a million blocks) is given back before the final
    /// report symbolizes. Call once every record is ingested and scans are done.
    pub fn settle_exited(&mut self) {
        let ended: Vec<u32> = self.allocs.keys().filter(|p| self.exited.contains(p)).copied().collect();
        let tables: Vec<(u32, ProcHeap)> = ended.iter().filter_map(|p| self.allocs.remove(p).map(|t| (*p, t))).collect();
        each_held(&tables.iter().map(|(_, t)| t).collect::<Vec<_>>(), |a| {
            let ts = self.settled_oldest.entry(a.stack).or_insert(a.ts);
            if older(a.ts, *ts) {
                *ts = a.ts;
            }
        });
        self.settled.extend(tables.iter().map(|(pid, t)| (*pid, t.totals())));
    }

    pub fn has_exited(&self, tgid: u32) -> bool {
        self.exited.contains(&tgid)
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// Outstanding heap: (bytes, allocations).
    pub fn heap_totals(&self) -> (u64, u64) {
        self.heap
    }

    /// One summary per stack that has ever acquired something; ages relative to `now_ns`.
    pub fn summaries(&self, now_ns: u64) -> Vec<StackSummary> {
        let mut oldest: HashMap<StackId, u64> = HashMap::new();
        let mut note = |stack: StackId, ts: u64| {
            oldest.entry(stack).and_modify(|o| *o = (*o).min(ts)).or_insert(ts);
        };
        each_held(&self.allocs.values().collect::<Vec<_>>(), |a| note(a.stack, ns_of(a.ts, now_ns)));
        self.settled_oldest.iter().for_each(|(&stack, &ts)| note(stack, ns_of(ts, now_ns)));
        self.fds.values().for_each(|h| note(h.stack, h.ts_ns));
        self.stacks
            .iter()
            .map(|(id, e)| StackSummary {
                stack: id,
                kind: e.kind,
                counters: e.counters,
                oldest_ns: oldest.get(&id).copied(),
                detail: self.details.get(id).cloned(),
            })
            .collect()
    }

    fn insert_alloc(&mut self, tgid: u32, addr: u64, a: Allocation) {
        let first = self.allocs.is_empty();
        let table = self
            .allocs
            .entry(tgid)
            // The first process is the target: room for a million outstanding up
            // front, so growing never holds two tables at once (untouched room
            // costs no memory).
            .or_insert_with(|| ProcHeap::with_capacity(if first { TARGET_RESERVE } else { 0 }));
        if let Some(missed) = table.insert(addr, a) {
            self.anomalies.reused_addresses += 1;
            self.released(missed);
        }
        let c = self.stacks.counters_mut(a.stack);
        c.acquired += 1;
        c.outstanding += 1;
        c.outstanding_bytes += a.size;
        self.heap.0 += a.size;
        self.heap.1 += 1;
    }

    fn release_alloc(&mut self, tgid: u32, addr: u64) {
        match self.allocs.get_mut(&tgid).and_then(|m| m.remove(addr)) {
            Some(a) => self.released(a),
            None => self.anomalies.unknown_frees += 1,
        }
    }

    /// A block is no longer outstanding.
    fn released(&mut self, a: Allocation) {
        let c = self.stacks.counters_mut(a.stack);
        c.released += 1;
        c.outstanding -= 1;
        c.outstanding_bytes -= a.size;
        self.heap.0 -= a.size;
        self.heap.1 -= 1;
    }

    pub(super) fn insert_fd(&mut self, tgid: u32, fd: i32, h: Handle) {
        if !self.track_std && (0..=2).contains(&fd) {
            self.std_open.insert((tgid, fd));
            return;
        }
        if self.fds.contains_key(&(tgid, fd)) {
            self.anomalies.reused_descriptors += 1;
            *self.replaced.entry((tgid, fd)).or_insert(0) += 1;
            self.remove_fd(tgid, fd);
        }
        let c = self.stacks.counters_mut(h.stack);
        c.acquired += 1;
        c.outstanding += 1;
        self.fds.insert((tgid, fd), h);
    }

    /// A descriptor of leaktrace's own files: as if never opened.
    fn forget_own(&mut self, tgid: u32, fd: i32) {
        let Some(h) = self.fds.remove(&(tgid, fd)) else { return };
        let c = self.stacks.counters_mut(h.stack);
        c.acquired -= 1;
        c.outstanding -= 1;
        self.own_fds.insert((tgid, fd));
    }

    fn remove_fd(&mut self, tgid: u32, fd: i32) -> bool {
        self.std_open.remove(&(tgid, fd));
        let Some(h) = self.fds.remove(&(tgid, fd)) else { return false };
        let c = self.stacks.counters_mut(h.stack);
        c.released += 1;
        c.outstanding -= 1;
        true
    }

    /// A new image: the old heap is gone (not leaked), close-on-exec descriptors close.
    fn exec(&mut self, tgid: u32) {
        if let Some(view) = self.allocs.remove(&tgid) {
            for (stack, (n, bytes)) in view.per_stack() {
                let c = self.stacks.counters_mut(stack);
                c.outstanding -= n;
                c.outstanding_bytes -= bytes;
            }
            let (bytes, n) = view.totals();
            self.heap.0 -= bytes;
            self.heap.1 -= n;
        }
        let cloexec: Vec<i32> = self.fds.range((tgid, i32::MIN)..=(tgid, i32::MAX)).filter(|(_, h)| h.cloexec).map(|(k, _)| k.1).collect();
        for fd in cloexec {
            self.remove_fd(tgid, fd);
        }
    }
}

#[path = "outstanding_window.rs"]
mod window;

#[path = "outstanding_queries.rs"]
mod queries;

#[path = "loop_handles.rs"]
mod loop_handles;

#[path = "event_loop.rs"]
mod event_loop;
pub use event_loop::creation_kind;

#[path = "processes.rs"]
mod processes;
pub use processes::ProcessTotals;

#[cfg(test)]
#[path = "outstanding_tests.rs"]
mod tests;
