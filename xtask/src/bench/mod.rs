//! `cargo xtask bench`: overhead on the traced program and throughput without
//! loss, leaktrace against the probe floor and the anchors, in one run.
//! Writes bench/results.md and bench/results.json.

mod inprocess;
mod lifecycle;
mod measure;
mod reach;
mod server;
mod soak;
mod syscalls;
mod targets;
mod teardown;
mod unwind;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use measure::{Config, Measurement, Tools};

pub struct BenchOptions {
    /// A short smoke run (fewer iterations and configurations).
    pub quick: bool,
    /// Only these rows, printed and judged; bench/results.* stay as they are.
    pub only: Option<Rows>,
}

/// Groups of rows that can be run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rows {
    /// From the report to leaktrace's exit and to its last program unloaded.
    Teardown,
}

/// One cell of the results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub workload: String,
    pub config: &'static str,
    /// ns per op, requests per second, or wall seconds (see `unit`).
    pub value: Option<f64>,
    pub unit: &'static str,
    pub m: Measurement,
    pub error: Option<String>,
}

fn cc(out: &Path, src: &Path, extra: &[&str]) -> Result<()> {
    let st = Command::new("cc").args(["-O2", "-g", "-fno-omit-frame-pointer"]).args(extra).arg("-o").arg(out).arg(src).status()?;
    if !st.success() {
        bail!("compiling {} failed", src.display());
    }
    Ok(())
}

fn build(root: &Path, scratch: &Path) -> Result<PathBuf> {
    let st = Command::new(env!("CARGO")).current_dir(root).args(["build", "--release", "-p", "tracer-user"]).status()?;
    if !st.success() {
        bail!("building leaktrace failed");
    }
    let w = root.join("bench/workloads");
    cc(&scratch.join("malloc_loop"), &w.join("malloc_loop.c"), &["-pthread"])?;
    cc(&scratch.join("malloc_loop_nofp"), &w.join("malloc_loop.c"), &["-pthread", "-fomit-frame-pointer"])?;
    cc(&scratch.join("fd_churn"), &w.join("fd_churn.c"), &[])?;
    cc(&scratch.join("hold"), &w.join("hold.c"), &[])?;
    cc(&scratch.join("rate"), &w.join("rate.c"), &["-fomit-frame-pointer"])?;
    cc(&scratch.join("forker"), &w.join("forker.c"), &[])?;
    cc(&scratch.join("soak"), &w.join("soak.c"), &[])?;
    cc(&scratch.join("reach_heap"), &root.join("tracer-user/tests/programs/reach_heap.c"), &[])?;
    syscalls::build(&w, scratch)?;
    crate::fixture::build(root)?;
    Ok(root.join("target/release/leaktrace"))
}

pub fn run(root: &Path, opts: &BenchOptions) -> Result<()> {
    crate::setup::setup(&["bpftrace", "redis-server", "heaptrack"])?;
    let scratch = root.join("target/bench");
    std::fs::create_dir_all(&scratch)?;
    let leaktrace = build(root, &scratch)?;
    let tools = Tools { leaktrace, anchors: root.join("bench/anchors"), scratch: scratch.clone() };
    let exe = |n: &str| scratch.join(n).display().to_string();
    if opts.only == Some(Rows::Teardown) {
        let results: Vec<BenchResult> = teardown::rows(&tools, &exe("malloc_loop"), opts.quick).into_iter().map(result).collect();
        print!("{}", targets::markdown(&results, &teardown::evaluate(&results), opts.quick));
        return Ok(());
    }
    let pairs: u64 = if opts.quick { 100_000 } else { 500_000 };
    let mut results = Vec::new();
    let mut record = |workload: String, config: Config, unit: &'static str, r: Result<(Option<f64>, Measurement)>| {
        results.push(result((workload, config, unit, r)));
    };
    let limit = Duration::from_secs(300);
    let malloc_configs = Config::for_malloc(opts.quick);
    for (threads, depth) in [(1, 0), (1, 24), (2, 0), (2, 24)] {
        let name = format!("malloc/free {threads}T depth {depth}");
        for &c in malloc_configs {
            let cmd = vec![exe("malloc_loop"), threads.to_string(), depth.to_string(), pairs.to_string()];
            record(name.clone(), c, "ns/pair", measure::run(&tools, c, &cmd, limit).map(|m| (m.ns_per_op, m)));
        }
    }
    for (workload, config, cmd) in unwind::runs(&exe, pairs).into_iter().chain(inprocess::runs(&exe, pairs)) {
        record(workload, config, "ns/pair", measure::run(&tools, config, &cmd, limit).map(|m| (m.ns_per_op, m)));
    }
    let cmd = vec![exe("fd_churn"), if opts.quick { "20000" } else { "100000" }.to_owned()];
    for (c, r) in syscalls::churn(&tools, &cmd, if opts.quick { 1 } else { 5 }, limit) {
        record(syscalls::CHURN.into(), c, "ns/op", r);
    }
    let valgrind = measure::run(&tools, Config::Valgrind, &cmd, limit).map(|m| (m.ns_per_op, m));
    record(syscalls::CHURN.into(), Config::Valgrind, "ns/op", valgrind);
    let driver = crate::fixture::driver(root, "leaky").display().to_string();
    // About a second each, where a run's start and end vary by a tenth: the median of three.
    let n = if opts.quick { 1 } else { 3 };
    for &c in &[Config::Untraced, Config::Exact, Config::InProcess, Config::Valgrind, Config::Heaptrack] {
        record("fixture driver (leaky)".into(), c, "s", lifecycle::median_wall(&tools, c, std::slice::from_ref(&driver), n));
    }
    let requests = if opts.quick { 20_000 } else { 100_000 };
    for &c in server::configs(opts.quick) {
        record("redis SET/GET".into(), c, "req/s", server::run(&tools, c, requests).map(|(rps, m)| (Some(rps), m)));
    }
    // Two threads allocating flat out: nothing may be lost.
    let secs = if opts.quick { "3" } else { "10" };
    let cmd = vec![exe("malloc_loop"), "2".into(), "0".into(), "0".into(), secs.into()];
    for c in [Config::Exact, Config::InProcess] {
        let flat = measure::run(&tools, c, &cmd, limit).map(|m| (m.ns_per_op, m));
        record(format!("2 threads flat out {secs}s"), c, "ns/pair", flat);
    }
    // leaktrace's own memory with 1,000,000 outstanding allocations.
    let cmd = vec![exe("hold"), "1000000".into()];
    record(
        "1,000,000 outstanding".into(),
        Config::Exact,
        "MiB RSS",
        measure::run(&tools, Config::Exact, &cmd, limit).map(|m| (m.tracer_peak_rss_mib, m)),
    );
    record(inprocess::RATE_ROW.into(), Config::InProcess, "×", inprocess::attach_rate(&tools, &exe("rate")));
    reach::rows(&tools, &exe("hold"), &scratch.join("reach_heap"), opts.quick).into_iter().for_each(|(w, c, u, r)| record(w, c, u, r));
    // leaktrace attached to a churning program: its memory stays flat.
    let secs = if opts.quick { 40 } else { 600 };
    let soak = soak::run(&tools, &scratch.join("soak"), secs).map(|(growth, m)| (Some(growth), m));
    record(format!("soak: attached {secs}s to a churning program"), Config::Exact, "MiB RSS growth", soak);
    for (workload, c, unit, r) in lifecycle::rows(&tools, &exe("forker"), opts.quick) {
        record(workload, c, unit, r);
    }
    for (workload, c, unit, r) in teardown::rows(&tools, &exe("malloc_loop"), opts.quick) {
        record(workload, c, unit, r);
    }
    results.extend(syscalls::run(root, &tools, opts.quick));
    write_results(root, &results, opts.quick)
}

/// One row's result, said on stderr as it comes.
fn result((workload, config, unit, r): lifecycle::Row) -> BenchResult {
    let (value, m, error) = match r {
        Ok((v, m)) => (v, m, None),
        Err(e) => (None, Measurement::default(), Some(format!("{e:#}"))),
    };
    eprintln!(
        "bench: {workload:<32} {:<36} {}",
        config.name(),
        value.map_or_else(|| error.clone().unwrap_or_default(), |v| format!("{v:.1} {unit}"))
    );
    BenchResult { workload, config: config.name(), value, unit, m, error }
}

/// The targets judged and the table, to bench/results.md and results.json.
fn write_results(root: &Path, results: &[BenchResult], quick: bool) -> Result<()> {
    let checks = targets::evaluate(results);
    let md = targets::markdown(results, &checks, quick);
    print!("{md}");
    let dir = root.join("bench");
    std::fs::write(dir.join("results.md"), &md).context("writing bench/results.md")?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(results)?)?;
    eprintln!("bench: wrote bench/results.md and bench/results.json");
    Ok(())
}
