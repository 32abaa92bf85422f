//! Building a [`Report`] from the tracer's state.

use std::collections::{BTreeMap, HashMap};

use tracer_common::Counter;

use crate::aggregate::ResourceKind;
use crate::session::Tracer;

use super::attribute::{Attribution, SiteCache};
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
}

pub fn build(tracer: &mut Tracer, cache: &mut SiteCache, input: ReportInput) -> Report {
    let mut sites: HashMap<(ResourceKind, Location), Site> = HashMap::new();
    let mut totals = Totals::default();
    let mut outside = Totals::default();
    let mut largest: HashMap<(ResourceKind, Location), u64> = HashMap::new();
    let scale = u64::from(input.sample_every.max(1));
    for s in tracer.agg.summaries(input.now_ns) {
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
        let resolved = cache.resolve(tracer, input.attribution, s.stack).clone();
        if c.outstanding > 0 {
            totals.add(s.kind, c.outstanding, c.outstanding_bytes);
        }
        if input.suppressions.matches(&resolved.stack) {
            continue;
        }
        if !resolved.in_focus {
            if c.outstanding > 0 {
                outside.add(s.kind, c.outstanding, c.outstanding_bytes);
            }
            continue;
        }
        let key = (s.kind, resolved.site.clone());
        let site = sites.entry(key.clone()).or_insert_with(|| Site {
            kind: s.kind,
            count: 0,
            bytes: 0,
            allocations: 0,
            releases: 0,
            oldest_age_secs: 0.0,
            site: resolved.site.clone(),
            stack: Vec::new(),
            truncated: false,
        });
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
        let best = largest.entry(key).or_insert(0);
        if site.stack.is_empty() || weight > *best {
            *best = weight;
            site.stack = resolved.stack.clone();
            site.truncated = resolved.truncated;
        }
    }
    let mut sites: Vec<Site> = sites.into_values().collect();
    sites.sort_by(|a, b| (b.bytes, b.count, &a.site).cmp(&(a.bytes, a.count, &b.site)).then(a.kind.cmp(&b.kind)));

    let lost_events: u64 =
        Counter::ALL.iter().filter(|c| c.is_loss()).map(|&c| input.counters[c as usize]).sum::<u64>() + tracer.decode_errors;
    let counters: BTreeMap<String, u64> = Counter::ALL
        .iter()
        .map(|&c| (c.name().to_owned(), input.counters[c as usize]))
        .chain([("decode_errors".to_owned(), tracer.decode_errors), ("truncated_stacks".to_owned(), tracer.truncated_stacks)])
        .collect();
    let mut warnings: Vec<String> = tracer.warnings.iter().chain(tracer.sym.warnings()).cloned().collect();
    if tracer.truncated_stacks > 0 {
        warnings.push(format!(
            "{} stacks end early: frameless code (no frame pointers) past the copied stack top; their outer frames are missing",
            tracer.truncated_stacks
        ));
    }
    Report {
        schema: SCHEMA_VERSION,
        complete: lost_events == 0,
        lost_events,
        counters,
        target: input.target,
        totals,
        outside_focus: input.attribution.focus.is_some().then_some(outside),
        anomalies: tracer.agg.anomalies(),
        sample_every: (scale > 1).then_some(scale as u32),
        sites,
        warnings,
        tracer: TracerCost { cpu_secs: own_cpu_secs(), peak_rss_kib: own_peak_rss_kib(), events: tracer.events },
    }
}

fn own_usage() -> libc::rusage {
    // SAFETY: getrusage writes into the struct we own.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

fn own_cpu_secs() -> f64 {
    let ru = own_usage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn own_peak_rss_kib() -> u64 {
    own_usage().ru_maxrss as u64
}
