//! Threads of the traced processes, and when a process is really ending.
//!
//! Every thread is traced (PTRACE_O_TRACECLONE), so when a process exits
//! each of its threads stops at PTRACE_EVENT_EXIT, killed ones included. A
//! thread at its exit stop is held there while the rest of its process is on
//! the way (each has SIGKILL pending or is already exiting); when the last
//! arrives, the process's memory and every thread's registers can be read at
//! once, before anything is torn down. A thread that ends alone (in the
//! `exit` system call, pthread_exit) while others live, and the threads an
//! exec in another thread kills, are let go at once. One of those may still
//! be on its way out when the process ends: it stops at its exit no more, so
//! the held threads are looked at again until it is gone (see [`Tasks::recheck`]).

use nix::sys::signal::Signal;
use std::collections::{HashMap, HashSet};

/// The kernel's PF_EXITING: the task is in do_exit.
const PF_EXITING: u64 = 0x4;
const SIGKILL_BIT: u64 = 1 << (Signal::SIGKILL as i32 - 1);

/// What to do with a thread at its exit stop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AtExit {
    /// Keep it stopped: other threads of its process are still on their way.
    Hold,
    /// Resume these threads. `ending`: they are all of the process, stopped
    /// at its end (the hook runs first).
    Release { tids: Vec<i32>, ending: bool },
}

#[derive(Default)]
pub(super) struct Tasks {
    /// Traced threads other than the leaders, with their process.
    threads: HashMap<i32, i32>,
    /// Threads held at their exit stop, per process.
    held: HashMap<i32, Vec<i32>>,
    /// Processes known to be exiting as a whole.
    ending: HashSet<i32>,
}

/// A task's state letter, flags, and whether SIGKILL is pending for it.
fn task_state(tgid: i32, tid: i32) -> Option<(char, u64, bool)> {
    let stat = super::proc_text(&format!("/proc/{tgid}/task/{tid}/stat"))?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    let status = super::proc_text(&format!("/proc/{tgid}/task/{tid}/status"))?;
    let pending =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    Some((state, flags, (pending("SigPnd:") | pending("ShdPnd:")) & SIGKILL_BIT != 0))
}

/// The system call a task is in (`None` while it runs).
fn syscall_of(tgid: i32, tid: i32) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/syscall")).ok()?.split_whitespace().next()?.parse().ok()
}

/// The tasks of a process that are neither gone nor zombies, by how they stand.
fn others(tgid: i32, skip: &[i32]) -> (Vec<i32>, Vec<i32>) {
    let (mut dying, mut living) = (Vec::new(), Vec::new());
    let Ok(dir) = std::fs::read_dir(format!("/proc/{tgid}/task")) else { return (dying, living) };
    for tid in dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
        if skip.contains(&tid) {
            continue;
        }
        match task_state(tgid, tid) {
            None | Some(('Z' | 'X' | 'x', _, _)) => {}
            Some((_, flags, killed)) if flags & PF_EXITING != 0 || killed => dying.push(tid),
            Some(_) => living.push(tid),
        }
    }
    (dying, living)
}

impl Tasks {
    /// A new thread of process `tgid` (PTRACE_EVENT_CLONE, or its first stop).
    pub fn add_thread(&mut self, tid: i32, tgid: i32) {
        if tid != tgid {
            self.threads.insert(tid, tgid);
        }
    }

    /// The process of a traced task that is not known yet: `Some` when it is
    /// another process's thread (not a new process).
    pub fn thread_of_unknown(&mut self, tid: i32) -> Option<i32> {
        let status = super::proc_text(&format!("/proc/{tid}/status"))?;
        let tgid: i32 = status.lines().find_map(|l| l.strip_prefix("Tgid:"))?.trim().parse().ok()?;
        (tgid != tid).then(|| {
            self.add_thread(tid, tgid);
            tgid
        })
    }

    /// The process a traced task belongs to.
    pub fn process_of(&self, tid: i32) -> i32 {
        self.threads.get(&tid).copied().unwrap_or(tid)
    }

    pub fn is_thread(&self, tid: i32) -> bool {
        self.threads.contains_key(&tid)
    }

    /// A thread has ended (reaped).
    pub fn gone(&mut self, tid: i32) {
        self.threads.remove(&tid);
    }

    /// Whether some process's threads are held for its end.
    pub fn holding(&self) -> bool {
        !self.ending.is_empty()
    }

    /// The processes held for their end whose other tasks are all gone now
    /// (a thread that ended alone and was on its way out, a task that never
    /// stops at its exit): each with its threads, to release.
    pub fn recheck(&mut self) -> Vec<(i32, Vec<i32>)> {
        let done: Vec<i32> = self
            .ending
            .iter()
            .copied()
            .filter(|tgid| self.held.get(tgid).is_some_and(|held| others(*tgid, held) == (Vec::new(), Vec::new())))
            .collect();
        done.into_iter()
            .map(|tgid| {
                self.ending.remove(&tgid);
                (tgid, self.held.remove(&tgid).unwrap_or_default())
            })
            .collect()
    }

    /// `tid` stopped at its exit: hold it, or release what can go.
    /// Returns its process with the decision.
    pub fn exit_stop(&mut self, tid: i32) -> (i32, AtExit) {
        let tgid = self.process_of(tid);
        let held = self.held.entry(tgid).or_default();
        held.push(tid);
        let (dying, living) = others(tgid, held);
        let decision = if self.ending.contains(&tgid) || living.is_empty() {
            if dying.is_empty() && living.is_empty() {
                self.ending.remove(&tgid);
                AtExit::Release { tids: self.held.remove(&tgid).unwrap_or_default(), ending: true }
            } else {
                self.ending.insert(tgid);
                AtExit::Hold
            }
        } else {
            let alone = syscall_of(tgid, tid) == Some(nix::libc::SYS_exit);
            let exec = living.iter().any(|&t| matches!(syscall_of(tgid, t), Some(nix::libc::SYS_execve | nix::libc::SYS_execveat)));
            if alone || exec {
                AtExit::Release { tids: self.held.remove(&tgid).unwrap_or_default(), ending: false }
            } else {
                // exit_group or a fatal signal: the others are on their way (a
                // thread may not show its pending SIGKILL yet).
                self.ending.insert(tgid);
                AtExit::Hold
            }
        };
        (tgid, decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_process_held_for_its_end_is_released_once_no_other_task_is_left() {
        // This test process has other threads (the harness's): still held.
        let me = std::process::id() as i32;
        let mut tasks = Tasks::default();
        tasks.held.insert(me, vec![me]);
        tasks.ending.insert(me);
        assert!(tasks.holding());
        assert!(tasks.recheck().is_empty(), "the harness's threads live on");
        // A one-threaded process whose only task is held: nothing else to wait for.
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        tasks.held.insert(pid, vec![pid]);
        tasks.ending.insert(pid);
        assert_eq!(tasks.recheck(), vec![(pid, vec![pid])]);
        assert!(tasks.holding(), "this process still is");
        assert!(!tasks.held.contains_key(&pid) && !tasks.ending.contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
