//! Starting the target of `leaktrace run` under ptrace.
//!
//! A supervisor thread forks the child (ptrace requests must come from the
//! thread that forked it). The child stops itself before exec, so probes are
//! attached before its first instruction; PTRACE_O_TRACEEXIT stops it once
//! more at exit, while its memory map still exists, so stacks can be
//! symbolized after it is gone. PTRACE_O_EXITKILL kills it if leaktrace dies.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

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

enum ToMain {
    Ready(u32),
    Failed(SpawnError),
    Ended(Ended),
}

/// What the supervisor reports while the target runs; called on its thread
/// while the process concerned is stopped.
pub trait Hooks: Send {
    /// A followed child, stopped before its first instruction.
    fn new_process(&mut self, pid: u32);
    /// A traced process stopped at exit, its memory map still intact.
    fn exit_stop(&mut self, pid: u32);
    /// A traced process (all its threads) is gone.
    fn gone(&mut self, pid: u32);
}

/// The running target of `leaktrace run`.
pub struct Supervised {
    pub pid: u32,
    go: Sender<()>,
    events: Receiver<ToMain>,
}

impl Supervised {
    /// Forks `argv` stopped before exec; `hooks` hear of its processes. With
    /// `follow_forks` its descendants are traced too, and the target has ended
    /// when all of them have.
    pub fn spawn(program: PathBuf, argv: Vec<OsString>, follow_forks: bool, hooks: Box<dyn Hooks>) -> Result<Self, SpawnError> {
        let (to_main, events) = channel();
        let (go, go_rx) = channel::<()>();
        std::thread::Builder::new()
            .name("leaktrace-supervisor".into())
            .spawn(move || supervise(program, argv, follow_forks, to_main, go_rx, hooks))
            .map_err(|e| SpawnError::Os(e.to_string()))?;
        match events.recv() {
            Ok(ToMain::Ready(pid)) => Ok(Self { pid, go, events }),
            Ok(ToMain::Failed(e)) => Err(e),
            Ok(ToMain::Ended(_)) | Err(_) => Err(SpawnError::Os("the supervisor stopped before the target started".into())),
        }
    }

    /// Lets the target exec and run. Fails when exec fails.
    pub fn start(&self) -> Result<(), SpawnError> {
        self.go.send(()).map_err(|_| SpawnError::Os("the supervisor is gone".into()))?;
        match self.events.recv() {
            Ok(ToMain::Ready(_)) => Ok(()),
            Ok(ToMain::Failed(e)) => Err(e),
            Ok(ToMain::Ended(e)) => Err(SpawnError::Os(format!("the target ended before exec ({e})"))),
            Err(_) => Err(SpawnError::Os("the supervisor is gone".into())),
        }
    }

    /// Blocks until the target has ended.
    pub fn wait(&self) -> Option<Ended> {
        match self.events.recv() {
            Ok(ToMain::Ended(e)) => Some(e),
            _ => None,
        }
    }

    /// Non-blocking [`Self::wait`].
    pub fn try_wait(&self) -> Option<Ended> {
        match self.events.try_recv() {
            Ok(ToMain::Ended(e)) => Some(e),
            _ => None,
        }
    }
}

fn os_err(what: &str) -> SpawnError {
    SpawnError::Os(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Os("an argument contains a NUL byte".into()))
}

fn supervise(
    program: PathBuf,
    argv: Vec<OsString>,
    follow_forks: bool,
    to_main: Sender<ToMain>,
    go: Receiver<()>,
    mut hooks: Box<dyn Hooks>,
) {
    let pid = match fork_stopped(&program, &argv, follow_forks) {
        Ok(p) => p,
        Err(e) => {
            let _ = to_main.send(ToMain::Failed(e));
            return;
        }
    };
    let _ = to_main.send(ToMain::Ready(pid.0 as u32));
    if go.recv().is_err() {
        // leaktrace gave up before starting it: EXITKILL is for our death; kill explicitly.
        unsafe { libc::kill(pid.0, libc::SIGKILL) };
        let _ = wait_raw(pid.0);
        return;
    }
    // SAFETY: pid is our stopped tracee.
    unsafe { libc::ptrace(libc::PTRACE_CONT, pid.0, 0, 0) };
    let mut errno = [0u8; 4];
    // SAFETY: reading into a local buffer from our pipe.
    let n = unsafe { libc::read(pid.1, errno.as_mut_ptr().cast(), 4) };
    unsafe { libc::close(pid.1) };
    if n == 4 {
        let reason = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)).to_string();
        let _ = wait_raw(pid.0);
        let _ = to_main.send(ToMain::Failed(SpawnError::Exec { path: program.display().to_string(), reason }));
        return;
    }
    let _ = to_main.send(ToMain::Ready(pid.0 as u32));
    let end = watch(pid.0, hooks.as_mut());
    let _ = to_main.send(ToMain::Ended(end.unwrap_or(Ended::Code(-1))));
}

/// Waits on the target and its followed children until every one has ended;
/// returns how the target itself ended.
fn watch(target: i32, hooks: &mut dyn Hooks) -> Option<Ended> {
    // Traced processes still alive; the target's own end is reported when the last one ends.
    let mut alive: HashSet<i32> = HashSet::from([target]);
    // Followed children whose initial ptrace SIGSTOP has not been seen yet.
    let mut fresh: HashSet<i32> = HashSet::new();
    let mut target_end = None;
    while !alive.is_empty() {
        let Ok((who, status)) = wait_any() else { break };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            // waitpid(-1) also reaps children that are not tracees: not ours to report.
            if alive.remove(&who) {
                hooks.gone(who as u32);
            }
            if who == target {
                target_end = Some(if libc::WIFEXITED(status) {
                    Ended::Code(libc::WEXITSTATUS(status))
                } else {
                    Ended::Signal(libc::WTERMSIG(status))
                });
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let (event, sig) = (status >> 16, libc::WSTOPSIG(status));
        let deliver = if !alive.contains(&who) {
            // A followed child reporting its initial stop before its parent's fork event.
            alive.insert(who);
            hooks.new_process(who as u32);
            0
        } else if event == libc::PTRACE_EVENT_EXIT {
            hooks.exit_stop(who as u32);
            0
        } else if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_VFORK {
            let mut child: libc::c_ulong = 0;
            // SAFETY: reading the new child's pid from our stopped tracee.
            unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, who, 0, &mut child) };
            if alive.insert(child as i32) {
                fresh.insert(child as i32);
            }
            0
        } else if sig == libc::SIGSTOP && fresh.remove(&who) {
            hooks.new_process(who as u32);
            0 // a child's initial stop
        } else if event != 0 || sig == libc::SIGTRAP {
            0 // exec or a trap of ours
        } else {
            sig // a signal for the target: pass it on
        };
        // SAFETY: restarting our tracee.
        unsafe { libc::ptrace(libc::PTRACE_CONT, who, 0, deliver) };
    }
    target_end
}

/// Any child or tracee of this process: a process runs one supervisor at a time.
fn wait_any() -> Result<(i32, i32), ()> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for any of our children and tracees.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r > 0 {
            return Ok((r, status));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(());
        }
    }
}

fn wait_raw(pid: i32) -> Result<i32, ()> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(());
        }
    }
}

/// Forks; the child asks to be traced, stops, and after the tracer resumes it
/// execs, reporting an exec failure's errno through a close-on-exec pipe.
/// Returns (pid, read end of that pipe).
fn fork_stopped(program: &Path, argv: &[OsString], follow_forks: bool) -> Result<(i32, i32), SpawnError> {
    let path = cstring(program.as_os_str())?;
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let envs: Vec<CString> = std::env::vars_os()
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

    let mut fds = [0i32; 2];
    // SAFETY: plain syscalls on local buffers.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("pipe2"));
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_err("fork"));
    }
    if pid == 0 {
        // Child: async-signal-safe calls only, nothing that allocates.
        unsafe {
            libc::close(fds[0]);
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            libc::execve(path.as_ptr(), argp.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            libc::write(fds[1], (&e as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    unsafe { libc::close(fds[1]) };
    let status = wait_raw(pid).map_err(|_| os_err("waitpid"))?;
    if !libc::WIFSTOPPED(status) {
        return Err(SpawnError::Os("the child did not stop before exec".into()));
    }
    let mut opts = libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
    if follow_forks {
        opts |= libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK;
    }
    // SAFETY: configuring our stopped tracee.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) } != 0 {
        return Err(os_err("ptrace(PTRACE_SETOPTIONS)"));
    }
    Ok((pid, fds[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_through_path() {
        assert!(resolve_program(OsStr::new("sh")).unwrap().is_absolute());
        assert!(matches!(resolve_program(OsStr::new("no-such-command-xyz")), Err(SpawnError::NotFound(_))));
        let plain = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(resolve_program(plain.path().as_os_str()), Err(SpawnError::Exec { .. })));
        assert!(matches!(resolve_program(OsStr::new("/no/such/file")), Err(SpawnError::NotFound(_))));
    }

    /// Records what the supervisor reports, in order.
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Hooks for Log {
        fn new_process(&mut self, _: u32) {
            self.0.lock().unwrap().push("new".into());
        }
        fn exit_stop(&mut self, _: u32) {
            self.0.lock().unwrap().push("exit".into());
        }
        fn gone(&mut self, _: u32) {
            self.0.lock().unwrap().push("gone".into());
        }
    }

    fn run_sh(script: &str, follow_forks: bool) -> (Option<Ended>, Vec<String>) {
        let _one = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let argv = vec!["sh".into(), "-c".into(), script.into()];
        let s = Supervised::spawn(resolve_program(OsStr::new("sh")).unwrap(), argv, follow_forks, Box::new(Log(log.clone()))).unwrap();
        s.start().unwrap();
        let end = s.wait();
        let seen = log.lock().unwrap().clone();
        (end, seen)
    }

    #[test]
    fn a_supervised_child_runs_and_reports_its_exit_code() {
        let (end, seen) = run_sh("exit 7", false);
        assert_eq!(end, Some(Ended::Code(7)));
        assert_eq!(seen, ["exit", "gone"], "stopped once at exit, then gone");
    }

    #[test]
    fn followed_children_are_reported_before_they_run_and_when_gone() {
        let (end, seen) = run_sh("/bin/true; /bin/true; exit 3", true);
        assert_eq!(end, Some(Ended::Code(3)));
        assert_eq!(seen.iter().filter(|s| *s == "new").count(), 2, "{seen:?}");
        assert_eq!(seen.iter().filter(|s| *s == "gone").count(), 3, "{seen:?}");
        assert_eq!(seen.last().map(String::as_str), Some("gone"));
    }
}
