//! The in-process recorder's targets (issue 23): per malloc/free pair at
//! most heaptrack's on code without frame pointers, a server at 0.8 × its
//! untraced throughput, nothing lost, and an attached program's speed back
//! once leaktrace takes the recorder out.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::measure::{Config, Measurement, Tools};
use super::targets::{value, Check};
use super::BenchResult;

const SHAPES: [(u32, u32); 4] = [(1, 0), (1, 24), (2, 0), (2, 24)];
pub const RATE_ROW: &str = "attach in-process: allocation rate after detach ÷ before";

fn workload(threads: u32, depth: u32) -> String {
    format!("malloc/free {threads}T depth {depth} (no frame pointers)")
}

/// (workload, configuration, command) of the per-pair runs.
pub fn runs(exe: &dyn Fn(&str) -> String, pairs: u64) -> Vec<(String, Config, Vec<String>)> {
    let mut out = Vec::new();
    for (threads, depth) in SHAPES {
        let cmd = vec![exe("malloc_loop_nofp"), threads.to_string(), depth.to_string(), pairs.to_string()];
        for c in [Config::Untraced, Config::InProcess, Config::Heaptrack] {
            out.push((workload(threads, depth), c, cmd.clone()));
        }
    }
    out
}

/// The rate program's "rate=N" lines: the median of the next `n`.
fn median_rate(lines: &mut impl Iterator<Item = String>, n: usize) -> Result<f64> {
    let mut v: Vec<f64> = lines.filter_map(|l| l.strip_prefix("rate=").and_then(|r| r.parse().ok())).take(n).collect();
    if v.len() < n {
        bail!("the rate program stopped printing");
    }
    v.sort_by(f64::total_cmp);
    Ok(v[n / 2])
}

/// A program allocating flat out: its rate untraced, then leaktrace
/// attached in-process for 2 s, then its rate once the recorder is taken out.
pub fn attach_rate(tools: &Tools, rate: &str) -> Result<(Option<f64>, Measurement)> {
    let mut prog = Command::new(rate).stdout(Stdio::piped()).spawn().context("starting the rate program")?;
    let mut lines = BufReader::new(prog.stdout.take().expect("piped")).lines().map_while(Result::ok);
    let run = (|| {
        median_rate(&mut lines, 2)?; // warm-up
        let before = median_rate(&mut lines, 8)?;
        let report = tools.scratch.join("attach-rate.json");
        let out = Command::new(&tools.leaktrace)
            .args(["attach", "--no-tui", "--pid", &prog.id().to_string(), "--duration", "2", "--heap-probes", "inprocess"])
            .args(["--format", "json", "--output"])
            .arg(&report)
            .output()
            .context("running leaktrace attach")?;
        if !out.status.success() {
            bail!("leaktrace attach failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // What the program printed while traced is read and dropped first.
        let traced = std::time::Instant::now();
        while traced.elapsed() < Duration::from_millis(500) {
            median_rate(&mut lines, 1)?;
        }
        let after = median_rate(&mut lines, 8)?;
        let mut m = Measurement::default();
        super::measure::read_report(&report, &mut m)?;
        Ok((Some(after / before), m))
    })();
    let _ = prog.kill();
    let _ = prog.wait();
    run
}

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (threads, depth) in SHAPES {
        let w = workload(threads, depth);
        if let (Some(ip), Some(ht)) = (value(r, &w, Config::InProcess), value(r, &w, Config::Heaptrack)) {
            checks.push(Check {
                target: "in-process per malloc/free pair ≤ heaptrack's (no frame pointers)",
                figure: format!("{w}: {ip:.0} vs {ht:.0} ns = {:.2}×", ip / ht),
                pass: Some(ip <= ht),
            });
        }
    }
    let s = "redis SET/GET";
    if let (Some(ip), Some(base)) = (value(r, s, Config::InProcess), value(r, s, Config::Untraced)) {
        checks.push(Check {
            target: "redis SET/GET under leaktrace run, in-process ≥ 0.8 × untraced",
            figure: format!("{ip:.0} vs {base:.0} req/s = {:.2}×", ip / base),
            pass: Some(ip >= 0.8 * base),
        });
    }
    let lost: Vec<u64> = r.iter().filter(|x| x.config == Config::InProcess.name()).filter_map(|x| x.m.lost_events).collect();
    if !lost.is_empty() {
        let total: u64 = lost.iter().sum();
        checks.push(Check {
            target: "0 records lost in-process, every workload (a full ring makes the recorder wait)",
            figure: format!("{total} lost over {} runs", lost.len()),
            pass: Some(total == 0),
        });
    }
    if let Some(ratio) = value(r, RATE_ROW, Config::InProcess) {
        checks.push(Check {
            target: "after an in-process attach, the program's allocation rate within 10% of before",
            figure: format!("{ratio:.2}× its rate before"),
            pass: Some(ratio >= 0.9),
        });
    }
    checks
}
