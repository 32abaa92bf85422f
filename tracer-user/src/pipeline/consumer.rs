//! The ring-buffer consumer: one thread that drains records in batches into
//! the state. The kernel side wakes it only when a backlog builds up; in
//! between it polls, which keeps wake-ups off the traced program's hot path.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};

use super::Ingestor;
use crate::aggregate::State;
use crate::inprocess::InProcessReader;
use crate::process::monotonic_ns;

/// Records ingested per lock: bounds how long a snapshot can wait for the lock.
const BATCH: usize = 4096;
const POLL: Timespec = Timespec { tv_sec: 0, tv_nsec: 5_000_000 };

/// State shared between the consumer, the supervisor and the front end.
pub struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    sync_requested: AtomicU64,
    sync_done: Mutex<u64>,
    synced: Condvar,
    /// Wakes the consumer for a sync instead of letting it finish its poll
    /// (the supervisor syncs at every process exit, while the process waits).
    wake: Option<OwnedFd>,
}

impl Shared {
    pub fn new(state: State) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            sync_requested: AtomicU64::new(0),
            sync_done: Mutex::new(0),
            synced: Condvar::new(),
            wake: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok(),
        })
    }

    /// The state, locked. Hold it briefly: the consumer waits meanwhile.
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough counters; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once every record submitted before the call has been ingested.
    pub fn sync(&self) {
        let ticket = self.sync_requested.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(wake) = &self.wake {
            let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
        }
        let mut done = self.sync_done.lock().unwrap_or_else(|e| e.into_inner());
        while *done < ticket {
            done = self.synced.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub struct Consumer {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Consumer {
    /// `recorders`: the in-process recorders' ring, read beside the kernel's.
    pub fn start(
        ring: RingBuf<MapData>,
        shared: Arc<Shared>,
        ingestor: Ingestor,
        recorders: Option<InProcessReader>,
    ) -> std::io::Result<Self> {
        let s = shared.clone();
        let mut sources = Sources { ring, recorders, ingestor };
        let handle = std::thread::Builder::new().name("leaktrace-consumer".into()).spawn(move || consume(&mut sources, &s))?;
        Ok(Self { shared, handle: Some(handle) })
    }

    /// Drains what is left and stops.
    pub fn stop(mut self) {
        self.shared.sync();
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The consumer must keep up with targets that use every core: it runs at a
/// higher priority than they do (best effort; needs CAP_SYS_NICE, which root has).
const CONSUMER_NICE: i32 = -10;

/// What the consumer reads, and what it applies records with.
struct Sources {
    ring: RingBuf<MapData>,
    recorders: Option<InProcessReader>,
    ingestor: Ingestor,
}

impl Sources {
    /// One batch: the kernel's records, each after the recorders' records
    /// stamped before it; then, if the kernel's ring ran dry, the recorders'
    /// records it can no longer overtake (all of them when `flush`).
    /// Returns how many kernel records were read.
    fn drain(&mut self, state: &mut State, flush: bool) -> usize {
        let ingestor = &mut self.ingestor;
        let mut n = 0;
        while n < BATCH {
            let Some(item) = self.ring.next() else { break };
            if let Some(r) = &mut self.recorders {
                r.apply_until(crate::inprocess::ts_of(&item), |rec| ingestor.ingest(state, rec));
            }
            ingestor.ingest(state, &item);
            n += 1;
        }
        if n < BATCH {
            if let Some(r) = &mut self.recorders {
                let until = if flush { u64::MAX } else { InProcessReader::settled(monotonic_ns()) };
                r.apply_until(until, |rec| ingestor.ingest(state, rec));
                state.recorders = r.stats();
            }
        }
        n
    }
}

fn consume(sources: &mut Sources, shared: &Shared) {
    // Best effort: without CAP_SYS_NICE the consumer runs at the default priority.
    let _ = rustix::process::setpriority_process(None, CONSUMER_NICE);
    loop {
        // Read the request before draining: a drain that ends after this read
        // covers every record submitted before the request.
        let requested = shared.sync_requested.load(Ordering::SeqCst);
        let flush = requested > *shared.sync_done.lock().unwrap_or_else(|e| e.into_inner()) || shared.stop.load(Ordering::SeqCst);
        let n = sources.drain(&mut shared.state(), flush);
        if n == BATCH {
            continue;
        }
        {
            let mut done = shared.sync_done.lock().unwrap_or_else(|e| e.into_inner());
            if *done < requested {
                *done = requested;
                shared.synced.notify_all();
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let ring = &sources.ring;
        match &shared.wake {
            Some(wake) => {
                let mut fds = [PollFd::new(ring, PollFlags::IN), PollFd::new(wake, PollFlags::IN)];
                if poll(&mut fds, Some(&POLL)).is_ok() && !fds[1].revents().is_empty() {
                    let _ = rustix::io::read(wake, &mut [0u8; 8]);
                }
            }
            None => {
                let mut fds = [PollFd::new(ring, PollFlags::IN)];
                let _ = poll(&mut fds, Some(&POLL));
            }
        }
    }
}
