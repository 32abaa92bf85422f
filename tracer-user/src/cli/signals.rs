//! SIGINT, SIGTERM and SIGHUP are counted instead of killing leaktrace, so it
//! can detach cleanly and report. Under `run`, one sent to leaktrace by
//! another process (kill, a supervisor's stop request) goes on to the command
//! at once, and leaktrace reports when the command has ended; one from the
//! terminal reached the command already (the same foreground process group)
//! and is not sent twice. A thread of signal-hook's reads them; nothing
//! unsafe here.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

/// How many interrupts leaktrace has received so far.
#[derive(Clone)]
pub struct Interrupts {
    count: Arc<AtomicU32>,
    forwarding: Arc<Mutex<Forwarding>>,
}

#[derive(Default)]
struct Forwarding {
    /// The command's pid under `run` (0: not known yet, or `attach`).
    target: u32,
    /// A stop request that came before the command's pid was known: it is
    /// passed on as soon as it is.
    pending: Option<i32>,
}

/// Whether a signal leaktrace received (its cause, and its sender when known)
/// goes on to the command `target` (0 when not known yet).
fn forwarded(cause: &Cause, sender: Option<i32>, target: u32) -> bool {
    matches!(cause, Cause::Sent(_)) && sender.is_none_or(|p| target == 0 || p as u32 != target)
}

fn send(pid: u32, signal: i32) {
    let pid = rustix::process::Pid::from_raw(pid as i32);
    if let (Some(pid), Some(sig)) = (pid, rustix::process::Signal::from_named_raw(signal)) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn lock(f: &Mutex<Forwarding>) -> MutexGuard<'_, Forwarding> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

impl Interrupts {
    pub fn install() -> std::io::Result<Self> {
        let count = Arc::new(AtomicU32::new(0));
        let forwarding = Arc::new(Mutex::new(Forwarding::default()));
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])?;
        // SIGCHLD ignored (inherited) would reap the command unseen and lose its
        // exit status: a handler (a flag nobody reads) makes it waitable again.
        // The command still starts with it ignored (see ChildSignals).
        signal_hook::flag::register(SIGCHLD, Arc::new(AtomicBool::new(false)))?;
        let (c, f) = (count.clone(), forwarding.clone());
        std::thread::Builder::new().name("leaktrace-signals".into()).spawn(move || {
            for origin in signals.forever() {
                let mut fw = lock(&f);
                if forwarded(&origin.cause, origin.process.map(|p| p.pid), fw.target) {
                    match fw.target {
                        0 => fw.pending = Some(origin.signal),
                        target => send(target, origin.signal),
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        Ok(Self { count, forwarding })
    }

    /// `run`: from now on, signals sent to leaktrace by other processes go on
    /// to `pid` (one that came earlier goes now).
    pub fn forward_to(&self, pid: u32) {
        let mut fw = lock(&self.forwarding);
        fw.target = pid;
        if let Some(signal) = fw.pending.take() {
            send(pid, signal);
        }
    }

    pub fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// The counter, for the live view's loop.
    pub fn counter(&self) -> &AtomicU32 {
        &self.count
    }
}

#[cfg(test)]
mod tests {
    use signal_hook::low_level::siginfo::Sent;

    use super::*;

    #[test]
    fn only_signals_sent_by_other_processes_are_forwarded() {
        assert!(forwarded(&Cause::Sent(Sent::User), Some(100), 42));
        assert!(!forwarded(&Cause::Kernel, None, 42), "the terminal's Ctrl-C reached the command already");
        assert!(!forwarded(&Cause::Sent(Sent::User), Some(42), 42), "not back to the command that sent it");
        assert!(forwarded(&Cause::Sent(Sent::User), Some(100), 0), "held until the command's pid is known");
    }
}
