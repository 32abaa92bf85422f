//! A tracing session: probes loaded, a target traced, records consumed.
//! The text report, JSON and the TUI all read the same session, through
//! snapshots of its state, so building a report never stalls the consumer.

mod config;
mod follow;
mod into_report;
mod placement;
mod reachability;
mod recorder;
mod start;
mod tables;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aggregate::StackId;
use crate::pipeline::{Consumer, Shared};
use crate::probes::{CounterReader, DescriptorProbes, LinkStats, Probes};
use crate::process::{monotonic_ns, Ended, Supervised, Watched};
use crate::report::attribution::SiteCache;
use crate::report::model::{Target, TargetState};
use crate::report::{self, Report, ReportInput};

pub use config::{SessionConfig, SessionError, TargetSpec};
use follow::Follower;
use placement::{lock, Placement};
pub use reachability::{ScanError, Scanned};

enum Handle {
    Child(Supervised),
    Pid(Watched),
}

/// How long an attached session reads on once its window closed: longer than
/// a busy program holds a short-lived handle, short beside any report.
pub const WINDOW_GRACE: Duration = Duration::from_millis(50);

pub struct Session {
    shared: Arc<Shared>,
    /// Shared with the supervisor or the follower, which move the allocator probes.
    probes: Arc<Mutex<Probes>>,
    placement: Arc<Mutex<Placement>>,
    consumer: Option<Consumer>,
    follower: Option<Follower>,
    counters: CounterReader,
    link_stats: Arc<LinkStats>,
    handle: Handle,
    target: Target,
    /// CLOCK_MONOTONIC when tracing started: durations count from here.
    started_ns: u64,
    /// How the target ended (unknown for an attached process), and when.
    ended: Option<(Option<Ended>, u64)>,
    detached: bool,
    /// `attach`: when the window of what is traced closed (see [`Self::close_window`]).
    window_closed: Option<Instant>,
    config: SessionConfig,
    cache: SiteCache,
    /// How descriptors are traced, for every report.
    descriptors: DescriptorProbes,
    /// The in-process recorder, when the heap is recorded in the process.
    recorder: Option<recorder::Recorder>,
}

impl Session {
    pub fn pid(&self) -> u32 {
        self.target.pid
    }

    /// Whether this session started the target (`run`).
    pub fn is_run(&self) -> bool {
        matches!(self.handle, Handle::Child(_))
    }

    /// Whether the target has ended (non-blocking). A `run` target's exit status is kept.
    pub fn poll_ended(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        match &self.handle {
            Handle::Child(c) => {
                if let Some((e, at)) = c.try_wait() {
                    self.ended = Some((Some(e), at));
                }
            }
            Handle::Pid(w) => {
                if w.has_exited() {
                    self.ended = Some((None, monotonic_ns()));
                }
            }
        }
        self.ended.is_some()
    }

    /// Blocks until a `run` target ends.
    pub fn wait_child(&mut self) {
        if let (None, Handle::Child(c)) = (&self.ended, &self.handle) {
            self.ended = Some(match c.wait() {
                Some((e, at)) => (Some(e), at),
                None => (None, monotonic_ns()),
            });
        }
    }

    /// Sends a signal to the target.
    pub fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = i32::try_from(self.target.pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// A report of the current state. Only the snapshot is taken under the
    /// pipeline's lock; symbolizing and attribution happen outside it. Ages
    /// and the duration run to the target's end once it has ended.
    pub fn report(&mut self) -> Report {
        let now_ns = self.ended.map_or_else(monotonic_ns, |(_, at)| at);
        let mut target = self.target.clone();
        target.duration_secs = now_ns.saturating_sub(self.started_ns) as f64 / 1e9;
        match &self.ended {
            Some((e, _)) => {
                target.state = TargetState::Exited;
                target.exit = e.map(into_report::exit_status);
            }
            None if self.detached => target.state = TargetState::Detached,
            None => {}
        }
        let (allocator, in_process) = {
            let p = lock(&self.placement);
            (p.target_allocator(), p.target_in_process())
        };
        if let Some(alloc) = allocator {
            target.allocator = Some(format!("{} ({})", alloc.path.display(), alloc.reason));
            target.heap_probes = Some(if in_process { "in-process" } else { "uprobes" }.to_owned());
            // A static binary's allocator is the program itself: its frames are
            // skipped by name (malloc, _int_malloc...), not by module.
            let path = (!alloc.in_executable).then(|| alloc.path.display().to_string());
            if self.config.attribution.allocator != path {
                // A new allocator (an exec): frames inside it are never the site; attribute anew.
                self.config.attribution.allocator = path;
                self.cache = SiteCache::default();
            }
        }
        let counters = self.counters.read();
        let snapshot = self.shared.state().snapshot(StackId(self.cache.len() as u32), now_ns);
        let input = ReportInput {
            target,
            counters,
            attribution: &self.config.attribution,
            suppressions: &self.config.suppressions,
            now_ns,
            sample_every: self.config.load.sample_every,
            keep_stacks: self.config.keep_stacks,
            descriptors: into_report::descriptor_tracing(&self.descriptors),
        };
        let mut report = report::build(&snapshot, &mut self.cache, input);
        let (attach_ms, detach_ms) = self.link_stats.means_ms();
        report.tracer.probe_links = Some(lock(&self.probes).link_mode().name().to_owned());
        report.tracer.probe_attach_ms = attach_ms;
        report.tracer.probe_detach_ms = detach_ms;
        report
    }

    /// `attach`, about to end: nothing acquired from now on counts, and what
    /// was acquired before and is released in the next moments (a busy
    /// program's socket opened just before) is seen released: [`Self::finish`]
    /// reads on for [`WINDOW_GRACE`] before its report.
    pub fn close_window(&mut self) {
        self.shared.state().agg.close_window(monotonic_ns());
        self.window_closed = Some(Instant::now());
    }

    /// Stops consuming (after draining everything) and following, takes the
    /// probes off; the final report.
    pub fn finish(mut self) -> Report {
        if let Some(at) = self.window_closed {
            std::thread::sleep(WINDOW_GRACE.saturating_sub(at.elapsed()));
        }
        if let Some(r) = &self.recorder {
            r.take_out(&self.shared);
        }
        if let Some(f) = self.follower.take() {
            f.stop();
        }
        if let Some(c) = self.consumer.take() {
            c.stop();
        }
        lock(&self.probes).release();
        if self.ended.is_none() {
            self.detached = true;
        }
        let mut st = self.shared.state();
        st.agg.adopt_silent(follow::is_process);
        st.agg.settle_exited();
        drop(st);
        self.report()
    }

    /// `attach`: holds the target still, scans its memory for what is lost
    /// and lets it go; how long it was stopped. (Under `run` each process
    /// is scanned at its end.)
    pub fn scan(&mut self) -> Result<reachability::Scanned, reachability::ScanError> {
        let glibc = reachability::is_glibc(lock(&self.placement).allocator_of(self.target.pid).as_deref());
        reachability::scan_running(&self.shared, self.target.pid, glibc, self.config.load.sample_every > 1, self.config.explain_reach)
    }

    /// Events ingested so far.
    pub fn events(&self) -> u64 {
        self.shared.state().events
    }
}
