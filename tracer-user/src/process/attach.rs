//! A process leaktrace did not start: validated from /proc, watched through a pidfd.

use std::os::fd::OwnedFd;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

/// Why a pid cannot be traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    NoSuchProcess,
    Itself,
    KernelThread,
    Zombie,
    /// /proc/PID/exe cannot be read (another user's process without the privilege, a namespace we cannot see).
    ExeUnreadable,
}

impl Unfit {
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NoSuchProcess => "no such process",
            Self::Itself => "leaktrace itself",
            Self::KernelThread => "a kernel thread",
            Self::Zombie => "a zombie (it has exited; its parent has not reaped it)",
            Self::ExeUnreadable => "a process whose executable cannot be read (/proc/PID/exe)",
        }
    }
}

pub fn proc_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The process's state letter and flags from /proc/PID/stat.
fn stat_state(pid: u32) -> Option<(char, u64)> {
    let stat = crate::process::proc_text(&format!("/proc/{pid}/stat"))?;
    // The command name may contain anything, including ") ": parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let flags = fields.nth(5)?.parse().ok()?; // field 9: flags
    Some((state, flags))
}

const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether `pid` is a user-space process leaktrace may attach to.
pub fn check(pid: u32) -> Result<(), Unfit> {
    if pid == std::process::id() {
        return Err(Unfit::Itself);
    }
    let Some((state, flags)) = stat_state(pid) else { return Err(Unfit::NoSuchProcess) };
    if flags & PF_KTHREAD != 0 {
        return Err(Unfit::KernelThread);
    }
    if state == 'Z' || state == 'X' {
        return Err(Unfit::Zombie);
    }
    if std::fs::read_link(format!("/proc/{pid}/exe")).is_err() {
        return Err(if proc_alive(pid) { Unfit::ExeUnreadable } else { Unfit::NoSuchProcess });
    }
    Ok(())
}

/// An attached process, through a pidfd: readable once it has exited.
pub struct Watched {
    pidfd: OwnedFd,
}

impl Watched {
    pub fn open(pid: u32) -> Option<Self> {
        let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
        pidfd_open(pid, PidfdFlags::empty()).ok().map(|pidfd| Self { pidfd })
    }

    /// Whether the process has exited (non-blocking).
    pub fn has_exited(&self) -> bool {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })).is_ok_and(|n| n > 0)
    }
}

pub fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ")
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfit_targets_are_told_apart() {
        assert_eq!(check(std::process::id()), Err(Unfit::Itself));
        assert_eq!(check(2), Err(Unfit::KernelThread), "kthreadd");
        assert_eq!(check(u32::MAX - 1), Err(Unfit::NoSuchProcess));
        let _turn = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        // A zombie: a child that exited and is not reaped yet.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        while stat_state(pid).is_some_and(|(s, _)| s != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(check(pid), Err(Unfit::Zombie));
        child.wait().unwrap();
    }

    #[test]
    fn a_watched_process_is_seen_to_exit() {
        let _turn = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let w = Watched::open(child.id()).unwrap();
        assert!(!w.has_exited());
        child.wait().unwrap();
        assert!(w.has_exited());
    }
}
