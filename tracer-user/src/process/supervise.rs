//! The ptrace loop of `leaktrace run`: what each stop of a traced process
//! means, and restarting it as if it were not traced.

use std::collections::{HashMap, HashSet};

use nix::libc;

use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rustix::process::{WaitOptions, WaitStatus};

use super::exits::{AtExit, Tasks};

/// Why the target could not be started (spawn.rs).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("cannot execute {path}: {reason}")]
    Exec { path: String, reason: String },
    #[error("starting the target failed: {0}")]
    Os(String),
}

/// How the target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

pub(super) enum ToMain {
    Ready(u32),
    Failed(SpawnError),
    Started,
    Ended(Ended, u64),
}

/// What the supervisor reports while the target runs; called on its thread
/// while the process concerned is stopped. Keep them short: the process waits.
pub trait Hooks: Send {
    /// A new image (after exec), before its first instruction.
    fn exec(&mut self, pid: u32);
    /// A followed child, stopped before its first instruction; its parent when known.
    fn new_process(&mut self, pid: u32, parent: Option<u32>);
    /// A traced process at its end: every one of its threads (`threads`,
    /// the leader first when it is still there) stopped at its exit, its
    /// memory and each thread's registers still intact.
    fn exit_stop(&mut self, pid: u32, threads: &[u32]);
    /// A traced process (all its threads) is gone.
    fn gone(&mut self, pid: u32);
    /// A signal the kernel sent thread `tid` for leaktrace (not a process
    /// for the target): true when the hook took it, and it is not delivered.
    fn intercept(&mut self, _tid: u32, _sig: i32) -> bool {
        false
    }
}

const EVENT_FORK: i32 = libc::PTRACE_EVENT_FORK;
const EVENT_CLONE: i32 = libc::PTRACE_EVENT_CLONE;
const EVENT_VFORK: i32 = libc::PTRACE_EVENT_VFORK;
const EVENT_EXEC: i32 = libc::PTRACE_EVENT_EXEC;
const EVENT_EXIT: i32 = libc::PTRACE_EVENT_EXIT;
const EVENT_STOP: i32 = libc::PTRACE_EVENT_STOP;

pub(super) fn seize(pid: Pid, follow_forks: bool) -> nix::Result<()> {
    // Threads too: each stops at its exit, so a process's end is seen with
    // all of them (see exits.rs), and signals sent to any are seen.
    let mut opts = Options::PTRACE_O_TRACEEXEC | Options::PTRACE_O_TRACEEXIT | Options::PTRACE_O_EXITKILL | Options::PTRACE_O_TRACECLONE;
    if follow_forks {
        opts |= Options::PTRACE_O_TRACEFORK | Options::PTRACE_O_TRACEVFORK;
    }
    ptrace::seize(pid, opts)
}

pub(super) fn kill_and_reap(pid: Pid) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    while let Ok(Some((who, status))) = wait_any() {
        if who == pid.as_raw() && (status.exited() || status.signaled()) {
            return;
        }
    }
}

/// Any child or tracee of this process (`__WALL`): a process runs one supervisor at a time.
fn wait_any() -> rustix::io::Result<Option<(i32, WaitStatus)>> {
    wait_with(WaitOptions::empty())
}

/// [`wait_any`] with more options (`NOHANG`: `None` when nothing changed).
fn wait_with(options: WaitOptions) -> rustix::io::Result<Option<(i32, WaitStatus)>> {
    let all = WaitOptions::from_bits_retain(libc::__WALL as u32) | options;
    loop {
        match rustix::process::waitpid(None, all) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map(|o| o.map(|(p, s)| (p.as_raw_nonzero().get(), s))),
        }
    }
}

fn ended(status: WaitStatus) -> Option<Ended> {
    status.exit_status().map(Ended::Code).or_else(|| status.terminating_signal().map(Ended::Signal))
}

enum Restart {
    Continue,
    /// Stay in a group-stop (a stop signal) until SIGCONT.
    Listen,
}

/// Restarts a stopped tracee, delivering `sig` (0 for none). nix covers
/// neither PTRACE_LISTEN nor signals outside its `Signal` type (the
/// real-time ones), which the target must still receive.
fn restart(pid: i32, how: Restart, sig: i32) {
    let request = match how {
        Restart::Continue => libc::PTRACE_CONT,
        Restart::Listen => libc::PTRACE_LISTEN,
    };
    // SAFETY: a restart request on our own stopped tracee; no pointer is passed.
    unsafe { libc::ptrace(request, pid, 0usize, sig as libc::c_long) };
}

/// Whether the pending signal of stopped tracee `tid` came from the kernel itself.
fn sent_by_kernel(tid: i32) -> bool {
    ptrace::getsiginfo(Pid::from_raw(tid)).is_ok_and(|i| i.si_code == libc::SI_KERNEL)
}

fn is_stop_signal(sig: i32) -> bool {
    matches!(sig, libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// Runs the released child up to its exec; `Err` with how it ended when it never got there.
pub(super) fn until_exec(pid: Pid, hooks: &mut dyn Hooks) -> Result<(), Ended> {
    loop {
        let Ok(Some((who, status))) = wait_any() else { return Err(Ended::Code(-1)) };
        if who != pid.as_raw() {
            continue;
        }
        if let Some(e) = ended(status) {
            return Err(e);
        }
        let Some(sig) = status.stopping_signal() else { continue };
        match status.as_raw() >> 16 {
            EVENT_EXEC => {
                hooks.exec(who as u32);
                restart(who, Restart::Continue, 0);
                return Ok(());
            }
            0 => restart(who, Restart::Continue, sig),
            EVENT_STOP if is_stop_signal(sig) => restart(who, Restart::Listen, 0),
            _ => restart(who, Restart::Continue, 0),
        }
    }
}

/// Waits on the target and its followed children until every one has ended;
/// returns how the target itself ended, and when.
pub(super) fn watch(target: Pid, hooks: &mut dyn Hooks) -> Option<(Ended, u64)> {
    let mut w = Watch {
        target: target.as_raw(),
        alive: HashSet::from([target.as_raw()]),
        fresh: HashMap::new(),
        tasks: Tasks::default(),
        target_end: None,
    };
    while !w.alive.is_empty() {
        // While a process is held for its end, its last task may go without
        // a stop to say so: look again every HELD_POLL.
        // (An exit stop is weighed when it comes: only a task gone or time
        // passed can change what a held process waits for.)
        let holding = w.tasks.holding();
        match wait_with(if holding { WaitOptions::NOHANG } else { WaitOptions::empty() }) {
            Ok(Some((who, status))) if ended(status).is_none() => {
                w.event(who, status, hooks);
                continue;
            }
            Ok(Some((who, status))) => w.event(who, status, hooks),
            Ok(None) if holding => std::thread::sleep(HELD_POLL),
            _ => break,
        }
        for (pid, tids) in w.tasks.recheck() {
            release(pid, tids, true, hooks);
        }
    }
    w.target_end
}

/// How often the held threads of an ending process are looked at again.
const HELD_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Resumes the threads of `pid` held at their exit; `ending`: they are all
/// of it, and the hook sees them first.
fn release(pid: i32, mut tids: Vec<i32>, ending: bool, hooks: &mut dyn Hooks) {
    if ending {
        tids.sort_by_key(|&t| (t != pid, t));
        let threads: Vec<u32> = tids.iter().map(|&t| t as u32).collect();
        hooks.exit_stop(pid as u32, &threads);
    }
    for t in tids {
        restart(t, Restart::Continue, 0);
    }
}

/// What [`watch`] keeps track of.
struct Watch {
    target: i32,
    /// Traced processes still alive; the target's own end is reported when the last one ends.
    alive: HashSet<i32>,
    /// Followed children whose first stop has not been seen yet, with their parent.
    fresh: HashMap<i32, i32>,
    tasks: Tasks,
    target_end: Option<(Ended, u64)>,
}

impl Watch {
    fn event(&mut self, who: i32, status: WaitStatus, hooks: &mut dyn Hooks) {
        if let Some(how) = ended(status) {
            self.ended(who, how, hooks);
        } else if let Some(sig) = status.stopping_signal() {
            self.stopped(who, sig, status.as_raw() >> 16, hooks);
        }
    }

    fn ended(&mut self, who: i32, how: Ended, hooks: &mut dyn Hooks) {
        // waitpid(-1) also reaps children that are not tracees: not ours to report.
        if self.alive.remove(&who) {
            hooks.gone(who as u32);
        }
        self.tasks.gone(who);
        if who == self.target {
            self.target_end = Some((how, super::monotonic_ns()));
        }
    }

    fn stopped(&mut self, who: i32, sig: i32, event: i32, hooks: &mut dyn Hooks) {
        if !self.alive.contains(&who) && !self.tasks.is_thread(who) {
            if self.tasks.thread_of_unknown(who).is_none() {
                // A followed child reporting its first stop before its parent's fork event.
                self.alive.insert(who);
                hooks.new_process(who as u32, None);
            }
            // (Else a new thread's first stop, before its creator's clone event.)
            restart(who, Restart::Continue, 0);
            return;
        }
        match event {
            EVENT_EXIT => return self.exit_stop(who, hooks),
            EVENT_EXEC => hooks.exec(who as u32),
            EVENT_CLONE => {
                if let Ok(child) = ptrace::getevent(Pid::from_raw(who)) {
                    self.tasks.add_thread(child as i32, self.tasks.process_of(who));
                }
            }
            EVENT_FORK | EVENT_VFORK => {
                if let Ok(child) = ptrace::getevent(Pid::from_raw(who)) {
                    if self.alive.insert(child as i32) {
                        self.fresh.insert(child as i32, who);
                    }
                }
            }
            // A seized child's first stop.
            EVENT_STOP if self.fresh.contains_key(&who) => {
                let parent = self.fresh.remove(&who).map(|p| p as u32);
                hooks.new_process(who as u32, parent);
            }
            EVENT_STOP if is_stop_signal(sig) => return restart(who, Restart::Listen, 0),
            // A signal for the target: delivered, whatever it is — unless
            // the kernel sent it for leaktrace (never a process: SI_KERNEL).
            0 => {
                let ours = sent_by_kernel(who) && hooks.intercept(who as u32, sig);
                return restart(who, Restart::Continue, if ours { 0 } else { sig });
            }
            _ => {}
        }
        restart(who, Restart::Continue, 0);
    }

    /// A thread at its exit stop: held until its process's last thread is
    /// there too; then the hook, and all of them go.
    fn exit_stop(&mut self, who: i32, hooks: &mut dyn Hooks) {
        if let (pid, AtExit::Release { tids, ending }) = self.tasks.exit_stop(who) {
            release(pid, tids, ending, hooks);
        }
    }
}
