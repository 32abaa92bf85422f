//! A report in the OpenMetrics text format (what Prometheus scrapes), by
//! the prometheus-client crate: per call site, outstanding items and bytes,
//! acquisitions and releases and the growth trend, for the `top` largest
//! sites of each kind; totals; and leaktrace's own lost events, event
//! rate, CPU and memory. Each scrape fills a registry of its own from the
//! report, so nothing outlives the report it describes.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::aggregate::ResourceKind;
use crate::report::model::Site;
use crate::report::Report;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set, in the order it is written.
type Labels = Vec<(&'static str, String)>;
type Float = Gauge<f64, AtomicU64>;
/// Counts and bytes: written as integers.
type Int = Gauge;

fn site_labels(s: &Site) -> Labels {
    let l = &s.site;
    vec![
        ("kind", s.kind.to_string()),
        ("site", l.label.clone()),
        ("function", l.function.clone().unwrap_or_default()),
        ("file", l.file.clone().unwrap_or_default()),
        ("line", l.line.map(|n| n.to_string()).unwrap_or_default()),
        ("module", l.module.clone()),
    ]
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

/// One gauge per site, `value` where it has one.
fn per_site(sites: &[&Site], value: impl Fn(&Site) -> Option<f64>) -> Family<Labels, Float> {
    let family = Family::<Labels, Float>::default();
    for s in sites {
        if let Some(v) = value(s) {
            family.get_or_create(&site_labels(s)).set(v);
        }
    }
    family
}

/// One integer gauge per site.
fn per_site_int(sites: &[&Site], value: impl Fn(&Site) -> Option<u64>) -> Family<Labels, Int> {
    let family = Family::<Labels, Int>::default();
    for s in sites {
        if let Some(v) = value(s) {
            family.get_or_create(&site_labels(s)).set(int(v));
        }
    }
    family
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One counter per site.
fn per_site_count(sites: &[&Site], value: impl Fn(&Site) -> u64) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for s in sites {
        family.get_or_create(&site_labels(s)).inc_by(value(s));
    }
    family
}

fn gauge(v: f64) -> Float {
    let g = Float::default();
    g.set(v);
    g
}

fn int_gauge(v: u64) -> Int {
    let g = Int::default();
    g.set(int(v));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// The exposition of `r`, its `top` sites of each kind; `events_per_sec`:
/// the event rate since the report before.
pub fn render(r: &Report, events_per_sec: f64, top: usize) -> String {
    let mut reg = Registry::default();
    let t = &r.target;
    let info = vec![("pid", t.pid.to_string()), ("command", t.command.clone()), ("state", t.state.to_string())];
    reg.register("leaktrace_target", "The traced process", Info::new(info));
    let (sites, left) = chosen(&r.sites, top);
    let sites = &sites;
    reg.register("leaktrace_site_outstanding", "Items (allocations or handles) a call site holds", per_site_int(sites, |s| Some(s.count)));
    let heap_bytes = per_site_int(sites, |s| (s.kind == ResourceKind::Heap).then_some(s.bytes));
    reg.register_with_unit("leaktrace_site_outstanding", "Heap bytes a call site holds", Unit::Bytes, heap_bytes);
    reg.register("leaktrace_site_acquisitions", "Allocations or handles acquired at a call site", per_site_count(sites, |s| s.allocations));
    reg.register("leaktrace_site_releases", "Of those, released", per_site_count(sites, |s| s.releases));
    reg.register(
        "leaktrace_site_growth_per_minute",
        "A call site's trend (Theil-Sen): bytes per minute for heap, handles per minute otherwise",
        per_site(sites, |s| s.growth.map(|g| g.rate(s.kind))),
    );
    let omitted = Family::<Labels, Int>::default();
    for (kind, n) in &left {
        omitted.get_or_create(&vec![("kind", kind.to_string())]).set(int(*n as u64));
    }
    reg.register("leaktrace_sites_omitted", "Call sites of a kind left out by --metrics-top", omitted);
    totals(&mut reg, r, events_per_sec);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

fn totals(reg: &mut Registry, r: &Report, events_per_sec: f64) {
    let o = &r.outstanding;
    let all = "Heap bytes outstanding in all (sites, outside --focus and suppressed)";
    reg.register_with_unit("leaktrace_outstanding", all, Unit::Bytes, int_gauge(o.heap_bytes));
    reg.register("leaktrace_outstanding_allocations", "Heap allocations outstanding in all", int_gauge(o.heap_allocations));
    let handles = Family::<Labels, Int>::default();
    for (kind, n) in &o.handles {
        handles.get_or_create(&vec![("kind", kind.clone())]).set(int(*n));
    }
    reg.register("leaktrace_outstanding_handles", "Handles outstanding in all, by kind", handles);
    reg.register("leaktrace_complete", "1 while no event was lost, else 0", int_gauge(u64::from(r.complete)));
    reg.register("leaktrace_lost_events", "Events the kernel side could not deliver", counter(r.lost_events));
    reg.register("leaktrace_events", "Events leaktrace ingested", counter(r.tracer.events));
    reg.register("leaktrace_events_per_second", "Events ingested per second, over the last report", gauge(events_per_sec));
    let cpu = Counter::<f64, AtomicU64>::default();
    cpu.inc_by(r.tracer.cpu_secs);
    reg.register_with_unit("leaktrace_cpu", "leaktrace's own CPU time (user and system, all threads)", Unit::Seconds, cpu);
    let rss = int_gauge(rss_kib("VmRSS:") * 1024);
    reg.register_with_unit("leaktrace_resident_memory", "leaktrace's own resident memory", Unit::Bytes, rss);
    let peak = int_gauge(r.tracer.peak_rss_kib * 1024);
    reg.register_with_unit("leaktrace_peak_resident_memory", "leaktrace's own peak resident memory", Unit::Bytes, peak);
}

/// A `VmRSS:`-like line of /proc/self/status, in KiB.
fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
#[path = "openmetrics_tests.rs"]
mod tests;
