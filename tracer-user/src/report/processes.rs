//! What each process holds (JSON `processes[]`): one row per process, as
//! valgrind `--trace-children=yes` gives one per pid. Under `--follow-forks`
//! a worker forked from a master holds what it inherited and still has.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::aggregate::Snapshot;

use super::reachability::{Amount, Reachability};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessReport {
    pub pid: u32,
    pub heap_bytes: u64,
    pub heap_allocations: u64,
    /// Outstanding descriptors by kind name.
    pub handles: BTreeMap<String, u64>,
    /// Its heap in valgrind's classes, from its last scan (null without one).
    pub reachability: Option<Reachability>,
}

/// The snapshot's processes, heap figures scaled by `scale` (sampling).
pub fn processes(snap: &Snapshot, scale: u64) -> Vec<ProcessReport> {
    let scans: HashMap<u32, _> = snap.scans.iter().map(|s| (s.pid, s)).collect();
    snap.processes
        .iter()
        .map(|p| {
            let held = Amount { count: p.heap.1 * scale, bytes: p.heap.0 * scale };
            ProcessReport {
                pid: p.pid,
                heap_bytes: held.bytes,
                heap_allocations: held.count,
                handles: p.handles.iter().map(|(k, &n)| (k.name().to_owned(), n)).collect(),
                reachability: scans.get(&p.pid).map(|s| Reachability::of_scan(s, held, scale)),
            }
        })
        .collect()
}
