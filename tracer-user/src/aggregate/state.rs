//! Everything the event pipeline has learnt: the outstanding tables, the
//! process images stacks belong to, and what went wrong on the way. Reports
//! read it through a [`Snapshot`], taken under the pipeline's lock in time
//! proportional to what changed; symbolizing happens outside that lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tracer_common::decode::Body;

use super::ended_threads::EndedThreads;
use super::{Aggregator, Anomalies, Origin, ProcessTotals, ResourceKind, StackEnd, StackId, StackSummary};
use crate::inprocess::RecorderStats;
use crate::reach::ScanResult;
use crate::symbolize::ProcessMaps;

/// One address space: a process between two execs.
pub struct Image {
    pub pid: u32,
    /// Replaced (copy on write) when a later capture adds mappings, so a
    /// snapshot can hold it while the pipeline goes on.
    pub maps: Arc<ProcessMaps>,
    /// Addresses still outside every mapping after a fresh capture (JIT code,
    /// unmapped): each costs one re-read of /proc, not one per event.
    pub uncovered: HashSet<u64>,
}

#[derive(Default)]
pub struct State {
    pub agg: Aggregator,
    images: Vec<Image>,
    /// The current image of each process.
    current: HashMap<u32, u32>,
    /// Maps of a forked child's first image (its parent's, until it execs),
    /// until it has one; dropped at its exit (threads are reported as forks too).
    forked: HashMap<u32, Arc<ProcessMaps>>,
    /// Processes `run` forked that have not exec'd the command yet: what they
    /// do until then (closing leaktrace's own pipes) is leaktrace's, not theirs.
    spawning: HashSet<u32>,
    /// Processes traced since their exec: every block of their heap is known.
    since_exec: HashSet<u32>,
    pub events: u64,
    /// The dynamic linker's announcements of new objects (`_dl_debug_state`).
    pub object_loads: u64,
    pub decode_errors: u64,
    /// Events whose stack ends early (not at the outermost frame, not by --stack-depth).
    pub truncated_stacks: u64,
    /// The in-process recorders' counts (all zero without them).
    pub recorders: RecorderStats,
    warnings: Vec<String>,
    /// What was not measured, and why: a report with any is incomplete.
    untraced: Vec<String>,
    /// The last reachability scan of each process.
    scans: HashMap<u32, Arc<ScanResult>>,
    /// Where each process's ended threads left their stacks, for its scan.
    ended_threads: EndedThreads,
    /// A process's heap is probed on a glibc whose thread-exit cache release
    /// cannot be (no debug symbols): unknown frees may be that.
    pub thread_cache_unprobed: bool,
}

/// Said with unknown frees when glibc's thread-exit release is not probed.
const THREAD_CACHE: &str = "glibc frees each exiting thread's cache, and the blocks cached in it, past what the allocator's probes see: \
     without glibc's debug symbols (Debian: libc6-dbg) those frees count as unknown_frees (--heap-probes inprocess does not see them)";

/// A stack as the report needs it to name its frames.
#[derive(Debug, Clone)]
pub struct StackInfo {
    pub id: StackId,
    pub kind: ResourceKind,
    pub image: u32,
    pub frames: Box<[u64]>,
    pub end: StackEnd,
    /// A descriptor's handle: where it was created.
    pub origin: Option<Origin>,
}

/// What a report reads, copied out of [`State`].
pub struct Snapshot {
    pub summaries: Vec<StackSummary>,
    /// Stacks interned since the id the caller asked from, in id order.
    pub new_stacks: Vec<StackInfo>,
    pub images: Vec<Arc<ProcessMaps>>,
    pub anomalies: Anomalies,
    /// Everything outstanding, from the outstanding tables themselves:
    /// heap (bytes, allocations) and descriptors by kind.
    pub heap: (u64, u64),
    pub handles: BTreeMap<ResourceKind, u64>,
    /// The same per process.
    pub processes: Vec<ProcessTotals>,
    pub events: u64,
    pub object_loads: u64,
    pub decode_errors: u64,
    pub truncated_stacks: u64,
    pub recorders: RecorderStats,
    pub warnings: Vec<String>,
    /// What was not measured, and why.
    pub untraced: Vec<String>,
    /// The last reachability scan of each process scanned.
    pub scans: Vec<Arc<ScanResult>>,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// Something the session could not do, for the report (said once).
    pub fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// A part of some process that is not traced (its heap, its scan): no
    /// verdict can say it is clean, the report is incomplete (said once).
    pub fn untraced(&mut self, what: String) {
        if !self.untraced.contains(&what) {
            self.untraced.push(what);
        }
    }

    /// `pid` is leaktrace's fork of the command, before exec: its events
    /// count from its exec.
    pub fn spawned(&mut self, pid: u32) {
        self.spawning.insert(pid);
    }

    /// Whether an event of `tgid` is leaktrace's own, before the command's exec.
    pub fn before_command(&mut self, tgid: u32, body: &Body) -> bool {
        if !self.spawning.contains(&tgid) {
            return false;
        }
        if *body == Body::Exec {
            self.spawning.remove(&tgid);
            return false;
        }
        true
    }

    /// Applies a decoded event whose stack (if any) is already interned.
    pub fn apply(&mut self, tgid: u32, tid: u32, ts_ns: u64, body: &Body, stack: Option<StackId>) {
        self.agg.adopt(tgid, tid, *body == Body::Exec);
        self.agg.apply(tgid, ts_ns, body, stack);
        self.agg.apply_event_loop(tgid, tid, ts_ns, body, stack);
        match *body {
            // The next stack of this process starts a new image.
            Body::Exec => {
                self.current.remove(&tgid);
                self.forked.remove(&tgid);
                self.since_exec.insert(tgid);
                self.ended_threads.forget(tgid);
            }
            // The child is a copy of this address space: until it execs, its
            // stacks (a descriptor opened between fork and exec, then
            // inherited) are named with these maps, even once it has exec'd.
            Body::Fork { child } => {
                // It starts with a copy of its parent's table: as complete as that one.
                if self.since_exec.contains(&tgid) {
                    self.since_exec.insert(child);
                } else {
                    self.since_exec.remove(&child);
                }
                self.agg.fork(tgid, child);
                self.ended_threads.forked(tgid, child);
                if let Some(&i) = self.current.get(&tgid) {
                    self.forked.insert(child, self.images[i as usize].maps.clone());
                }
            }
            Body::Exit { sp } => {
                self.forked.remove(&tid);
                self.ended_threads.ended(tgid, tid, sp);
                if tid == tgid {
                    self.agg.mark_exited(tgid);
                    self.ended_threads.forget(tgid);
                } else {
                    // A thread, reported as a fork: it is no process of its own.
                    self.since_exec.remove(&tid);
                }
            }
            _ => {}
        }
    }

    /// The current image of `pid`, created on first use.
    pub fn image_of(&mut self, pid: u32) -> u32 {
        if let Some(&i) = self.current.get(&pid) {
            return i;
        }
        let i = self.images.len() as u32;
        let maps = self.forked.remove(&pid).unwrap_or_default();
        self.images.push(Image { pid, maps, uncovered: HashSet::new() });
        self.current.insert(pid, i);
        i
    }

    pub fn image(&self, i: u32) -> &Image {
        &self.images[i as usize]
    }

    pub fn image_mut(&mut self, i: u32) -> &mut Image {
        &mut self.images[i as usize]
    }

    /// Maps captured by the caller (at attach, at the target's exit stop) for `pid`'s current image.
    pub fn add_maps(&mut self, pid: u32, maps: ProcessMaps) {
        let image = self.image_of(pid);
        Arc::make_mut(&mut self.images[image as usize].maps).merge(maps);
    }

    /// Whether `pid` has been traced since its exec (its whole heap is known).
    pub fn traced_since_exec(&self, pid: u32) -> bool {
        self.since_exec.contains(&pid)
    }

    /// The stack pointers `pid`'s ended threads left, oldest first.
    pub fn ended_threads(&self, pid: u32) -> Vec<u64> {
        self.ended_threads.of(pid)
    }

    /// A reachability scan of a process: it replaces the one before.
    pub fn add_scan(&mut self, scan: ScanResult) {
        self.scans.insert(scan.pid, Arc::new(scan));
    }

    /// Copies what a report needs; `from` is the first stack id the caller has not seen.
    pub fn snapshot(&self, from: StackId, now_ns: u64) -> Snapshot {
        let new_stacks = self
            .agg
            .stacks
            .iter()
            .skip(from.0 as usize)
            .map(|(id, e)| StackInfo { id, kind: e.kind, image: e.image, frames: e.frames.clone(), end: e.end, origin: e.origin })
            .collect();
        Snapshot {
            summaries: self.agg.summaries(now_ns),
            new_stacks,
            images: self.images.iter().map(|i| i.maps.clone()).collect(),
            anomalies: self.agg.anomalies(),
            heap: self.agg.heap_totals(),
            handles: self.agg.handle_totals(),
            processes: self.agg.processes(),
            events: self.events,
            object_loads: self.object_loads,
            decode_errors: self.decode_errors,
            truncated_stacks: self.truncated_stacks,
            recorders: self.recorders,
            warnings: self
                .warnings
                .iter()
                .cloned()
                .chain((self.thread_cache_unprobed && self.agg.anomalies().unknown_frees > 0).then(|| THREAD_CACHE.to_owned()))
                .collect(),
            untraced: self.untraced.clone(),
            scans: self.scans.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::AllocFn;

    #[test]
    fn a_snapshot_carries_only_new_stacks_and_every_summary() {
        let mut s = State::new();
        let img = s.image_of(7);
        let a = s.agg.stacks.intern(ResourceKind::Heap, img, &[1, 2], StackEnd::COMPLETE);
        s.apply(7, 7, 1, &Body::Alloc { addr: 0x10, size: 8, func: AllocFn::Malloc }, Some(a));
        let first = s.snapshot(StackId(0), 2);
        assert_eq!(first.new_stacks.len(), 1);
        let b = s.agg.stacks.intern(ResourceKind::Heap, img, &[3], StackEnd { stop: tracer_common::StopReason::NoTable, exact: 0 });
        s.apply(7, 7, 1, &Body::Alloc { addr: 0x20, size: 8, func: AllocFn::Malloc }, Some(b));
        let second = s.snapshot(StackId(1), 2);
        assert_eq!(second.new_stacks.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b]);
        assert!(second.new_stacks[0].end.is_truncated());
        assert_eq!(second.summaries.len(), 2);
        assert_eq!(second.images.len(), 1);
    }

    #[test]
    fn a_forked_child_starts_with_its_parents_maps_until_it_execs() {
        let mut s = State::new();
        s.add_maps(7, ProcessMaps::parse("1000-2000 r-xp 00000000 08:01 5 /bin/sh\n").unwrap());
        s.apply(7, 7, 1, &Body::Fork { child: 8 }, None);
        let child = s.image_of(8);
        assert!(s.image(child).maps.find(0x1800).is_some(), "the pre-exec image is named with the parent's maps");
        s.apply(8, 8, 2, &Body::Exec, None);
        let after = s.image_of(8);
        assert!(s.image(after).maps.is_empty(), "after exec, a new image");
        s.apply(7, 7, 3, &Body::Fork { child: 9 }, None);
        s.apply(7, 9, 4, &Body::Exit { sp: 0 }, None);
        assert!(s.forked.is_empty(), "a thread's or child's exit drops what it did not use");
    }

    #[test]
    fn exec_starts_a_new_image_and_exit_marks_the_process() {
        let mut s = State::new();
        let before = s.image_of(7);
        s.apply(7, 7, 1, &Body::Exec, None);
        assert_ne!(s.image_of(7), before);
        s.apply(7, 8, 1, &Body::Exit { sp: 0 }, None);
        assert!(!s.agg.has_exited(7), "a thread's exit is not the process's");
        s.apply(7, 7, 1, &Body::Exit { sp: 0 }, None);
        assert!(s.agg.has_exited(7));
    }

    #[test]
    fn the_commands_fork_is_leaktraces_until_it_execs() {
        let mut s = State::new();
        s.spawned(9);
        assert!(s.before_command(9, &Body::FdClose { fd: 5, occupant: 0 }), "closing leaktrace's pipe");
        assert!(!s.before_command(8, &Body::FdClose { fd: 5, occupant: 0 }), "another process");
        assert!(!s.before_command(9, &Body::Exec), "the exec is the command's");
        assert!(!s.before_command(9, &Body::FdClose { fd: 5, occupant: 0 }), "and so is everything after it");
    }
}
