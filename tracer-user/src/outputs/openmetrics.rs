//! A report in the OpenMetrics text format (what Prometheus scrapes): per
//! call site, outstanding items and bytes, acquisitions and releases and
//! the growth trend, for the `top` largest sites of each kind; totals; and
//! leaktrace's own lost events, event rate, CPU and memory.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::aggregate::ResourceKind;
use crate::report::model::Site;
use crate::report::Report;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label values escaped as OpenMetrics wants them.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn site_labels(s: &Site) -> String {
    let l = &s.site;
    format!(
        "kind=\"{}\",site=\"{}\",function=\"{}\",file=\"{}\",line=\"{}\",module=\"{}\"",
        s.kind,
        escape(&l.label),
        escape(l.function.as_deref().unwrap_or("")),
        escape(l.file.as_deref().unwrap_or("")),
        l.line.map(|n| n.to_string()).unwrap_or_default(),
        escape(&l.module)
    )
}

/// The `top` sites of each kind that hold the most (then acquired the most), and how many were left out.
fn chosen(sites: &[Site], top: usize) -> (Vec<&Site>, BTreeMap<ResourceKind, usize>) {
    let mut by_kind: BTreeMap<ResourceKind, Vec<&Site>> = BTreeMap::new();
    for s in sites {
        by_kind.entry(s.kind).or_default().push(s);
    }
    let mut kept = Vec::new();
    let mut left = BTreeMap::new();
    for (kind, mut v) in by_kind {
        v.sort_by_key(|s| std::cmp::Reverse((s.bytes, s.count, s.allocations)));
        left.insert(kind, v.len().saturating_sub(top));
        kept.extend(v.into_iter().take(top));
    }
    (kept, left)
}

/// One metric family: its metadata, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, unit: Option<&str>, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        if let Some(u) = unit {
            let _ = writeln!(self.out, "# UNIT {name} {u}");
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        self
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) -> &mut Self {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
        self
    }
}

/// The exposition of `r`, its `top` sites of each kind; `events_per_sec`:
/// the event rate since the report before.
pub fn render(r: &Report, events_per_sec: f64, top: usize) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let t = &r.target;
    let info = format!("pid=\"{}\",command=\"{}\",state=\"{}\"", t.pid, escape(&t.command), t.state);
    f.head("leaktrace_target", "info", None, "The traced process.").sample("leaktrace_target_info", &info, 1);
    let (sites, left) = chosen(&r.sites, top);
    let labels: Vec<String> = sites.iter().map(|s| site_labels(s)).collect();
    let per_site = |f: &mut Family, name: &str, value: &dyn Fn(&Site) -> Option<f64>| {
        for (s, l) in sites.iter().zip(&labels) {
            if let Some(v) = value(s) {
                f.sample(name, l, v);
            }
        }
    };
    f.head("leaktrace_site_outstanding", "gauge", None, "Items (allocations or handles) a call site holds.");
    per_site(&mut f, "leaktrace_site_outstanding", &|s| Some(s.count as f64));
    f.head("leaktrace_site_outstanding_bytes", "gauge", Some("bytes"), "Heap bytes a call site holds.");
    per_site(&mut f, "leaktrace_site_outstanding_bytes", &|s| (s.kind == ResourceKind::Heap).then_some(s.bytes as f64));
    f.head("leaktrace_site_acquisitions", "counter", None, "Allocations or handles acquired at a call site.");
    per_site(&mut f, "leaktrace_site_acquisitions_total", &|s| Some(s.allocations as f64));
    f.head("leaktrace_site_releases", "counter", None, "Of those, released.");
    per_site(&mut f, "leaktrace_site_releases_total", &|s| Some(s.releases as f64));
    f.head(
        "leaktrace_site_growth_per_minute",
        "gauge",
        None,
        "A call site's trend (Theil-Sen): bytes per minute for heap, handles per minute otherwise.",
    );
    per_site(&mut f, "leaktrace_site_growth_per_minute", &|s| s.growth.map(|g| g.rate(s.kind)));
    f.head("leaktrace_sites_omitted", "gauge", None, "Call sites of a kind left out by --metrics-top.");
    for (kind, n) in &left {
        f.sample("leaktrace_sites_omitted", &format!("kind=\"{kind}\""), n);
    }
    totals(&mut f, r, events_per_sec);
    out.push_str("# EOF\n");
    out
}

fn totals(f: &mut Family, r: &Report, events_per_sec: f64) {
    let o = &r.outstanding;
    f.head("leaktrace_outstanding_bytes", "gauge", Some("bytes"), "Heap bytes outstanding in all (sites, outside --focus and suppressed).")
        .sample("leaktrace_outstanding_bytes", "", o.heap_bytes);
    f.head("leaktrace_outstanding_allocations", "gauge", None, "Heap allocations outstanding in all.").sample(
        "leaktrace_outstanding_allocations",
        "",
        o.heap_allocations,
    );
    f.head("leaktrace_outstanding_handles", "gauge", None, "Handles outstanding in all, by kind.");
    for (kind, n) in &o.handles {
        f.sample("leaktrace_outstanding_handles", &format!("kind=\"{}\"", escape(kind)), n);
    }
    f.head("leaktrace_complete", "gauge", None, "1 while no event was lost, else 0.").sample(
        "leaktrace_complete",
        "",
        u8::from(r.complete),
    );
    f.head("leaktrace_lost_events", "counter", None, "Events the kernel side could not deliver.").sample(
        "leaktrace_lost_events_total",
        "",
        r.lost_events,
    );
    f.head("leaktrace_events", "counter", None, "Events leaktrace ingested.").sample("leaktrace_events_total", "", r.tracer.events);
    f.head("leaktrace_events_per_second", "gauge", None, "Events ingested per second, over the last report.").sample(
        "leaktrace_events_per_second",
        "",
        events_per_sec,
    );
    f.head("leaktrace_cpu_seconds", "counter", Some("seconds"), "leaktrace's own CPU time (user and system, all threads).").sample(
        "leaktrace_cpu_seconds_total",
        "",
        r.tracer.cpu_secs,
    );
    f.head("leaktrace_resident_memory_bytes", "gauge", Some("bytes"), "leaktrace's own resident memory.").sample(
        "leaktrace_resident_memory_bytes",
        "",
        rss_kib("VmRSS:") * 1024,
    );
    f.head("leaktrace_peak_resident_memory_bytes", "gauge", Some("bytes"), "leaktrace's own peak resident memory.").sample(
        "leaktrace_peak_resident_memory_bytes",
        "",
        r.tracer.peak_rss_kib * 1024,
    );
}

/// A `VmRSS:`-like line of /proc/self/status, in KiB.
fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
#[path = "openmetrics_tests.rs"]
mod tests;
