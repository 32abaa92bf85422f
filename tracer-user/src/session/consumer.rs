//! The ring-buffer consumer: one thread that drains records in batches into
//! the tracer. The kernel side wakes it only when a backlog builds up; in
//! between it polls, which keeps wake-ups off the traced program's hot path.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};

use super::Tracer;

/// Records ingested per lock: bounds how long a TUI frame can wait for the lock.
const BATCH: usize = 4096;
const POLL_MS: i32 = 5;

/// State shared between the consumer, the supervisor and the front end.
pub struct Shared {
    tracer: Mutex<Tracer>,
    stop: AtomicBool,
    sync_requested: AtomicU64,
    sync_done: Mutex<u64>,
    synced: Condvar,
}

impl Shared {
    pub fn new(tracer: Tracer) -> Arc<Self> {
        Arc::new(Self {
            tracer: Mutex::new(tracer),
            stop: AtomicBool::new(false),
            sync_requested: AtomicU64::new(0),
            sync_done: Mutex::new(0),
            synced: Condvar::new(),
        })
    }

    pub fn tracer(&self) -> MutexGuard<'_, Tracer> {
        // A panic while holding the lock leaves consistent-enough counters; keep going.
        self.tracer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once every record submitted before the call has been ingested.
    pub fn sync(&self) {
        let ticket = self.sync_requested.fetch_add(1, Ordering::SeqCst) + 1;
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
    pub fn start(mut ring: RingBuf<MapData>, shared: Arc<Shared>) -> Self {
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("leaktrace-consumer".into())
            .spawn(move || consume(&mut ring, &s))
            .expect("spawning the consumer thread");
        Self { shared, handle: Some(handle) }
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

fn consume(ring: &mut RingBuf<MapData>, shared: &Shared) {
    // SAFETY: adjusting this thread's own priority (tid 0 = the caller).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, CONSUMER_NICE) };
    let fd = ring.as_raw_fd();
    loop {
        // Read the request before draining: a drain that ends after this read
        // covers every record submitted before the request.
        let requested = shared.sync_requested.load(Ordering::SeqCst);
        let mut n = 0;
        {
            let mut tracer = shared.tracer();
            while n < BATCH {
                let Some(item) = ring.next() else { break };
                tracer.ingest(&item);
                n += 1;
            }
        }
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
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one valid descriptor.
        unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
    }
}
