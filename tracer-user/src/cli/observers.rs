//! What watches the session beside the trace loop: the growth samples and
//! the `--metrics` endpoint. Every report the loop builds (the live view's
//! refreshes, `--interval`, the final one) goes through here. The quiet loop
//! builds one when a scrape waits, and when a growth sample is due if growth
//! was asked for (`--max-growth`, `--max-growth-handles`, `--growth-window`,
//! `--metrics`): a report while tracing symbolizes while the pipeline holds
//! its own peak, so a quiet run without them builds none.

use super::Options;
use crate::growth::{self, Tracker};
use crate::metrics::MetricsServer;
use crate::report::Report;
use crate::session::Session;
use crate::tui;
use crate::verdict::ExitCode;

pub struct Observers {
    growth: Tracker,
    /// The quiet loop samples growth.
    sample: bool,
    metrics: Option<MetricsServer>,
}

impl Observers {
    /// Before tracing: binds `--metrics` (a taken port is an input error).
    pub fn prepare(opts: &Options) -> anyhow::Result<Self> {
        let metrics = match opts.metrics {
            Some(addr) => Some(MetricsServer::start(addr, opts.metrics_top as usize)?),
            None => None,
        };
        let sample = opts.max_growth.is_some() || opts.max_growth_handles.is_some() || opts.growth_window.is_some() || metrics.is_some();
        Ok(Self { growth: Tracker::new(opts.growth_window), sample, metrics })
    }

    /// A report of the session, with each site's trend; scrapes see it too.
    pub fn report(&mut self, session: &mut Session) -> Report {
        let mut r = session.report();
        self.seen(&mut r);
        r
    }

    fn seen(&mut self, r: &mut Report) {
        self.growth.observe(r);
        if let Some(m) = &self.metrics {
            m.publish(r);
        }
    }

    /// Called at every tick of the quiet loop.
    pub fn tick(&mut self, session: &mut Session) {
        if (self.sample && self.growth.due()) || self.metrics.as_ref().is_some_and(MetricsServer::wanted) {
            self.report(session);
        }
    }

    /// The final report, with its trends (and served until leaktrace exits).
    pub fn finish(&mut self, mut report: Report) -> Report {
        self.seen(&mut report);
        report
    }

    /// The session as the live view reads it.
    pub fn source<'a>(&'a mut self, session: &'a mut Session) -> Observed<'a> {
        Observed { observers: self, session }
    }
}

pub struct Observed<'a> {
    observers: &'a mut Observers,
    session: &'a mut Session,
}

impl tui::Source for Observed<'_> {
    fn report(&mut self) -> Report {
        self.observers.report(self.session)
    }
    fn events(&self) -> u64 {
        self.session.events()
    }
    fn poll_ended(&mut self) -> bool {
        self.session.poll_ended()
    }
    fn pid(&self) -> u32 {
        self.session.pid()
    }
}

/// `--max-growth`: names each site over its limit; the verdict worsens to
/// LeaksFound when one is (a site that keeps growing leaks).
pub fn judge_growth(report: &Report, opts: &Options, code: ExitCode) -> ExitCode {
    let limits = growth::Limits { bytes_per_min: opts.max_growth, handles_per_min: opts.max_growth_handles.or(opts.max_growth) };
    if !limits.is_set() {
        return code;
    }
    let over = growth::over_limits(report, limits);
    for line in &over {
        eprintln!("leaktrace: --max-growth: {line}");
    }
    if !report.sites.iter().any(|s| s.growth.is_some()) && report.sites.iter().any(|s| s.count > 0) {
        eprintln!(
            "leaktrace: --max-growth: no site has a trend yet (a trend needs {} samples, one a second or slower): growth not judged",
            growth::MIN_POINTS
        );
    }
    if code == ExitCode::Clean && !over.is_empty() {
        ExitCode::LeaksFound
    } else {
        code
    }
}
