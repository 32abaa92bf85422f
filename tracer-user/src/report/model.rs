//! The report: what the text, JSON and TUI views all show. Its JSON form is a
//! documented interface (README, "JSON report"). Every type of the model
//! can be named from here; each is defined in the file of its part.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::aggregate::{Anomalies, ResourceKind};

pub use super::processes::ProcessReport;
use super::profile::Profile;
pub use super::reachability::{Amount, LeakKinds, Reachability, ScanInfo};
pub use super::site::{Growth, Location, Site, SiteFrom, StackFrame};
pub use super::target::{DescriptorTracing, ExitStatus, Target, TargetState};

/// Schema version of the JSON report.
pub const SCHEMA_VERSION: u32 = 5;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub schema: u32,
    /// False when the kernel side lost events (counts may be wrong) or a
    /// part of a process was not traced at all (`untraced`).
    pub complete: bool,
    pub lost_events: u64,
    /// What was not measured, and why (a process's heap...): each makes the report incomplete.
    pub untraced: Vec<String>,
    /// Every kernel-side counter by name (losses, failed stack captures...).
    pub counters: BTreeMap<String, u64>,
    pub target: Target,
    /// What the sites report: their sum.
    pub totals: Totals,
    /// Outstanding with no frame inside `--focus` (absent without `--focus`); not in `sites`.
    pub outside_focus: Option<Totals>,
    /// Outstanding on stacks a suppression matched (built-in or `--suppress`); not in `sites`.
    pub suppressed: Totals,
    /// Everything outstanding, from the tracer's tables:
    /// `totals + outside_focus + suppressed`.
    pub outstanding: Totals,
    /// What `--focus` resolved to and matched (absent without `--focus`).
    pub focus: Option<FocusReport>,
    pub anomalies: Anomalies,
    /// Sampling mode: heap figures are estimates, scaled by this rate.
    pub sample_every: Option<u32>,
    /// One row per (kind, call site), largest first.
    pub sites: Vec<Site>,
    /// The reachability scans behind the classes (the last of each process).
    pub scans: Vec<ScanInfo>,
    /// What each process holds, from the tracer's tables.
    pub processes: Vec<ProcessReport>,
    pub warnings: Vec<String>,
    pub tracer: TracerCost,
    /// Every stack behind the sites, when asked for (the profile formats); not in the JSON.
    #[serde(skip)]
    pub profile: Option<Arc<Profile>>,
    /// How descriptors were traced.
    pub descriptors: DescriptorTracing,
}

#[cfg(test)]
impl Report {
    /// A report over hand-made sites, for tests of what consumes reports.
    pub fn of_sites(target: Target, sites: Vec<Site>, lost: u64) -> Self {
        let mut totals = Totals::default();
        for s in &sites {
            totals.add(s.kind, s.count, s.bytes);
        }
        Self {
            schema: SCHEMA_VERSION,
            complete: lost == 0,
            lost_events: lost,
            untraced: Vec::new(),
            counters: BTreeMap::from([("lost_heap_events".to_owned(), lost)]),
            target,
            totals: totals.clone(),
            outside_focus: None,
            suppressed: Totals::default(),
            outstanding: totals,
            focus: None,
            anomalies: Anomalies::default(),
            sample_every: None,
            sites,
            scans: Vec::new(),
            processes: Vec::new(),
            warnings: Vec::new(),
            tracer: TracerCost::default(),
            profile: None,
            descriptors: DescriptorTracing::default(),
        }
    }
}

/// What `--focus` resolved to and what it matched.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FocusReport {
    pub given: String,
    /// Absolute directories or files it stands for.
    pub resolved: Vec<String>,
    /// Source files and modules that matched (the first few, sorted).
    pub matched: Vec<String>,
    /// How many more distinct paths matched.
    pub matched_more: u64,
}

/// leaktrace's own cost, for the benchmarks.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TracerCost {
    /// User + system CPU of leaktrace itself (all its threads, not the target).
    pub cpu_secs: f64,
    pub peak_rss_kib: u64,
    /// Records ingested.
    pub events: u64,
    /// Times the dynamic linker announced new objects (start-up, dlopen):
    /// their unwind tables were loaded before their code ran.
    pub object_loads: u64,
    /// How the allocator probes were hung on processes: uprobe session,
    /// uprobe_multi or perf-event uprobes.
    pub probe_links: Option<String>,
    /// Mean milliseconds to attach one process's allocator probes, and to
    /// detach them (in the background; over the detaches finished).
    pub probe_attach_ms: Option<f64>,
    pub probe_detach_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Totals {
    pub heap_bytes: u64,
    pub heap_allocations: u64,
    /// Outstanding descriptors by kind name.
    pub handles: BTreeMap<String, u64>,
    /// The heap's classes after a reachability scan (null without one).
    pub reachability: Option<Reachability>,
}

impl Totals {
    pub fn add(&mut self, kind: ResourceKind, count: u64, bytes: u64) {
        match kind {
            ResourceKind::Heap => {
                self.heap_allocations += count;
                self.heap_bytes += bytes;
            }
            k => *self.handles.entry(k.name().to_owned()).or_insert(0) += count,
        }
    }

    pub fn handle_count(&self) -> u64 {
        self.handles.values().sum()
    }

    /// Adds another set of totals.
    pub fn merge(&mut self, o: &Totals) {
        self.heap_bytes += o.heap_bytes;
        self.heap_allocations += o.heap_allocations;
        for (k, v) in &o.handles {
            *self.handles.entry(k.clone()).or_insert(0) += v;
        }
        super::reachability::add_into(&mut self.reachability, &o.reachability);
    }
}

impl Report {
    pub fn leaked_handles(&self) -> u64 {
        self.sites.iter().filter(|s| s.kind != ResourceKind::Heap).map(|s| s.count).sum()
    }

    pub fn leaked_bytes(&self) -> u64 {
        self.sites.iter().filter(|s| s.kind == ResourceKind::Heap).map(|s| s.bytes).sum()
    }

    /// The heap bytes of the sites that `kinds` selects: of those classes
    /// after a scan, and what no scan saw (without one: everything outstanding).
    pub fn gated_bytes(&self, kinds: LeakKinds) -> u64 {
        let heap = self.sites.iter().filter(|s| s.kind == ResourceKind::Heap);
        heap.map(|s| s.reachability.map_or(s.bytes, |r| r.selected(kinds).bytes)).sum()
    }
}
