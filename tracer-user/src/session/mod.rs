//! A tracing session: probes loaded, a target traced, records consumed.
//! The text report, JSON and the TUI all read the same session, through
//! snapshots of its state, so building a report never stalls the consumer.

mod start;
mod tables;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::aggregate::StackId;
use crate::pipeline::{Consumer, Shared};
use crate::probes::{CounterReader, Probes};
use crate::process::{monotonic_ns, Ended, Supervised, Watched};
use crate::report::model::{ExitStatus, Target, TargetState};
use crate::report::{self, Report, ReportInput, SiteCache};

pub use start::{SessionConfig, SessionError, TargetSpec};

enum Handle {
    Child(Supervised),
    Pid(Watched),
}

pub struct Session {
    shared: Arc<Shared>,
    /// Shared with the supervisor, which attaches followed children.
    _probes: Arc<Mutex<Probes>>,
    consumer: Option<Consumer>,
    counters: CounterReader,
    handle: Handle,
    target: Target,
    started: Instant,
    ended: Option<Option<Ended>>,
    detached: bool,
    config: SessionConfig,
    cache: SiteCache,
}

impl Session {
    pub fn pid(&self) -> u32 {
        self.target.pid
    }

    /// Whether the target has ended (non-blocking). A `run` target's exit status is kept.
    pub fn poll_ended(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        match &self.handle {
            Handle::Child(c) => {
                if let Some(e) = c.try_wait() {
                    self.ended = Some(Some(e));
                }
            }
            Handle::Pid(w) => {
                if w.has_exited() {
                    self.ended = Some(None);
                }
            }
        }
        self.ended.is_some()
    }

    /// Blocks until a `run` target ends.
    pub fn wait_child(&mut self) {
        if let (None, Handle::Child(c)) = (&self.ended, &self.handle) {
            self.ended = Some(c.wait());
        }
    }

    /// Sends a signal to the target (a second Ctrl-C under `run`).
    pub fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = i32::try_from(self.target.pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// A report of the current state. Only the snapshot is taken under the
    /// pipeline's lock; symbolizing and attribution happen outside it.
    pub fn report(&mut self) -> Report {
        let mut target = self.target.clone();
        target.duration_secs = self.started.elapsed().as_secs_f64();
        match &self.ended {
            Some(e) => {
                target.state = TargetState::Exited;
                target.exit = e.map(ExitStatus::from);
            }
            None if self.detached => target.state = TargetState::Detached,
            None => {}
        }
        let counters = self.counters.read();
        let now_ns = monotonic_ns();
        let snapshot = self.shared.state().snapshot(StackId(self.cache.len() as u32), now_ns);
        let input = ReportInput {
            target,
            counters,
            attribution: &self.config.attribution,
            suppressions: &self.config.suppressions,
            now_ns,
            sample_every: self.config.load.sample_every,
        };
        report::build(&snapshot, &mut self.cache, input)
    }

    /// Stops consuming (after draining everything) and detaches; the final report.
    pub fn finish(mut self) -> Report {
        if let Some(c) = self.consumer.take() {
            c.stop();
        }
        if self.ended.is_none() {
            self.detached = true;
        }
        self.report()
    }

    /// Events ingested so far.
    pub fn events(&self) -> u64 {
        self.shared.state().events
    }
}
