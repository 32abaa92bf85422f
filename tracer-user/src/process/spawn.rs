//! Starting the target of `leaktrace run` under ptrace.
//!
//! A supervisor thread forks the child and seizes it (ptrace requests must
//! come from that thread) while the child waits, before exec, for leaktrace
//! to be ready. At exec the kernel stops the new image before its first
//! instruction (PTRACE_EVENT_EXEC), which is when its allocator probes go on,
//! and at every exec after that. PTRACE_O_TRACEEXIT stops each process once
//! more at exit, while its memory map still exists, so stacks can be
//! symbolized after it is gone; PTRACE_O_EXITKILL kills it if leaktrace dies.
//! Signals are the target's own: every one is delivered, and a stop signal
//! stops it (PTRACE_LISTEN) until SIGCONT, as if untraced.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

use nix::libc;

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use super::supervise::{self, Ended, Hooks, SpawnError, ToMain};

/// Resolves the program like execvp would, so "not found" is known before forking.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf, SpawnError> {
    let p = Path::new(program);
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        if !p.exists() {
            return Err(SpawnError::NotFound(p.display().to_string()));
        }
        if !executable(p) {
            return Err(SpawnError::Exec { path: p.display().to_string(), reason: "not an executable file".into() });
        }
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| executable(c))
        .ok_or_else(|| SpawnError::NotFound(program.to_string_lossy().into_owned()))
}

/// The signal state the command starts with: leaktrace's own mask and the
/// dispositions leaktrace was given. leaktrace handles SIGINT, SIGTERM and
/// SIGHUP itself (exec resets those to their default; one that was ignored
/// is ignored again), and the Rust runtime ignores SIGPIPE, which the
/// command gets at its default, as from any shell.
#[derive(Clone, Debug)]
pub struct ChildSignals {
    mask: SigSet,
    ignored: Vec<Signal>,
}

impl ChildSignals {
    /// leaktrace's state now: call before installing its own handlers.
    pub fn current() -> Self {
        let mask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let bits = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        let ignored =
            Signal::iterator().filter(|&s| s != Signal::SIGPIPE && bits.is_some_and(|b| b & (1 << (s as i32 - 1)) != 0)).collect();
        Self { mask, ignored }
    }
}

/// The running target of `leaktrace run`.
pub struct Supervised {
    pub pid: u32,
    go: Sender<()>,
    events: Receiver<ToMain>,
}

/// What to run.
pub struct Command {
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub follow_forks: bool,
    pub signals: ChildSignals,
    /// Variables set (or replaced) in the command's environment.
    pub env: Vec<(OsString, OsString)>,
}

impl Supervised {
    /// Forks the command, traced and waiting before exec; `hooks` hear of its
    /// processes. With `follow_forks` its descendants are traced too, and the
    /// target has ended when all of them have.
    pub fn spawn(command: Command, hooks: Box<dyn Hooks>) -> Result<Self, SpawnError> {
        let (to_main, events) = channel();
        let (go, go_rx) = channel::<()>();
        std::thread::Builder::new()
            .name("leaktrace-supervisor".into())
            .spawn(move || supervise(command, to_main, go_rx, hooks))
            .map_err(|e| SpawnError::Os(e.to_string()))?;
        match events.recv() {
            Ok(ToMain::Ready(pid)) => Ok(Self { pid, go, events }),
            Ok(ToMain::Failed(e)) => Err(e),
            Ok(_) | Err(_) => Err(SpawnError::Os("the supervisor stopped before the target started".into())),
        }
    }

    /// Lets the target exec; returns once its new image is stopped, probed
    /// ([`Hooks::exec`]) and released. Fails when exec fails.
    pub fn start(&self) -> Result<(), SpawnError> {
        self.go.send(()).map_err(|_| SpawnError::Os("the supervisor is gone".into()))?;
        match self.events.recv() {
            Ok(ToMain::Started) => Ok(()),
            Ok(ToMain::Failed(e)) => Err(e),
            Ok(ToMain::Ended(e, _)) => Err(SpawnError::Os(format!("the target ended before exec ({e})"))),
            Ok(ToMain::Ready(_)) | Err(_) => Err(SpawnError::Os("the supervisor is gone".into())),
        }
    }

    /// Blocks until the target has ended: how, and when (CLOCK_MONOTONIC ns).
    pub fn wait(&self) -> Option<(Ended, u64)> {
        match self.events.recv() {
            Ok(ToMain::Ended(e, at)) => Some((e, at)),
            _ => None,
        }
    }

    /// Non-blocking [`Self::wait`].
    pub fn try_wait(&self) -> Option<(Ended, u64)> {
        match self.events.try_recv() {
            Ok(ToMain::Ended(e, at)) => Some((e, at)),
            _ => None,
        }
    }
}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Os("an argument contains a NUL byte".into()))
}

fn supervise(command: Command, to_main: Sender<ToMain>, go: Receiver<()>, mut hooks: Box<dyn Hooks>) {
    let child = match fork_waiting(&command) {
        Ok(c) => c,
        Err(e) => {
            let _ = to_main.send(ToMain::Failed(e));
            return;
        }
    };
    let pid = child.pid;
    if let Err(e) = supervise::seize(pid, command.follow_forks) {
        supervise::kill_and_reap(pid);
        let _ = to_main.send(ToMain::Failed(SpawnError::Os(format!("ptrace(PTRACE_SEIZE): {e}"))));
        return;
    }
    let _ = to_main.send(ToMain::Ready(pid.as_raw() as u32));
    // Without a go (leaktrace gave up), the child reads end-of-file and exits.
    let released = go.recv().is_ok() && nix::unistd::write(&child.go, b"g").is_ok();
    drop(child.go);
    if !released {
        supervise::kill_and_reap(pid);
        return;
    }
    match supervise::until_exec(pid, hooks.as_mut()) {
        Ok(()) => {
            let _ = to_main.send(ToMain::Started);
        }
        Err(ended) => {
            let mut errno = [0u8; 4];
            let reason = match nix::unistd::read(&child.exec_error, &mut errno) {
                Ok(4) => std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)).to_string(),
                _ => format!("it ended before exec ({ended})"),
            };
            let _ = to_main.send(ToMain::Failed(SpawnError::Exec { path: command.program.display().to_string(), reason }));
            return;
        }
    }
    let end = supervise::watch(pid, hooks.as_mut());
    let _ = to_main.send(ToMain::Ended(end.map_or(Ended::Code(-1), |(e, _)| e), end.map_or_else(super::monotonic_ns, |(_, at)| at)));
}

/// The forked child, waiting to exec.
struct Child {
    pid: Pid,
    /// One byte here lets it exec; closing it unwritten makes it exit.
    go: OwnedFd,
    /// An exec failure's errno (close-on-exec: empty when exec succeeds).
    exec_error: OwnedFd,
}

/// Forks; the child restores the signal state the command should start
/// with, waits for a byte on a pipe, and execs, reporting an exec failure's
/// errno through a close-on-exec pipe.
fn fork_waiting(command: &Command) -> Result<Child, SpawnError> {
    let path = cstring(command.program.as_os_str())?;
    let args: Vec<CString> = command.argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let set = |k: &OsString| command.env.iter().any(|(name, _)| name == k);
    let envs: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !set(k))
        .chain(command.env.iter().cloned())
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).map_err(|_| SpawnError::Os("an environment variable contains a NUL byte".into()))
        })
        .collect::<Result<_, _>>()?;
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Everything the child touches is ready before fork: it must not allocate.
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let os = |what: &str, e: nix::Error| SpawnError::Os(format!("{what}: {e}"));
    let (go_rx, go_tx) = pipe2(OFlag::O_CLOEXEC).map_err(|e| os("pipe2", e))?;
    let (err_rx, err_tx) = pipe2(OFlag::O_CLOEXEC).map_err(|e| os("pipe2", e))?;
    // SAFETY: the child runs only async-signal-safe calls (close, sigaction,
    // sigprocmask, read, execve, write, _exit) on data prepared above, and
    // never returns into Rust code that could allocate or take a lock.
    match unsafe { fork() }.map_err(|e| os("fork", e))? {
        ForkResult::Child => {
            drop(go_tx);
            drop(err_rx);
            for s in [Signal::SIGPIPE, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                // SAFETY: SIG_DFL and SIG_IGN install no handler.
                let _ = unsafe { sigaction(s, &default) };
            }
            for &s in &command.signals.ignored {
                // SAFETY: as above.
                let _ = unsafe { sigaction(s, &ignore) };
            }
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&command.signals.mask), None);
            let mut byte = [0u8; 1];
            if nix::unistd::read(&go_rx, &mut byte) == Ok(1) {
                // SAFETY: NUL-terminated arrays of pointers to NUL-terminated strings, alive until exec.
                unsafe { libc::execve(path.as_ptr(), argp.as_ptr(), envp.as_ptr()) };
                let _ = nix::unistd::write(&err_tx, &nix::errno::Errno::last_raw().to_ne_bytes());
            }
            // SAFETY: ends the child at once, without running Rust's or libc's exit handlers.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => Ok(Child { pid: child, go: go_tx, exec_error: err_rx }),
    }
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
