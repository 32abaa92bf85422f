use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::Ended;
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
struct Log(Arc<Mutex<Vec<String>>>);

impl Hooks for Log {
    fn exec(&mut self, _: u32) {
        self.0.lock().unwrap().push("exec".into());
    }
    fn new_process(&mut self, _: u32, parent: Option<u32>) {
        self.0.lock().unwrap().push(if parent.is_some() { "new(parent)" } else { "new" }.into());
    }
    fn exit_stop(&mut self, _: u32, _: &[u32]) {
        self.0.lock().unwrap().push("exit".into());
    }
    fn gone(&mut self, _: u32) {
        self.0.lock().unwrap().push("gone".into());
    }
}

fn spawn_sh(script: &str, follow_forks: bool) -> (Supervised, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let argv = vec!["sh".into(), "-c".into(), script.into()];
    let command =
        Command { program: resolve_program(OsStr::new("sh")).unwrap(), argv, follow_forks, signals: ChildSignals::current(), env: vec![] };
    let s = Supervised::spawn(command, Box::new(Log(log.clone()))).unwrap();
    (s, log)
}

fn run_sh(script: &str, follow_forks: bool) -> (Option<Ended>, Vec<String>) {
    let _one = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let (s, log) = spawn_sh(script, follow_forks);
    s.start().unwrap();
    let end = s.wait().map(|(e, _)| e);
    let seen = log.lock().unwrap().clone();
    (end, seen)
}

#[test]
fn a_supervised_child_runs_and_reports_its_exit_code() {
    let (end, seen) = run_sh("exit 7", false);
    assert_eq!(end, Some(Ended::Code(7)));
    assert_eq!(seen, ["exec", "exit", "gone"], "stopped at exec, once at exit, then gone");
}

#[test]
fn followed_children_are_reported_before_they_run_and_when_gone() {
    let (end, seen) = run_sh("/bin/true; /bin/true; exit 3", true);
    assert_eq!(end, Some(Ended::Code(3)));
    assert_eq!(seen.iter().filter(|s| s.starts_with("new")).count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "exec").count(), 3, "the shell and each child's image: {seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "gone").count(), 3, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("gone"));
}

#[test]
fn an_exec_failure_is_reported_with_its_reason() {
    let _one = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\x7fELF not really").unwrap();
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let command =
        Command { program: junk.clone(), argv: vec!["junk".into()], follow_forks: false, signals: ChildSignals::current(), env: vec![] };
    let s = Supervised::spawn(command, Box::new(Log(Arc::default()))).unwrap();
    match s.start() {
        Err(SpawnError::Exec { reason, .. }) => assert!(reason.contains("format"), "{reason}"),
        other => panic!("expected an exec error, got {other:?}"),
    }
}

#[test]
fn the_command_gets_its_own_signals_as_if_untraced() {
    // SIGPIPE at its default (the Rust runtime ignores it in leaktrace); its own
    // SIGTRAP kills it as it would untraced.
    let script = "ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status); [ $((0x$ign & 0x1000)) -eq 0 ] || exit 9; kill -TRAP $$";
    let (end, _) = run_sh(script, false);
    assert_eq!(end, Some(Ended::Signal(nix::libc::SIGTRAP)));
    // A real-time signal reaches its handler.
    let (end, _) = run_sh("trap 'exit 5' 34; kill -34 $$; sleep 5", false);
    assert_eq!(end, Some(Ended::Code(5)));
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

#[test]
fn a_stop_signal_stops_the_target_until_sigcont() {
    let _one = crate::process::CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let (s, _) = spawn_sh("kill -STOP $$; exit 4", false);
    s.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(state_of(s.pid), Some('t' | 'T')) {
        assert!(Instant::now() < deadline, "the target never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.try_wait().is_none(), "stopped, not ended");
    assert!(matches!(state_of(s.pid), Some('t' | 'T')), "still stopped 200 ms later");
    nix::sys::signal::kill(Pid::from_raw(s.pid as i32), Signal::SIGCONT).unwrap();
    assert_eq!(s.wait().map(|(e, _)| e), Some(Ended::Code(4)));
}
