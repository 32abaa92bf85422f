//! What each site held at each sample, in bounded memory: at most
//! [`MAX_POINTS`] samples. Over the whole session, a full history keeps
//! every other sample and samples half as often from then on (the span
//! covered doubles, the resolution halves); with a window, samples older
//! than it are dropped and the pace is the window over [`MAX_POINTS`].
//! A site that held nothing at every sample kept costs nothing.

use std::collections::{HashMap, VecDeque};

use crate::aggregate::ResourceKind;
use crate::report::model::Site;

/// Samples kept; a fit over them compares every pair (2016 pairs).
pub const MAX_POINTS: usize = 64;
/// The least time between two samples at the start.
pub const FIRST_GAP_SECS: f64 = 1.0;

/// A site across reports: its kind and location, with the label as built
/// before it was told apart from others (that suffix can come and go).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteKey {
    kind: ResourceKind,
    module: String,
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    label: String,
}

impl SiteKey {
    pub fn of(s: &Site) -> Self {
        let l = &s.site;
        Self {
            kind: s.kind,
            module: l.module.clone(),
            function: l.function.clone(),
            file: l.file.clone(),
            line: l.line,
            label: crate::report::labels::plain_label(l),
        }
    }

    pub fn kind(&self) -> ResourceKind {
        self.kind
    }
}

/// Outstanding (count, bytes) at each sample.
type Series = VecDeque<(u64, u64)>;

pub struct History {
    window: Option<f64>,
    gap: f64,
    /// Seconds since tracing began, one per sample.
    times: VecDeque<f64>,
    series: HashMap<SiteKey, Series>,
}

impl History {
    pub fn new(window: Option<f64>) -> Self {
        let gap = window.map_or(FIRST_GAP_SECS, |w| (w / MAX_POINTS as f64).max(FIRST_GAP_SECS));
        Self { window, gap, times: VecDeque::new(), series: HashMap::new() }
    }

    /// Seconds between two samples at the current pace.
    pub fn gap(&self) -> f64 {
        self.gap
    }

    pub fn last_time(&self) -> Option<f64> {
        self.times.back().copied()
    }

    /// Adds a sample at `t` of what the sites hold; false when `t` is not after the last one.
    pub fn record<'a>(&mut self, t: f64, sites: impl IntoIterator<Item = &'a Site>) -> bool {
        if self.last_time().is_some_and(|last| t <= last) {
            return false;
        }
        self.times.push_back(t);
        let len = self.times.len();
        for s in self.series.values_mut() {
            s.push_back((0, 0));
        }
        for site in sites {
            let key = SiteKey::of(site);
            let series = match self.series.get_mut(&key) {
                Some(s) => s,
                None if site.count > 0 => self.series.entry(key).or_insert_with(|| VecDeque::from(vec![(0, 0); len])),
                None => continue,
            };
            // Two sites folding to one key (it never happens) add up.
            let last = series.back_mut().expect("a value per sample");
            *last = (last.0 + site.count, last.1 + site.bytes);
        }
        self.trim(t);
        true
    }

    fn trim(&mut self, t: f64) {
        let mut drop = 0;
        if let Some(w) = self.window {
            drop = self.times.iter().take_while(|&&x| t - x > w).count();
        }
        let keep_every_other = self.times.len() - drop > MAX_POINTS;
        let len = self.times.len();
        // Newest first, so the latest sample is always kept.
        let kept = |i: usize| i >= drop && (!keep_every_other || (len - 1 - i).is_multiple_of(2));
        retain_at(&mut self.times, kept);
        for s in self.series.values_mut() {
            retain_at(s, kept);
        }
        if keep_every_other && self.window.is_none() {
            self.gap *= 2.0;
        }
        self.series.retain(|_, s| s.iter().any(|&(c, b)| c > 0 || b > 0));
    }

    /// The sample times and a site's (count, bytes) at each, when it has a series.
    pub fn series(&self, key: &SiteKey) -> Option<(&VecDeque<f64>, &Series)> {
        self.series.get(key).map(|s| (&self.times, s))
    }

    /// Sites with a series.
    pub fn keys(&self) -> impl Iterator<Item = &SiteKey> {
        self.series.keys()
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }
}

/// Keeps the elements whose index `kept` accepts.
fn retain_at<T>(v: &mut VecDeque<T>, kept: impl Fn(usize) -> bool) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        kept(i - 1)
    });
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
