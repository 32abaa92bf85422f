//! Building a [`Report`] from the tracer's state: each stack attributed to
//! its site (`attribution/`), the sites summed, labelled and sorted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tracer_common::Counter;

use tracer_common::FdKind;

use crate::aggregate::{ResourceKind, Snapshot, StackCounters, StackId, StackSummary};

use super::attribution::{Attribution, Resolved, SiteCache, Suppressions};
use super::labels;
use super::model::{DescriptorTracing, Report, Site, Target, Totals, TracerCost, SCHEMA_VERSION};
use super::profile::ProfileBuilder;
use super::reachability::{add_into, ScanTable};

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
    /// Keep every stack of every site in `Report::profile` (the profile formats).
    pub keep_stacks: bool,
    /// How descriptors are traced.
    pub descriptors: DescriptorTracing,
}

pub fn build(snap: &Snapshot, cache: &mut SiteCache, input: ReportInput) -> Report {
    cache.update(snap, input.attribution);
    let scale = u64::from(input.sample_every.max(1));
    let mut acc = Accumulator {
        profile: input.keep_stacks.then(ProfileBuilder::default),
        scans: ScanTable::new(&snap.scans),
        ..Accumulator::default()
    };
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
        acc.add(s, &c, resolved, cache, &input, scale);
    }
    let lost_events: u64 = Counter::ALL.iter().filter(|c| c.is_loss()).map(|&c| input.counters[c as usize]).sum::<u64>()
        + snap.decode_errors
        + snap.recorders.lost;
    let counters: BTreeMap<String, u64> = Counter::ALL
        .iter()
        .map(|&c| (c.name().to_owned(), input.counters[c as usize]))
        .chain([("decode_errors".to_owned(), snap.decode_errors), ("truncated_stacks".to_owned(), snap.truncated_stacks)])
        .chain(recorder_counters(&snap.recorders))
        .collect();
    let mut warnings: Vec<String> = snap.warnings.iter().cloned().chain(cache.warnings()).collect();
    let cut_sites = acc.sites.values().filter(|s| s.truncated).count();
    if cut_sites > 0 {
        warnings.push(format!("{cut_sites} sites have a stack that ends early; each says why (`stack_end`)"));
    }
    let focus = cache.focus_report();
    if let Some(f) = focus.as_ref().filter(|f| f.matched.is_empty() && !snap.summaries.is_empty()) {
        warnings.push(format!("--focus {} matched no frame (resolved to {})", f.given, f.resolved.join(", ")));
    }
    if snap.summaries.iter().any(|s| s.kind == ResourceKind::Fd(FdKind::IoUring)) {
        warnings.push(IO_URING.to_owned());
    }
    let sites = acc.sites_sorted();
    let profile = acc.profile.take().map(|p| Arc::new(p.finish(&snap.images)));
    let mut outstanding = outstanding(snap, scale);
    for part in [&acc.totals, &acc.outside, &acc.suppressed] {
        add_into(&mut outstanding.reachability, &part.reachability);
    }
    Report {
        schema: SCHEMA_VERSION,
        complete: lost_events == 0 && snap.untraced.is_empty(),
        untraced: snap.untraced.clone(),
        lost_events,
        counters,
        target: input.target,
        totals: acc.totals,
        outside_focus: input.attribution.focus.is_some().then_some(acc.outside),
        suppressed: acc.suppressed,
        outstanding,
        focus,
        anomalies: snap.anomalies,
        sample_every: (scale > 1).then_some(scale as u32),
        sites,
        scans: std::mem::take(&mut acc.scans.infos),
        processes: super::processes::processes(snap, scale),
        warnings,
        tracer: TracerCost {
            cpu_secs: own_cpu_secs(),
            peak_rss_kib: own_peak_rss_kib(),
            events: snap.events,
            object_loads: snap.object_loads,
            ..TracerCost::default()
        },
        profile,
        descriptors: input.descriptors,
    }
}

/// Said when the target made an io_uring: its operations are no system calls.
const IO_URING: &str = "the target uses io_uring: descriptors its operations open or close (accept, openat, socket, close submitted to the ring) are not traced";

/// Everything outstanding, from the tracer's own tables (not from the sites).
fn outstanding(snap: &Snapshot, scale: u64) -> Totals {
    let mut t = Totals::default();
    t.add(ResourceKind::Heap, snap.heap.1 * scale, snap.heap.0 * scale);
    for (&k, &n) in snap.handles.iter().filter(|(_, &n)| n > 0) {
        t.add(k, n, 0);
    }
    t
}

/// A site: its kind and its location id (None: no stack).
type SiteKey = (ResourceKind, Option<u32>);

/// Stacks folded into sites, with the totals they add up to.
#[derive(Default)]
struct Accumulator {
    sites: HashMap<SiteKey, Site>,
    /// Weight of the stack each site shows.
    shown: HashMap<SiteKey, u64>,
    totals: Totals,
    outside: Totals,
    suppressed: Totals,
    profile: Option<ProfileBuilder>,
    scans: ScanTable,
}

impl Accumulator {
    fn add(&mut self, s: &StackSummary, c: &StackCounters, resolved: &Resolved, cache: &SiteCache, input: &ReportInput, scale: u64) {
        let reach = self.scans.for_stack(s.stack, s.kind, c, scale);
        let suppressed = input.suppressions.matches(cache.frames(resolved));
        let part = if suppressed {
            &mut self.suppressed
        } else if !resolved.in_focus {
            &mut self.outside
        } else {
            &mut self.totals
        };
        if c.outstanding > 0 {
            part.add(s.kind, c.outstanding, c.outstanding_bytes);
        }
        add_into(&mut part.reachability, &reach);
        if suppressed || !resolved.in_focus {
            return;
        }
        if let Some(p) = &mut self.profile {
            p.add(s.kind, c, || cache.stack(resolved));
        }
        let key = (s.kind, cache.site_key(resolved));
        let site = self.sites.entry(key).or_insert_with(|| Site::empty(s.kind, cache.location(resolved)));
        if let Some(d) = &s.detail {
            site.received |= d.received;
            for n in &d.notes {
                if !site.detail.contains(n) {
                    site.detail.push(n.clone());
                    site.detail.sort();
                }
            }
        }
        add_into(&mut site.reachability, &reach);
        site.count += c.outstanding;
        site.bytes += c.outstanding_bytes;
        site.allocations += c.acquired;
        site.releases += c.released;
        site.stacks += 1;
        if let Some(oldest) = s.oldest_ns {
            let age = input.now_ns.saturating_sub(oldest) as f64 / 1e9;
            site.oldest_age_secs = site.oldest_age_secs.max(age);
        }
        // Show the stack that holds the most (or, when nothing is held, the first).
        let weight = c.outstanding_bytes.max(c.outstanding);
        let best = self.shown.entry(key).or_insert(0);
        if site.stack.is_empty() || weight > *best {
            *best = weight;
            site.stack = cache.stack(resolved);
            site.truncated = resolved.truncated.is_some();
            site.stack_end = resolved.truncated.clone();
            let stack_of = |id: Option<StackId>| id.and_then(|id| cache.get(id)).map(|r| cache.stack(r)).unwrap_or_default();
            site.site_from = resolved.origin.map(|_| resolved.from);
            site.created_stack = stack_of(resolved.origin.map(|o| o.created));
            site.server_stack = stack_of(resolved.origin.and_then(|o| o.server));
        }
    }

    /// Largest first; no two sites of a kind share a label (see [`labels`]).
    fn sites_sorted(&mut self) -> Vec<Site> {
        let mut sites: Vec<Site> = std::mem::take(&mut self.sites).into_values().collect();
        labels::make_unique(&mut sites);
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

/// The in-process recorders' counts, when there were any.
fn recorder_counters(r: &crate::inprocess::RecorderStats) -> Vec<(String, u64)> {
    if r.connected == 0 {
        return Vec::new();
    }
    vec![("recorder_processes".into(), r.connected), ("recorder_waits".into(), r.waits), ("recorder_lost".into(), r.lost)]
}
