//! A process's allocator probes, and taking them off without making anyone
//! wait: closing a uprobe link waits for RCU grace periods (one per
//! perf-event uprobe), so links are handed to [`teardown`](crate::probes::teardown)
//! on a thread of their own, never on the thread that supervises the target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::probes::teardown::{self, HeldLink};

/// Attach and detach times of the allocator probes, per process, for the
/// report's account of leaktrace's own cost.
#[derive(Debug, Default)]
pub struct LinkStats {
    attached: AtomicU64,
    attach_ns: AtomicU64,
    detached: AtomicU64,
    detach_ns: AtomicU64,
}

impl LinkStats {
    pub(crate) fn record_attach(&self, took: Duration) {
        self.attached.fetch_add(1, Ordering::Relaxed);
        self.attach_ns.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    fn record_detach(&self, took: Duration) {
        self.detach_ns.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.detached.fetch_add(1, Ordering::Relaxed);
    }

    /// Mean milliseconds to attach one process's probes, and to detach them
    /// (over the detaches finished so far).
    pub fn means_ms(&self) -> (Option<f64>, Option<f64>) {
        let mean = |n: &AtomicU64, ns: &AtomicU64| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then(|| ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e6)
        };
        (mean(&self.attached, &self.attach_ns), mean(&self.detached, &self.detach_ns))
    }
}

/// One process's allocator probes.
pub struct ProcessLinks {
    /// The allocator file they sit on (device, inode).
    pub allocator: (u64, u64),
    /// Link descriptors or aya's perf links: dropping one detaches it.
    pub(crate) links: Vec<Box<dyn HeldLink>>,
    pub(crate) stats: Arc<LinkStats>,
}

impl ProcessLinks {
    /// Detaches on a thread of its own and returns at once.
    pub fn detach_in_background(self) {
        let Self { links, stats, .. } = self;
        if links.is_empty() {
            return;
        }
        let work = move || {
            let started = Instant::now();
            teardown::release(links);
            stats.record_detach(started.elapsed());
        };
        // Without a thread (resource limits) the closure, and the links with
        // it, are dropped here: detached on this thread, slower, still correct.
        let _ = std::thread::Builder::new().name("leaktrace-detach".into()).spawn(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_per_process_and_absent_before_any() {
        let stats = Arc::new(LinkStats::default());
        assert_eq!(stats.means_ms(), (None, None));
        stats.record_attach(Duration::from_millis(2));
        stats.record_attach(Duration::from_millis(4));
        let links = ProcessLinks {
            allocator: (1, 2),
            links: vec![Box::new(std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))],
            stats: stats.clone(),
        };
        links.detach_in_background();
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.means_ms().1.is_none() {
            assert!(Instant::now() < deadline, "the background detach never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(stats.means_ms().0, Some(3.0));
    }
}
