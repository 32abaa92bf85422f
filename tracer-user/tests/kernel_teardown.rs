//! Privileged: once leaktrace has exited nothing of it stays behind, soon
//! enough for a shell prompt: no process of its (this test is the subreaper
//! that would inherit any, a zombie included), and none of its programs
//! loaded, within [`WITHIN`] of its exit.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aya::programs::ProgramError;
use common::*;

/// What a user waits between leaktrace's report and a usable shell prompt.
const WITHIN: Duration = Duration::from_millis(300);

/// Each test counts this process's children: one test at a time, this
/// process the subreaper of all it starts.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    guard
}

/// The programs of leaktrace's descriptors (its program and link fds), by id: name.
fn held_programs(pid: u32) -> BTreeMap<u32, String> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        // A descriptor closed since the listing has no fdinfo any more.
        let Ok(info) = std::fs::read_to_string(entry.unwrap().path()) else { continue };
        let id = info.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse().ok());
        ids.extend(id.map(|id| (id, String::new())));
    }
    for p in aya::programs::loaded_programs().filter_map(Result::ok) {
        if let Some(name) = ids.get_mut(&p.id()) {
            *name = p.name_as_str().unwrap_or("?").to_owned();
        }
    }
    ids
}

/// The ids of every program loaded on the machine (one unloaded while
/// listed is not).
fn loaded() -> Vec<u32> {
    let gone = |e: &ProgramError| matches!(e, ProgramError::SyscallError(s) if s.io_error.kind() == ErrorKind::NotFound);
    aya::programs::loaded_programs()
        .filter(|p| !p.as_ref().is_err_and(gone))
        .map(|p| p.expect("listing the loaded programs").id())
        .collect()
}

/// This process's children (pid, state and name from /proc/PID/stat): what
/// leaktrace left, once it is reaped.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = tail.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            found.push(format!("{head}) state {}", fields[0]));
        }
    }
    found
}

/// `leaktrace run ARGS -- sh -c 'echo ready; read go; exec PROGRAM'`: once
/// the command says it is ready (probes attached), the programs leaktrace
/// holds are noted; then the command runs `program` and leaktrace ends.
/// Asserts that within [`WITHIN`] of leaktrace's exit none of them is loaded
/// and no process of leaktrace's is left; returns the programs. The caller
/// holds [`one_at_a_time`].
fn run_and_check(args: &[&str], program: &Path) -> BTreeMap<u32, String> {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut tracer = leaktrace()
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .args(args)
        .args(["--", "sh", "-c", "echo ready; read go; exec \"$0\""])
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(tracer.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the command did not start");
    let held = held_programs(tracer.id());
    tracer.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = tracer.wait().unwrap();
    let exited = Instant::now();
    let (mut left, mut processes) = (Vec::new(), Vec::new());
    while exited.elapsed() < WITHIN {
        let now = loaded();
        left = held.iter().filter(|(id, _)| now.contains(id)).collect();
        processes = children();
        if left.is_empty() && processes.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(status.success(), "leaktrace failed: {status}");
    assert!(processes.is_empty(), "{:?} after leaktrace exited, still: {processes:?}", exited.elapsed());
    assert!(left.is_empty(), "{:?} after leaktrace exited, still loaded: {left:?}", exited.elapsed());
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["complete"], true, "{:#}", r["counters"]);
    held
}

fn names(held: &BTreeMap<u32, String>) -> Vec<&str> {
    held.values().map(String::as_str).collect()
}

#[test]
fn run_bin_true_leaves_no_process_and_no_program() {
    require_root();
    let _one = one_at_a_time();
    let held = run_and_check(&[], Path::new("/bin/true"));
    // Leaktrace's programs were found: the check above looked at the right ones.
    for name in ["fd_new", "fd_close", "fd_dup", "process_exec", "process_exit"] {
        assert!(names(&held).contains(&name), "{name} not among leaktrace's programs: {held:?}");
    }
}

#[test]
fn uprobes_on_glibc_malloc_leave_no_process_and_no_program() {
    require_root();
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all", &[]);
    let heap = ["--heap-probes", "uprobe"];
    // The kernel's own link kind first, then one perf-event uprobe per
    // probe point: the most links to take off, each waiting for the kernel.
    let held = run_and_check(&heap, &program);
    assert!(names(&held).iter().any(|n| n.starts_with("alloc_")), "no allocator program among {held:?}");
    let held = run_and_check(&[heap[0], heap[1], "--uprobe-links", "perf"], &program);
    for name in ["alloc_enter", "alloc_exit"] {
        assert!(names(&held).contains(&name), "{name} not among leaktrace's programs: {held:?}");
    }
}

#[test]
fn the_subreaper_sees_what_a_child_leaves() {
    // The check's own instrument: a grandchild orphaned by its parent
    // becomes this process's child (reaped here before any assertion, so
    // that a failure leaves nothing to the other tests).
    let _one = one_at_a_time();
    let status = Command::new("sh").args(["-c", "sleep 0.2 & exit 0"]).status().unwrap();
    assert!(status.success());
    let orphans = children();
    for o in &orphans {
        let pid = o.split_whitespace().next().unwrap().parse().unwrap();
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    }
    assert_eq!(orphans.len(), 1, "the shell's background job, and only it: {orphans:?}");
    assert_eq!(children(), Vec::<String>::new());
}
