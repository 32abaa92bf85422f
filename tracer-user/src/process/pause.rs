//! Holding a running process still for a moment (`attach`): every thread
//! seized (PTRACE_SEIZE) and interrupted (PTRACE_INTERRUPT), then detached.
//! A signal that arrives meanwhile is delivered at the detach, so the target
//! behaves as if untraced; a thread created while the others stop is seized
//! too; one that exits is left out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::libc;

use nix::sys::ptrace::{self, Options};
use nix::unistd::Pid;
use rustix::process::WaitOptions;

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("pid {0} cannot be stopped: {1} (is it traced by another program?)")]
    Seize(u32, nix::Error),
    #[error("pid {0} has no thread left")]
    Gone(u32),
}

fn tasks(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// Waits for a seized, interrupted thread to stop: the signal to deliver at
/// the detach (one that arrived first, real-time ones included), or `None`
/// when the thread is gone.
fn wait_stopped(tid: u32) -> Option<i32> {
    let pid = rustix::process::Pid::from_raw(tid as i32)?;
    let all = WaitOptions::from_bits_retain(libc::__WALL as u32);
    loop {
        let status = match rustix::process::waitpid(Some(pid), all) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(Some((_, status))) => status,
            _ => return None,
        };
        if status.exited() || status.signaled() {
            return None;
        }
        if let Some(sig) = status.stopping_signal() {
            // PTRACE_EVENT_STOP (the interrupt, or a group-stop kept as it
            // was): nothing to deliver; else a signal stopped for the tracer.
            return Some(if status.as_raw() >> 16 == libc::PTRACE_EVENT_STOP { 0 } else { sig });
        }
    }
}

/// Lets a stopped thread go, delivering `sig` (0 for none). nix's detach
/// cannot name the real-time signals, which the target must still receive.
fn detach(tid: u32, sig: i32) {
    // SAFETY: a detach request on our own stopped tracee; no pointer is passed.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, tid as libc::pid_t, 0usize, sig as libc::c_long) };
}

/// Every thread of a process, stopped (seized and interrupted) until dropped,
/// when each goes on with the signal that arrived for it meanwhile.
pub struct Stopped {
    /// Thread → the signal to deliver when it goes (None: it is gone).
    threads: HashMap<u32, Option<i32>>,
    leader: u32,
}

impl Stopped {
    /// Stops every thread of `pid`, those created meanwhile included.
    pub fn stop(pid: u32) -> Result<Self, PauseError> {
        let mut stopped = Self { threads: HashMap::new(), leader: pid };
        loop {
            let new: Vec<u32> = tasks(pid).into_iter().filter(|t| !stopped.threads.contains_key(t)).collect();
            if new.is_empty() {
                break;
            }
            for &tid in &new {
                let t = Pid::from_raw(tid as i32);
                match ptrace::seize(t, Options::empty()) {
                    Ok(()) => {}
                    Err(nix::Error::ESRCH) => continue,
                    Err(e) if stopped.threads.is_empty() => return Err(PauseError::Seize(pid, e)),
                    Err(_) => continue,
                }
                let _ = ptrace::interrupt(t);
                stopped.threads.insert(tid, None);
            }
            for &tid in &new {
                if stopped.threads.contains_key(&tid) {
                    stopped.threads.insert(tid, wait_stopped(tid));
                }
            }
        }
        if stopped.tids().is_empty() {
            return Err(PauseError::Gone(pid));
        }
        Ok(stopped)
    }

    /// The stopped threads, the leader first when it is there.
    pub fn tids(&self) -> Vec<u32> {
        let mut tids: Vec<u32> = self.threads.iter().filter(|(_, s)| s.is_some()).map(|(&t, _)| t).collect();
        tids.sort_by_key(|&t| (t != self.leader, t));
        tids
    }

    /// A signal that stopped `tid` while the tracer ran it: delivered when it goes.
    pub fn keep_signal(&mut self, tid: u32, sig: i32) {
        if let Some(s @ Some(0)) = self.threads.get_mut(&tid) {
            *s = Some(sig);
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for (&tid, sig) in &self.threads {
            detach(tid, sig.unwrap_or(0));
        }
    }
}

/// Stops every thread of `pid`, runs `f` with their ids (the leader first
/// when it is there) and lets them go; returns what `f` returned and how long
/// the process was stopped (from the first seize to the last detach).
pub fn while_stopped<T>(pid: u32, f: impl FnOnce(&[u32]) -> T) -> Result<(T, Duration), PauseError> {
    let started = Instant::now();
    let stopped = Stopped::stop(pid)?;
    let out = f(&stopped.tids());
    drop(stopped);
    Ok((out, started.elapsed()))
}
