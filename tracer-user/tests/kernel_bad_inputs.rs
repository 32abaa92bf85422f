//! Every option and every file argument, each with its bad values: exit code
//! 2, exactly one line on stderr, and nothing traced — measured: leaktrace
//! runs under `strace -f` and makes no bpf() call and starts no program.
//!
//! A new option needs a row here (`every_option_has_a_row` fails without
//! one); a row is one line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use clap::CommandFactory;
use common::*;
use leaktrace::cli::Cli;

/// (arguments, text the one line must contain). Placeholders: `{pid}` a
/// running process (a valid target), `{dir}` a directory, `{missing}` a path
/// that does not exist, `{file}` a regular file of text that is no manifest,
/// suppression or ELF, `{big}` a file over the input cap, `{fifo}` a FIFO,
/// `{link}` a symbolic link to a file, `{ro}` a directory on a read-only file
/// system, `{manifest}` a valid manifest, `{taken}` an address another socket
/// listens on, `{graph}` an SVG path whose handles graph beside it
/// (`graph.handles.svg`) is a symbolic link.
const ROWS: &[(&[&str], &str)] = &[
    (&[], "a subcommand is required"),
    (&["frobnicate"], "unrecognized subcommand"),
    (&["check", "--json=yes"], "unexpected value 'yes' for '--json'"),
    (&["run", "--bogus", "--", "true"], "unexpected argument '--bogus'"),
    (&["attach", "--pid", "{pid}", "--bogus"], "unexpected argument '--bogus'"),
    (&["run"], "required"),
    (&["run", "--"], "required"),
    (&["run", "--", "{missing}"], "command not found"),
    (&["run", "--", "{dir}"], "not an executable file"),
    (&["run", "--", "{file}"], "not an executable file"),
    (&["run", "--", "no-such-command-xyz"], "command not found: no-such-command-xyz"),
    (&["attach"], "--pid"),
    (&["attach", "--pid", "0"], "from 1 to 4194304"),
    (&["attach", "--pid", "-1"], "from 1 to 4194304"),
    (&["attach", "--pid", "99999999999"], "from 1 to 4194304"),
    (&["attach", "--pid", "x"], "from 1 to 4194304"),
    (&["attach", "--pid", "4194303"], "no such process: 4194303"),
    (&["attach", "--pid", "{pid}", "--duration", "-1"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration=-1"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "0"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "nan"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "inf"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "18446744073709551616"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "1e400"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--duration", "soon"], "greater than 0 and at most 31536000"),
    (&["run", "--duration", "1", "--", "true"], "unexpected argument '--duration'"),
    (&["run", "--heap-probes", "trap", "--", "true"], "invalid value 'trap' for '--heap-probes"),
    (&["run", "--heap-probes", "inprocess", "--sample", "8", "--", "true"], "--heap-probes inprocess cannot be combined with --sample"),
    (&["run", "--heap-probes", "inprocess", "--unwind", "fp", "--", "true"], "cannot be combined with --unwind fp"),
    (&["run", "--interval", "-1", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--interval", "0", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--interval", "nan", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--interval", "inf", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--interval", "18446744073709551616", "--", "true"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--interval", "-0.5"], "greater than 0 and at most 31536000"),
    (&["run", "--interval", "1", "--tui", "--", "true"], "cannot be used with"),
    (&["run", "--kill-after", "-1", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--kill-after", "nan", "--", "true"], "greater than 0 and at most 31536000"),
    (&["run", "--kill-after", "18446744073709551616", "--", "true"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--kill-after", "1"], "unexpected argument '--kill-after'"),
    (&["run", "--format", "xml", "--", "true"], "invalid value 'xml'"),
    (&["run", "--format", "pprof", "--", "true"], "--output"),
    (&["run", "--format", "flamegraph", "--", "true"], "--output"),
    (&["run", "--format", "pprof", "--output", "{link}", "--", "true"], "is a symbolic link"),
    (&["run", "--format", "flamegraph", "--output", "{graph}", "--", "true"], "graph.handles.svg: is a symbolic link"),
    (&["run", "--metrics", "localhost", "--", "true"], "is not an address and port"),
    (&["run", "--metrics", "{taken}", "--", "true"], "cannot listen there"),
    (&["run", "--metrics", "127.0.0.1:0", "--metrics-top", "0", "--", "true"], "1..=10000"),
    (&["run", "--metrics-top", "5", "--", "true"], "--metrics"),
    (&["run", "--growth-window", "5", "--", "true"], "at least 10"),
    (&["run", "--growth-window", "nan", "--", "true"], "at least 10"),
    (&["run", "--ci", "--max-growth", "-1", "--", "true"], "rate per minute"),
    (&["run", "--max-growth", "5", "--", "true"], "--ci"),
    (&["run", "--ci", "--max-growth-handles", "lots", "--", "true"], "rate per minute"),
    (&["run", "--max-growth-handles", "5", "--", "true"], "--ci"),
    (&["run", "--node-perf-map", "--", "true"], "is not node"),
    (&["attach", "--pid", "{pid}", "--node-perf-map"], "unexpected argument '--node-perf-map'"),
    (&["run", "--node-jitdump", "--", "true"], "is not node (run node itself, or give it --perf-prof"),
    (&["run", "--node-jitdump", "--node-perf-map", "--", "node"], "cannot be used with"),
    (&["attach", "--pid", "{pid}", "--node-jitdump"], "unexpected argument '--node-jitdump'"),
    (&["run", "--focus", "", "--", "true"], "not an empty string"),
    (&["run", "--output", "{dir}", "--", "true"], "is a directory"),
    (&["run", "--output", "{ro}/report.json", "--", "true"], "read-only file system"),
    (&["run", "--output", "{link}", "--", "true"], "is a symbolic link"),
    (&["run", "--output", "{file}/report.json", "--", "true"], "Not a directory"),
    (&["run", "--output", "{fifo}", "--", "true"], "FIFO"),
    (&["run", "--output", "", "--", "true"], "--output"),
    (&["run", "--ci=yes", "--", "true"], "unexpected value 'yes'"),
    (&["run", "--max-leaked-bytes", "10", "--", "true"], "--ci"),
    (&["run", "--max-leaked-handles", "1", "--", "true"], "--ci"),
    (&["run", "--ci", "--max-leaked-bytes", "-1", "--", "true"], "from 0 to 18446744073709551615"),
    (&["run", "--ci", "--max-leaked-handles", "many", "--", "true"], "from 0 to 18446744073709551615"),
    (&["run", "--expect", "{missing}", "--", "true"], "No such file"),
    (&["run", "--expect", "{dir}", "--", "true"], "a directory"),
    (&["run", "--expect", "/dev/zero", "--", "true"], "a character device"),
    (&["run", "--expect", "{fifo}", "--", "true"], "a FIFO"),
    (&["run", "--expect", "{big}", "--", "true"], "at most 16777216 bytes"),
    (&["run", "--expect", "{file}", "--", "true"], "malformed manifest"),
    (&["run", "--expect-scenario", "all", "--", "true"], "--expect"),
    (&["run", "--expect", "{manifest}", "--expect-scenario", "nope", "--", "true"], "no scenario named `nope`"),
    (&["run", "--alloc-wrapper", "", "--", "true"], "not an empty string"),
    (&["run", "--alloc-wrapper", "--", "true"], "a value is required"),
    (&["run", "--unwind", "dwarf", "--", "true"], "invalid value 'dwarf'"),
    (&["run", "--suppress", "{missing}", "--", "true"], "No such file"),
    (&["run", "--suppress", "{dir}", "--", "true"], "a directory"),
    (&["run", "--suppress", "/dev/zero", "--", "true"], "a character device"),
    (&["run", "--suppress", "{fifo}", "--", "true"], "a FIFO"),
    (&["run", "--suppress", "{big}", "--", "true"], "at most 16777216 bytes"),
    (&["run", "--suppress", "{file}", "--", "true"], ":1: expected `function:NAME`"),
    (&["run", "--no-default-suppressions=1", "--", "true"], "unexpected value '1'"),
    (&["run", "--ci", "--leak-kinds", "lost", "--", "true"], "`lost` is not a leak kind"),
    (&["run", "--ci", "--leak-kinds", "", "--", "true"], "`` is not a leak kind"),
    (&["run", "--ci", "--leak-kinds", "definite,,indirect", "--", "true"], "`` is not a leak kind"),
    (&["run", "--leak-kinds", "definite", "--", "true"], "--ci"),
    (&["run", "--no-scan=1", "--", "true"], "unexpected value '1'"),
    (&["attach", "--pid", "{pid}", "--no-scan"], "unexpected argument '--no-scan'"),
    (&["attach", "--pid", "{pid}", "--scan-at-end=yes"], "unexpected value 'yes'"),
    (&["run", "--scan-at-end", "--", "true"], "unexpected argument '--scan-at-end'"),
    (&["attach", "--pid", "{pid}", "--scan-every", "0"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--scan-every", "-1"], "greater than 0 and at most 31536000"),
    (&["attach", "--pid", "{pid}", "--scan-every", "nan"], "greater than 0 and at most 31536000"),
    (&["run", "--scan-every", "1", "--", "true"], "unexpected argument '--scan-every'"),
    (&["run", "--allocator", "{missing}", "--", "true"], "No such file"),
    (&["run", "--allocator", "{dir}", "--", "true"], "a directory"),
    (&["run", "--allocator", "/dev/zero", "--", "true"], "a character device"),
    (&["run", "--allocator", "{fifo}", "--", "true"], "a FIFO"),
    (&["run", "--allocator", "{big}", "--", "true"], "at most 1073741824 bytes"),
    (&["run", "--allocator", "{file}", "--", "true"], "not an ELF object"),
    (&["run", "--allocator", "{elf}", "--", "true"], "does not define both malloc and free"),
    (&["run", "--follow-forks=1", "--", "true"], "unexpected value '1'"),
    (&["run", "--track-std-fds=1", "--", "true"], "unexpected value '1'"),
    (&["run", "--stack-depth", "0", "--", "true"], "from 1 to 32"),
    (&["run", "--stack-depth", "33", "--", "true"], "from 1 to 32"),
    (&["run", "--stack-depth", "-1", "--", "true"], "from 1 to 32"),
    (&["run", "--stack-depth", "deep", "--", "true"], "from 1 to 32"),
    (&["run", "--sample", "1", "--", "true"], "from 2 to 1000000"),
    (&["run", "--sample", "1000001", "--", "true"], "from 2 to 1000000"),
    (&["run", "--sample", "half", "--", "true"], "from 2 to 1000000"),
    (&["run", "--probe-floor=bogus", "--", "true"], "invalid value 'bogus'"),
    (&["run", "--uprobe-links", "bogus", "--", "true"], "invalid value 'bogus'"),
    (&["run", "--explain-reach", "lots", "--", "true"], "invalid value 'lots' for '--explain-reach <BYTES>'"),
    (&["run", "--ring-size", "0", "--", "true"], "power of two from 1 to 1024"),
    (&["run", "--ring-size", "3", "--", "true"], "power of two from 1 to 1024"),
    (&["run", "--ring-size", "2048", "--", "true"], "power of two from 1 to 1024"),
    (&["run", "--ring-size", "-8", "--", "true"], "power of two from 1 to 1024"),
    (&["run", "--ring-size", "big", "--", "true"], "power of two from 1 to 1024"),
    (&["run", "--tui", "--", "true"], "the live view needs a terminal"),
    (&["attach", "--pid", "{pid}", "--tui"], "the live view needs a terminal"),
    (&["run", "--tui", "--no-tui", "--", "true"], "cannot be used with"),
    (&["run", "--no-tui=yes", "--", "true"], "unexpected value 'yes'"),
];

/// The files and processes the placeholders name; the process is killed on drop.
struct Scene {
    dir: tempfile::TempDir,
    target: Child,
    taken: std::net::TcpListener,
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = self.target.kill();
        let _ = self.target.wait();
    }
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        std::fs::create_dir(p("dir")).unwrap();
        std::fs::create_dir(p("ro")).unwrap();
        std::fs::write(p("file"), "garbage\n").unwrap();
        std::fs::File::create(p("big")).unwrap().set_len((1 << 30) + 1).unwrap(); // sparse
        std::os::unix::fs::symlink(p("file"), p("link")).unwrap();
        std::os::unix::fs::symlink(p("file"), p("graph.handles.svg")).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, p("fifo"), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        std::fs::write(p("manifest"), manifest_from_markers(&[], |_| "").to_string()).unwrap();
        let target = Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self { dir, target, taken }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn expand(&self, arg: &str) -> String {
        let mut out = arg.replace("{pid}", &self.target.id().to_string()).replace("{taken}", &self.taken.local_addr().unwrap().to_string());
        for name in ["dir", "missing", "file", "big", "fifo", "link", "ro", "manifest"] {
            out = out.replace(&format!("{{{name}}}"), &self.path(name).display().to_string());
        }
        out.replace("{elf}", "/usr/bin/true").replace("{graph}", &self.path("graph.svg").display().to_string())
    }

    /// leaktrace under `strace -f`, in a mount namespace where `{ro}` is a
    /// read-only file system; its output and the system calls strace saw.
    fn run(&self, args: &[&str]) -> (Output, String) {
        let log = self.path("strace.log");
        // A refusal is immediate; a regression that reads a FIFO or /dev/zero would hang.
        let out = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                "30",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                r#"mount -t tmpfs -o ro tmpfs "$0" && exec "$@""#,
            ])
            .arg(self.path("ro"))
            .args(["strace", "-f", "-qq", "-e", "trace=bpf,execve,execveat", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_leaktrace"))
            .args(args.iter().map(|a| self.expand(a)))
            .stdin(Stdio::null())
            .output()
            .expect("unshare and strace (cargo xtask setup installs strace)");
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (out, calls)
    }
}

fn bpf_calls(calls: &str) -> usize {
    calls.lines().filter(|l| l.contains(" bpf(")).count()
}

fn programs_started(calls: &str) -> usize {
    calls.lines().filter(|l| l.contains(" execve(") || l.contains(" execveat(")).count()
}

#[test]
fn every_bad_value_is_one_line_exit_2_and_nothing_traced() {
    require_root();
    let scene = Scene::new();
    let mut failures = Vec::new();
    for (args, needle) in ROWS {
        let (out, calls) = scene.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        let problem = if out.status.code() != Some(2) {
            Some(format!("exit {:?}", out.status.code()))
        } else if err.lines().count() != 1 || !err.ends_with('\n') || !err.starts_with("leaktrace: error: ") {
            Some("not exactly one `leaktrace: error:` line".into())
        } else if !err.contains(needle) {
            Some(format!("no `{needle}`"))
        } else if bpf_calls(&calls) > 0 {
            Some(format!("{} bpf() calls", bpf_calls(&calls)))
        } else if programs_started(&calls) != 1 {
            Some(format!("{} programs started (leaktrace itself is one)", programs_started(&calls)))
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{args:?}: {p}; stderr: {err:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), ROWS.len(), failures.join("\n"));
    let big = std::fs::metadata(scene.path("big")).unwrap();
    assert!(big.len() > 1 << 30, "the oversized file is over every cap");
    assert!(!scene.path("graph.svg").exists(), "a refused flame graph's own file is removed again");
}

/// The measurement can fail: the same harness sees a real trace's bpf() calls.
#[test]
fn the_harness_sees_a_real_trace() {
    require_root();
    let scene = Scene::new();
    let (out, calls) = scene.run(&["attach", "--pid", "{pid}", "--duration", "0.5", "--no-tui"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(bpf_calls(&calls) > 10, "a trace loads programs and maps: {calls}");
}

/// Each subcommand's options, as `--long` (positionals as their name).
fn options() -> Vec<(String, String)> {
    let cli = Cli::command();
    let mut out = Vec::new();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
            let name = arg.get_long().map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
            out.push((sub.get_name().to_owned(), name));
        }
    }
    out
}

fn covers(args: &[&str], sub: &str, option: &str) -> bool {
    if args.first() != Some(&sub) {
        return false;
    }
    if option.starts_with("--") {
        return args.iter().any(|a| *a == option || a.starts_with(&format!("{option}=")));
    }
    // The positional COMMAND: a row whose command itself is the bad value.
    args.last() == Some(&"--") || args.iter().position(|a| *a == "--").is_some_and(|i| args.get(i + 1) != Some(&"true"))
}

/// An option both subcommands share (Options) needs a row under one of them.
#[test]
fn every_option_has_a_row() {
    let options = options();
    assert!(options.len() > 20, "{options:?}");
    let mut missing: Vec<&str> = options
        .iter()
        .filter(|(_, o)| !options.iter().any(|(sub, o2)| o2 == o && ROWS.iter().any(|(args, _)| covers(args, sub, o))))
        .map(|(_, o)| o.as_str())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    assert!(missing.is_empty(), "options without a bad-value row in ROWS: {missing:?}");
}

#[test]
fn every_file_argument_meets_each_kind_of_bad_file() {
    for option in ["--expect", "--suppress", "--allocator"] {
        for bad in ["{missing}", "{dir}", "/dev/zero", "{fifo}", "{big}", "{file}"] {
            assert!(ROWS.iter().any(|(args, _)| args.windows(2).any(|w| w == [option, bad])), "no row for {option} {bad}");
        }
    }
    let output: Vec<&str> = ROWS.iter().filter_map(|(a, _)| a.windows(2).find(|w| w[0] == "--output").map(|w| w[1])).collect();
    for bad in ["{dir}", "{ro}/report.json", "{link}", "{fifo}", "{graph}"] {
        assert!(output.contains(&bad), "no row for --output {bad}");
    }
}

/// The report is never lost: a write that fails at the end puts it on stdout.
#[test]
fn a_failed_output_write_puts_the_report_on_stdout() {
    require_root();
    let out = leaktrace().args(["run", "--no-tui", "--output", "/dev/full", "--", "true"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("writing /dev/full failed") && err.contains("the report follows on stdout"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("exited (exit code 0)"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// --output into a directory that does not exist yet: created before tracing.
#[test]
fn output_into_a_missing_directory_is_created() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("new/sub/report.json");
    let out = leaktrace().args(["run", "--no-tui", "--format", "json", "--output"]).arg(&report).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_report(&out, &report)["target"]["exit"]["code"], 0);
    assert!(Path::new(&report).is_file());
}
