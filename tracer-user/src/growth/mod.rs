//! Growth over long runs: what each site holds, sampled while tracing, and
//! its trend (a Theil–Sen slope with its 95% interval and fit). A leak keeps
//! growing; a cache fills and then holds, and its slope is zero once it
//! holds for most of the window. `--max-growth` fails a site whose rate is
//! above the limit with 95% confidence (the low end of its interval).

mod history;
mod slope;

use std::collections::HashMap;
use std::time::Instant;

pub use history::{SiteKey, MAX_POINTS};
pub use slope::{theil_sen, Fit};

use crate::aggregate::ResourceKind;
use crate::report::model::{Growth, Report, TargetState};
use history::History;

/// Samples needed before a site has a trend.
pub const MIN_POINTS: usize = 8;

/// Samples what sites hold and puts each site's trend in the reports.
pub struct Tracker {
    history: History,
    /// Trends as of the last sample.
    fits: HashMap<SiteKey, Growth>,
    last: Option<Instant>,
}

impl Tracker {
    /// Over the last `window` seconds, or the whole session.
    pub fn new(window: Option<f64>) -> Self {
        Self { history: History::new(window), fits: HashMap::new(), last: Some(Instant::now()) }
    }

    /// Whether a sample is due (the quiet loop builds a report for it).
    pub fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed().as_secs_f64() >= self.history.gap())
    }

    /// Samples `report` when due (always once the target has ended or is
    /// left), and sets each site's trend.
    pub fn observe(&mut self, report: &mut Report) {
        let last = report.target.state != TargetState::Running;
        if (self.due() || last) && self.history.record(report.target.duration_secs, &report.sites) {
            self.last = Some(Instant::now());
            self.refit();
        }
        for s in &mut report.sites {
            s.growth = self.fits.get(&SiteKey::of(s)).copied();
        }
    }

    fn refit(&mut self) {
        self.fits.clear();
        if self.history.len() < MIN_POINTS {
            return;
        }
        let keys: Vec<SiteKey> = self.history.keys().cloned().collect();
        for key in keys {
            if let Some(g) = self.fit(&key) {
                self.fits.insert(key, g);
            }
        }
    }

    fn fit(&self, key: &SiteKey) -> Option<Growth> {
        let (times, series) = self.history.series(key)?;
        let x: Vec<f64> = times.iter().copied().collect();
        let counts: Vec<f64> = series.iter().map(|&(c, _)| c as f64).collect();
        let bytes: Vec<f64> = series.iter().map(|&(_, b)| b as f64).collect();
        let (count, bytes) = (theil_sen(&x, &counts)?, theil_sen(&x, &bytes)?);
        let own = if key_is_heap(key) { bytes } else { count };
        Some(Growth {
            window_secs: x[x.len() - 1] - x[0],
            points: x.len() as u32,
            count_per_min: count.slope * 60.0,
            bytes_per_min: bytes.slope * 60.0,
            low_per_min: own.low * 60.0,
            high_per_min: own.high * 60.0,
            fit: own.r2,
        })
    }

    /// Samples taken and kept.
    pub fn samples(&self) -> usize {
        self.history.len()
    }
}

fn key_is_heap(key: &SiteKey) -> bool {
    key.kind() == ResourceKind::Heap
}

/// `--max-growth` and `--max-growth-handles`, per minute and site.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub bytes_per_min: Option<f64>,
    pub handles_per_min: Option<f64>,
}

impl Limits {
    pub fn is_set(&self) -> bool {
        self.bytes_per_min.is_some() || self.handles_per_min.is_some()
    }

    fn of(&self, kind: ResourceKind) -> Option<f64> {
        if kind == ResourceKind::Heap {
            self.bytes_per_min
        } else {
            self.handles_per_min
        }
    }
}

/// One line per site growing faster than its limit (95% sure).
pub fn over_limits(report: &Report, limits: Limits) -> Vec<String> {
    let mut out = Vec::new();
    for s in &report.sites {
        let (Some(g), Some(limit)) = (&s.growth, limits.of(s.kind)) else { continue };
        if g.low_per_min > limit {
            let unit = if s.kind == ResourceKind::Heap { "bytes" } else { "handles" };
            out.push(format!("[{}] {} grows {} (over {limit} {unit}/min)", s.kind, s.site.place(), g.describe(s.kind)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
