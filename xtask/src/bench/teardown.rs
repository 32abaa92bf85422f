//! Leaving: from leaktrace's report to its exit (the shell's prompt back),
//! and to the last of its programs unloaded, for a run with few links to
//! take off and one with many (a perf-event uprobe per allocator probe point).

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::programs::ProgramError;

use super::lifecycle::Row;
use super::measure::{Config, Measurement, Tools};
use super::targets::{value, Check};
use super::BenchResult;

/// The shell's prompt, and the last program gone, this long after the report at most.
const TARGET_MS: f64 = 300.0;

pub const TRUE_EXIT: &str = "teardown, run /bin/true: report → exit";
pub const TRUE_GONE: &str = "teardown, run /bin/true: report → last program unloaded";
pub const MANY_EXIT: &str = "teardown, perf-event uprobes: report → exit";
pub const MANY_GONE: &str = "teardown, perf-event uprobes: report → last program unloaded";

/// The programs `pid` holds (its program and link descriptors).
fn held_programs(pid: u32, into: &mut BTreeSet<u32>) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return };
    for fd in fds.filter_map(Result::ok) {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        into.extend(info.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse::<u32>().ok()));
    }
}

/// Every program loaded on the machine (one unloaded while listed is not).
fn loaded() -> Result<BTreeSet<u32>> {
    let gone = |e: &ProgramError| matches!(e, ProgramError::SyscallError(s) if s.io_error.kind() == ErrorKind::NotFound);
    aya::programs::loaded_programs()
        .filter(|p| !p.as_ref().is_err_and(gone))
        .map(|p| Ok(p.context("listing the loaded programs")?.id()))
        .collect()
}

/// One `leaktrace run` (text report on a pipe): milliseconds from the
/// report's last byte to leaktrace's exit, and to its last program unloaded.
fn once(tools: &Tools, cmd: &[String], options: &[&str]) -> Result<(f64, f64)> {
    let mut child = Command::new(&tools.leaktrace)
        .args(["run", "--no-tui", "--heap-probes", "uprobe"])
        .args(options)
        .arg("--")
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting leaktrace")?;
    let last_output = Arc::new(Mutex::new(None::<Instant>));
    let mut out = child.stdout.take().context("leaktrace's stdout")?;
    let last = last_output.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(out.read(&mut buf), Ok(n) if n > 0) {
            *last.lock().unwrap() = Some(Instant::now());
        }
    });
    // Polled while it runs: it holds every program from loading to its exit.
    let mut programs = BTreeSet::new();
    let exited = loop {
        held_programs(child.id(), &mut programs);
        if child.try_wait()?.is_some() {
            break Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let gone = loop {
        if loaded()?.is_disjoint(&programs) {
            break Instant::now();
        }
        if exited.elapsed() > Duration::from_secs(30) {
            bail!("leaktrace's programs still loaded 30 s after its exit");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = reader.join();
    let report = last_output.lock().unwrap().context("no report on stdout")?;
    if programs.is_empty() {
        bail!("no program seen in leaktrace's descriptors");
    }
    let ms = |t: Instant| t.saturating_duration_since(report).as_secs_f64() * 1e3;
    Ok((ms(exited), ms(gone)))
}

/// The median of `n` runs, as the two rows' results.
fn median(tools: &Tools, cmd: &[String], options: &[&str], n: usize) -> [Result<(Option<f64>, Measurement)>; 2] {
    let runs: Result<Vec<_>> = (0..n).map(|_| once(tools, cmd, options)).collect();
    let pick = |which: fn(&(f64, f64)) -> f64| -> Result<(Option<f64>, Measurement)> {
        let runs = runs.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut v: Vec<f64> = runs.iter().map(which).collect();
        v.sort_by(f64::total_cmp);
        let m = v[v.len() / 2];
        Ok((Some(m), Measurement { wall_secs: m / 1e3, ..Measurement::default() }))
    };
    [pick(|r| r.0), pick(|r| r.1)]
}

pub fn rows(tools: &Tools, malloc_loop: &str, quick: bool) -> Vec<Row> {
    let n = if quick { 3 } else { 9 };
    let mut rows = Vec::new();
    let [exit, gone] = median(tools, &["/bin/true".to_owned()], &[], n);
    rows.push((TRUE_EXIT.to_owned(), Config::Exact, "ms", exit));
    rows.push((TRUE_GONE.to_owned(), Config::Exact, "ms", gone));
    let cmd = [malloc_loop.to_owned(), "1".into(), "0".into(), "1000".into()];
    let [exit, gone] = median(tools, &cmd, &["--uprobe-links", "perf"], n);
    rows.push((MANY_EXIT.to_owned(), Config::Exact, "ms", exit));
    rows.push((MANY_GONE.to_owned(), Config::Exact, "ms", gone));
    rows
}

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (row, target) in [
        (TRUE_EXIT, "run /bin/true: shell prompt ≤ 0.3 s after the report"),
        (TRUE_GONE, "run /bin/true: every program unloaded ≤ 0.3 s after the report"),
        (MANY_EXIT, "perf-event uprobes: shell prompt ≤ 0.3 s after the report"),
        (MANY_GONE, "perf-event uprobes: every program unloaded ≤ 0.3 s after the report"),
    ] {
        if let Some(ms) = value(r, row, Config::Exact) {
            checks.push(Check { target, figure: format!("{ms:.0} ms"), pass: Some(ms <= TARGET_MS) });
        }
    }
    checks
}
