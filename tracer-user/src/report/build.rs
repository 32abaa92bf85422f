//! Building a [`Report`] from the tracer's state.

use std::collections::{BTreeMap, HashMap};

use tracer_common::Counter;

use tracer_common::FdKind;

use crate::aggregate::{ResourceKind, Snapshot, StackCounters, StackSummary};
use crate::probes::DescriptorProbes;

use super::attribute::{Attribution, Resolved, SiteCache};
use super::model::{Location, Report, Site, Target, Totals, TracerCost, SCHEMA_VERSION};
use super::suppress::Suppressions;

/// What a report needs besides the tracer's state.
pub struct ReportInput<'a> {
    pub target: Target,
    pub counters: [u64; Counter::COUNT as usize],
    pub attribution: &'a Attribution,
    pub suppressions: &'a Suppressions,
    /// CLOCK_MONOTONIC now, for ages.
    pub now_ns: u64,
    /// Sampling rate (> 1 in sampling mode): heap counts are scaled by it.
    pub sample_every: u32,
    /// How descriptors are traced.
    pub descriptors: DescriptorProbes,
}

pub fn build(snap: &Snapshot, cache: &mut SiteCache, input: ReportInput) -> Report {
    cache.update(snap, input.attribution);
    let scale = u64::from(input.sample_every.max(1));
    let mut acc = Accumulator::default();
    for s in &snap.summaries {
        let mut c = s.counters;
        if s.kind == ResourceKind::Heap && scale > 1 {
            c.outstanding *= scale;
            c.outstanding_bytes *= scale;
            c.acquired *= scale;
            c.released *= scale;
        }
        if c.acquired == 0 {
            continue;
        }
        let Some(resolved) = cache.get(s.stack) else { continue };
        acc.add(s, &c, resolved, &input);
    }
    let lost_events: u64 =
        Counter::ALL.iter().filter(|c| c.is_loss()).map(|&c| input.counters[c as usize]).sum::<u64>() + snap.decode_errors;
    let counters: BTreeMap<String, u64> = Counter::ALL
        .iter()
        .map(|&c| (c.name().to_owned(), input.counters[c as usize]))
        .chain([("decode_errors".to_owned(), snap.decode_errors), ("truncated_stacks".to_owned(), snap.truncated_stacks)])
        .collect();
    let mut warnings: Vec<String> = snap.warnings.iter().chain(cache.warnings()).cloned().collect();
    let cut_sites = acc.sites.values().filter(|s| s.truncated).count();
    if cut_sites > 0 {
        warnings.push(format!("{cut_sites} sites have a stack that ends early; each says why (`stack_end`)"));
    }
    if snap.summaries.iter().any(|s| s.kind == ResourceKind::Fd(FdKind::IoUring)) {
        warnings.push(IO_URING.to_owned());
    }
    let sites = acc.sites_sorted();
    Report {
        schema: SCHEMA_VERSION,
        complete: lost_events == 0,
        lost_events,
        counters,
        target: input.target,
        totals: acc.totals,
        outside_focus: input.attribution.focus.is_some().then_some(acc.outside),
        anomalies: snap.anomalies,
        sample_every: (scale > 1).then_some(scale as u32),
        sites,
        warnings,
        tracer: TracerCost { cpu_secs: own_cpu_secs(), peak_rss_kib: own_peak_rss_kib(), events: snap.events },
        descriptors: input.descriptors,
    }
}

/// Said when the target made an io_uring: its operations are no system calls.
const IO_URING: &str = "the target uses io_uring: descriptors its operations open or close (accept, openat, socket, close submitted to the ring) are not traced";

type SiteKey = (ResourceKind, Location);

/// Stacks folded into sites, with the totals they add up to.
#[derive(Default)]
struct Accumulator {
    sites: HashMap<SiteKey, Site>,
    /// Weight of the stack each site shows.
    shown: HashMap<SiteKey, u64>,
    totals: Totals,
    outside: Totals,
}

impl Accumulator {
    fn add(&mut self, s: &StackSummary, c: &StackCounters, resolved: &Resolved, input: &ReportInput) {
        if c.outstanding > 0 {
            self.totals.add(s.kind, c.outstanding, c.outstanding_bytes);
        }
        if input.suppressions.matches(&resolved.stack) {
            return;
        }
        if !resolved.in_focus {
            if c.outstanding > 0 {
                self.outside.add(s.kind, c.outstanding, c.outstanding_bytes);
            }
            return;
        }
        let key = (s.kind, resolved.site.clone());
        let site = self.sites.entry(key.clone()).or_insert_with(|| Site {
            kind: s.kind,
            count: 0,
            bytes: 0,
            allocations: 0,
            releases: 0,
            oldest_age_secs: 0.0,
            site: resolved.site.clone(),
            stack: Vec::new(),
            truncated: false,
            stack_end: None,
            detail: Vec::new(),
            received: false,
        });
        if let Some(d) = &s.detail {
            site.received |= d.received;
            for n in &d.notes {
                if !site.detail.contains(n) {
                    site.detail.push(n.clone());
                    site.detail.sort();
                }
            }
        }
        site.count += c.outstanding;
        site.bytes += c.outstanding_bytes;
        site.allocations += c.acquired;
        site.releases += c.released;
        if let Some(oldest) = s.oldest_ns {
            let age = input.now_ns.saturating_sub(oldest) as f64 / 1e9;
            site.oldest_age_secs = site.oldest_age_secs.max(age);
        }
        // Show the stack that holds the most (or, when nothing is held, the first).
        let weight = c.outstanding_bytes.max(c.outstanding);
        let best = self.shown.entry(key).or_insert(0);
        if site.stack.is_empty() || weight > *best {
            *best = weight;
            site.stack = resolved.stack.clone();
            site.truncated = resolved.truncated.is_some();
            site.stack_end = resolved.truncated.clone();
        }
    }

    /// Largest first.
    fn sites_sorted(&mut self) -> Vec<Site> {
        let mut sites: Vec<Site> = std::mem::take(&mut self.sites).into_values().collect();
        sites.sort_by(|a, b| (b.bytes, b.count, &a.site).cmp(&(a.bytes, a.count, &b.site)).then(a.kind.cmp(&b.kind)));
        sites
    }
}

/// leaktrace's own CPU time (all threads) from /proc/self/stat.
fn own_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name: state is field 3, utime 14 and stime 15.
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// leaktrace's peak resident set (VmHWM) in KiB.
fn own_peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}
