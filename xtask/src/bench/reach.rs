//! The reachability scan's cost: its time and memory over a large heap at a
//! `run` target's exit (1 GiB in 1,048,576 linked blocks; `--quick`: 64 MiB),
//! and how long `attach` holds a program with a 100 MiB heap stopped for
//! each scan (the goal: under 100 ms).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::lifecycle::Row;
use super::measure::{self, Config, Measurement, Tools};
use super::targets::Check;

pub const SCAN_TIME: &str = "reach scan at exit: time";
pub const SCAN_MEMORY: &str = "reach scan at exit: its memory";
pub const STOPPED: &str = "attach scan, 100 MiB heap: target stopped";

/// The first scan in leaktrace's JSON report (it scanned one process).
fn first_scan(report: &Path) -> Result<serde_json::Value> {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let scan = r["scans"][0].clone();
    if scan.is_null() {
        bail!("the report has no scan");
    }
    Ok(scan)
}

pub fn rows(tools: &Tools, hold: &str, reach_heap: &Path, quick: bool) -> Vec<Row> {
    let blocks: u64 = if quick { 65_536 } else { 1_048_576 };
    let what = format!("{} MiB in {blocks} blocks of 1 KiB", blocks >> 10);
    let cmd = vec![hold.to_owned(), blocks.to_string(), "1024".to_owned()];
    let run = measure::run(tools, Config::Exact, &cmd, Duration::from_secs(600))
        .and_then(|m| first_scan(&tools.scratch.join("report.json")).map(|s| (m, s)));
    let (time, memory) = match run {
        Ok((m, s)) => {
            let mib = s["memory_bytes"].as_f64().map(|b| b / f64::from(1 << 20));
            (Ok((s["scan_ms"].as_f64(), m.clone())), Ok((mib, m)))
        }
        Err(e) => (Err(anyhow::anyhow!("{e:#}")), Err(e)),
    };
    vec![
        (format!("{SCAN_TIME} ({what})"), Config::Exact, "ms", time),
        (format!("{SCAN_MEMORY} ({what})"), Config::Exact, "MiB", memory),
        (STOPPED.to_owned(), Config::Exact, "ms (worst scan)", attach_stopped(tools, reach_heap)),
    ]
}

/// `attach --scan-every 1` to reach_heap while it builds a 100 MiB heap:
/// the longest stop among the scans that saw all of it.
fn attach_stopped(tools: &Tools, program: &Path) -> Result<(Option<f64>, Measurement)> {
    let mut target = Command::new(program).args(["100", "1024"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let (mut ctl, mut said) = (target.stdin.take().context("stdin")?, BufReader::new(target.stdout.take().context("stdout")?));
    let report = tools.scratch.join("attach-scan.json");
    let started = Instant::now();
    let mut lt = Command::new(&tools.leaktrace)
        .args(["attach", "--no-tui", "--pid", &target.id().to_string(), "--scan-every", "1", "--scan-at-end", "--duration", "6"])
        .args(["--format", "json", "--output"])
        .arg(&report)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err = BufReader::new(lt.stderr.take().context("stderr")?);
    let mut line = String::new();
    err.read_line(&mut line)?;
    ctl.write_all(b"a")?;
    let mut ready = String::new();
    said.read_line(&mut ready)?;
    let _ = lt.wait()?;
    err.read_to_string(&mut line)?;
    drop(ctl);
    let _ = target.wait();
    let stops: Vec<f64> = line
        .lines()
        .filter_map(|l| l.strip_prefix("leaktrace: scanned pid "))
        .filter(|l| l.split(": ").nth(1).and_then(|b| b.split(' ').next()?.parse::<u64>().ok()).is_some_and(|b| b >= 102_400))
        .filter_map(|l| l.rsplit("stopped ").next()?.trim_end_matches(" ms").parse().ok())
        .collect();
    if stops.len() < 2 {
        bail!("fewer than two scans of the whole heap:\n{line}");
    }
    let mut m = Measurement { wall_secs: started.elapsed().as_secs_f64(), ..Measurement::default() };
    measure::read_report(&report, &mut m)?;
    Ok((stops.into_iter().reduce(f64::max), m))
}

pub fn evaluate(r: &[super::BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(x) = r.iter().find(|x| x.workload == STOPPED) {
        checks.push(Check {
            target: "attach scan of a 100 MiB heap stops the target under 100 ms",
            figure: format!("{:.1} ms (the longest of the scans)", x.value.unwrap_or(f64::NAN)),
            pass: x.value.map(|v| v < 100.0),
        });
    }
    checks
}
