//! Where the trace loop leaves its reports and the HTTP thread takes them.
//! A scrape asks for a fresh report; the trace loop, which owns the
//! session, builds one at its next tick (the live view at its next
//! refresh) and wakes the scrape, which otherwise serves the last one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::report::Report;

/// A report as published, with the event rate since the one before.
#[derive(Clone)]
pub struct Published {
    pub report: Arc<Report>,
    pub events_per_sec: f64,
}

#[derive(Default)]
struct State {
    latest: Option<Published>,
    generation: u64,
    wanted: bool,
    at: Option<Instant>,
}

#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    published: Condvar,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a scrape waits for a fresh report.
    pub fn wanted(&self) -> bool {
        self.lock().wanted
    }

    pub fn publish(&self, report: &Report) {
        let mut s = self.lock();
        let now = Instant::now();
        let events_per_sec = match (&s.latest, s.at) {
            (Some(prev), Some(at)) if now > at => {
                report.tracer.events.saturating_sub(prev.report.tracer.events) as f64 / (now - at).as_secs_f64()
            }
            (Some(prev), _) => prev.events_per_sec,
            _ => 0.0,
        };
        s.latest = Some(Published { report: Arc::new(report.clone()), events_per_sec });
        s.at = Some(now);
        s.generation += 1;
        s.wanted = false;
        self.published.notify_all();
    }

    /// A report at most `wait` older than the request when the trace loop
    /// answers in time, else the last one (None before the first).
    pub fn fresh(&self, wait: Duration) -> Option<Published> {
        let mut s = self.lock();
        let seen = s.generation;
        s.wanted = true;
        let (s, _) = self.published.wait_timeout_while(s, wait, |s| s.generation == seen).unwrap_or_else(|e| e.into_inner());
        s.latest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Target;

    #[test]
    fn a_scrape_waits_for_the_next_report_and_gets_the_event_rate() {
        let hub = Arc::new(Hub::default());
        assert!(hub.fresh(Duration::from_millis(1)).is_none(), "nothing published yet");
        let mut r = Report::of_sites(Target::default(), Vec::new(), 0);
        hub.publish(&r);
        let h = hub.clone();
        let scrape = std::thread::spawn(move || h.fresh(Duration::from_secs(10)).unwrap());
        while !hub.wanted() {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        r.tracer.events = 1000;
        hub.publish(&r);
        let got = scrape.join().unwrap();
        assert_eq!(got.report.tracer.events, 1000);
        assert!(got.events_per_sec > 1000.0 && got.events_per_sec < 10_000.0, "{}", got.events_per_sec);
        assert!(!hub.wanted());
    }
}
