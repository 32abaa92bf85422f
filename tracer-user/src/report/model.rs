//! The report: what the text, JSON and TUI views all show. Its JSON form is a
//! documented interface (README, "JSON report").

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

pub use super::provenance::SiteFrom;

use crate::aggregate::{Anomalies, ResourceKind};
use crate::probes::DescriptorProbes;

pub use super::focus::FocusReport;
pub use super::processes::ProcessReport;
use super::profile::Profile;
pub use super::reachability::{Amount, Reachability, ScanInfo};
pub use super::target::{ExitStatus, Target, TargetState};

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
    pub descriptors: DescriptorProbes,
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
            descriptors: DescriptorProbes::default(),
        }
    }
}

#[cfg(test)]
impl Site {
    /// A site named `function` in /bin/app with no stack, for tests of what consumes reports.
    pub fn named(kind: ResourceKind, function: &str, count: u64, bytes: u64) -> Self {
        let site = Location { function: Some(function.into()), module: "/bin/app".into(), label: function.into(), ..Location::default() };
        Self { count, bytes, allocations: count, stacks: 1, ..Self::empty(kind, site) }
    }
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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Site {
    pub kind: ResourceKind,
    /// Outstanding items.
    pub count: u64,
    /// Outstanding bytes (heap; 0 for handles).
    pub bytes: u64,
    /// Acquisitions and releases seen at this site since tracing began.
    pub allocations: u64,
    pub releases: u64,
    /// Age of the oldest outstanding item.
    pub oldest_age_secs: f64,
    pub site: Location,
    /// Distinct stacks folded into this site (`stack` shows the largest).
    pub stacks: u64,
    /// The stack of the largest contributor, innermost first.
    pub stack: Vec<StackFrame>,
    /// The unwinder could not recover frames beyond the last one.
    pub truncated: bool,
    /// Why, when it could not: the reason and the frame it stopped after.
    pub stack_end: Option<String>,
    /// The trend of what this site holds over the session (null until there is enough history).
    pub growth: Option<Growth>,
    /// Descriptors: what their files and calls say (a socket's family and
    /// type; a memfd's name; an unknown anonymous inode's name), sorted.
    pub detail: Vec<String>,
    /// Descriptors received from another process (SCM_RIGHTS) by this call.
    pub received: bool,
    /// valgrind's classes of its blocks (heap) or descriptors owned by lost blocks, after a scan.
    pub reachability: Option<Reachability>,
    /// Descriptors of a libuv handle: the stack that named the site
    /// (`opened`: `stack`; `created`: `created_stack`; `server`: `server_stack`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_from: Option<SiteFrom>,
    /// Where the handle was created (`uv_*_init`), and an accepted connection's server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub created_stack: Vec<StackFrame>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_stack: Vec<StackFrame>,
}

/// A site's trend: robust (Theil–Sen) slopes of its outstanding count and
/// bytes over the samples taken while tracing (README, "Growth").
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Growth {
    /// Seconds of history fitted, and the samples in them.
    pub window_secs: f64,
    pub points: u32,
    /// Change per minute of outstanding items and bytes.
    pub count_per_min: f64,
    pub bytes_per_min: f64,
    /// 95% interval of the site's own rate (bytes for heap, handles otherwise), per minute.
    pub low_per_min: f64,
    pub high_per_min: f64,
    /// How much of that measure's variation the line explains (R², 0 to 1).
    pub fit: f64,
}

impl Growth {
    /// The rate of what a site of `kind` holds: bytes for heap, handles otherwise.
    pub fn rate(&self, kind: ResourceKind) -> f64 {
        if kind == ResourceKind::Heap {
            self.bytes_per_min
        } else {
            self.count_per_min
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Location {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// JavaScript sites only: the column (of the function's start, or of the
    /// call when the runtime's jitdump gives positions inside functions).
    pub column: Option<u32>,
    /// `line` is where the function starts, not the call's (JavaScript named
    /// from a perf map alone); serialized only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub line_is_function_start: bool,
    pub module: String,
    /// The function; `function+0xOFFSET` (the return address in its symbol)
    /// when no line is known; `module+0xOFFSET` when no function is. No two
    /// sites of a kind share a label: a repeated one gets ` at FILE:LINE`,
    /// and ` in MODULE` when that is all that differs.
    pub label: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StackFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// As [`Location::line_is_function_start`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub line_is_function_start: bool,
    pub module: String,
    pub address: u64,
    /// Offset in the module's file of the instruction looked up (the call before `address`).
    pub module_offset: u64,
    pub inlined: bool,
    /// A frame a tail call left out, put back from the call instruction that led to it.
    pub inferred: bool,
}

impl Site {
    /// A site at `site` that holds nothing yet.
    pub fn empty(kind: ResourceKind, site: Location) -> Self {
        Self {
            kind,
            count: 0,
            bytes: 0,
            allocations: 0,
            releases: 0,
            oldest_age_secs: 0.0,
            site,
            stacks: 0,
            stack: Vec::new(),
            truncated: false,
            stack_end: None,
            growth: None,
            detail: Vec::new(),
            received: false,
            reachability: None,
            site_from: None,
            created_stack: Vec::new(),
            server_stack: Vec::new(),
        }
    }

    /// What a descriptor site's files say, in one line (None when nothing).
    pub fn detail_line(&self) -> Option<String> {
        let mut parts = self.detail.clone();
        if self.received {
            parts.push("received from another process (SCM_RIGHTS)".to_owned());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl std::fmt::Display for DescriptorProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} system calls", self.mechanism, self.syscalls)?;
        if !self.not_on_this_kernel.is_empty() {
            write!(f, " (not on this kernel: {})", self.not_on_this_kernel.join(", "))?;
        }
        Ok(())
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
    pub fn gated_bytes(&self, kinds: super::LeakKinds) -> u64 {
        let heap = self.sites.iter().filter(|s| s.kind == ResourceKind::Heap);
        heap.map(|s| s.reachability.map_or(s.bytes, |r| r.selected(kinds).bytes)).sum()
    }
}
