//! `cargo xtask matrix`: the kernel smoke suite (`suite.rs`) on Debian 12's
//! own kernels (`kernels.rs`), each booted under QEMU (`guest.rs`) with the
//! host's `/` as its root (read-only, a tmpfs overlay on top) so the guest
//! runs the tests the host built, at the host's paths.

mod guest;
mod initramfs;
mod kernels;
mod suite;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use suite::{Case, Status};

pub struct MatrixOptions {
    /// Only the kernel series named (`6.1`, `6.12`).
    pub kernel: Option<String>,
    /// Only the tests whose item, binary or name contains this.
    pub filter: Option<String>,
    /// A guest still running after this is killed and fails.
    pub timeout: Duration,
}

/// Variables the tests read, passed from the host into the guest.
const PASSED_ENV: [&str; 5] = ["HOME", "USER", "LOGNAME", "LANG", "LEAKTRACE_TEST_NODE"];

/// Builds the suite's test binaries on the host; returns each binary's
/// executable, and leaktrace's (the one the tests run).
fn build_tests(root: &Path, cargo: &Path, path: &OsStr, cases: &[Case]) -> Result<BTreeMap<String, PathBuf>> {
    let mut binaries: Vec<&str> = cases.iter().map(|c| c.check.binary).collect();
    binaries.sort_unstable();
    binaries.dedup();
    // The workspace's default members, as `cargo test` builds them: the same features, so nothing is built twice.
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).env("PATH", path).args(["test", "--no-run", "--message-format=json-render-diagnostics"]);
    for b in &binaries {
        cmd.args(["--test", b]);
    }
    eprintln!("matrix: building the test binaries on the host ({})", binaries.join(", "));
    let out = cmd.stderr(std::process::Stdio::inherit()).output().context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binaries failed ({})", out.status);
    }
    let mut exes = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) else { continue };
        let wanted = if msg["profile"]["test"] == true { binaries.contains(&name) } else { name == suite::LEAKTRACE };
        if wanted {
            exes.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    if let Some(missing) = binaries.iter().chain([&suite::LEAKTRACE]).find(|b| !exes.contains_key(**b)) {
        bail!("cargo built no test executable {missing}");
    }
    Ok(exes)
}

/// What one kernel gave.
struct KernelRun {
    series: &'static str,
    package: String,
    accel: guest::Accel,
    boot_secs: Option<f64>,
    /// `uname -r` in the guest, and its uptime when its root was ready.
    booted: Option<(String, f64)>,
    wall: Duration,
    outcomes: Vec<suite::Outcome>,
    /// `leaktrace check` in the guest: its exit code and output.
    check: Option<(i32, Vec<String>)>,
    /// Why the guest as a whole failed, if it did.
    problem: Option<String>,
    log: PathBuf,
}

/// Says on stderr what the guest is doing, from its console's markers;
/// `started` keeps the running test's start (guest uptime).
fn progress(series: &str, cases: &[Case], started: &mut f64, line: &str) {
    let Some(at) = line.find("@@matrix ") else { return };
    let words: Vec<&str> = line[at..].split_whitespace().skip(1).collect();
    match words.as_slice() {
        ["booted", release, up, ..] => eprintln!("matrix {series}: {release} booted ({up} s of guest uptime)"),
        ["start", i, up, ..] => {
            *started = up.parse().unwrap_or(0.0);
            if let Some(c) = i.parse::<usize>().ok().and_then(|i| cases.get(i)) {
                eprintln!("matrix {series}: [{}/{}] {} ...", i.parse::<usize>().unwrap_or(0) + 1, cases.len(), c.id());
            }
        }
        ["end", _, rc, up, ..] => {
            let secs = up.parse::<f64>().unwrap_or(*started) - *started;
            eprintln!(
                "matrix {series}:     {} in {secs:.1} s",
                if *rc == "0" { "exit 0".to_owned() } else { format!("FAILED (exit {rc})") }
            );
        }
        ["fatal", ..] => eprintln!("matrix {series}: guest failed: {}", words[1..].join(" ")),
        _ => {}
    }
}

/// What the guest runs: the suite's script, and the directories it writes to;
/// and how, once the first kernel has shown whether KVM runs it.
struct GuestJob {
    script: String,
    writable: Vec<PathBuf>,
    accel: Mutex<Option<guest::Accel>>,
}

fn run_kernel(
    root: &Path,
    series: &'static kernels::Series,
    kernel: &kernels::Kernel,
    cases: &[Case],
    job: &GuestJob,
    opts: &MatrixOptions,
) -> Result<KernelRun> {
    let work = root.join("target/matrix").join(series.name);
    std::fs::create_dir_all(&work)?;
    let initramfs = initramfs::build(&work, kernel, &job.script, &job.writable)?;
    let accel = *job.accel.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| guest::detect(&kernel.vmlinuz, &work));
    eprintln!("matrix {}: booting {} {} under {}", series.name, kernel.package, kernel.version, accel.name());
    let boot =
        guest::Boot { vmlinuz: &kernel.vmlinuz, initramfs: &initramfs, work: &work, accel, timeout: opts.timeout, cmdline: series.cmdline };
    let started = Instant::now();
    let (mut boot_secs, mut test_started) = (None, 0.0);
    let out = guest::boot(&boot, |line| {
        if boot_secs.is_none() && line.contains("@@matrix booted") {
            boot_secs = Some(started.elapsed().as_secs_f64());
        }
        progress(series.name, cases, &mut test_started, line);
    })?;
    let problem = if out.timed_out {
        Some(format!("still running after {} s: killed", opts.timeout.as_secs()))
    } else if let Some(why) = suite::fatal(&out.serial) {
        Some(format!("the guest failed before the suite: {why}"))
    } else if !suite::done(&out.serial) {
        Some("the guest ended before the suite did".to_owned())
    } else {
        None
    };
    Ok(KernelRun {
        series: series.name,
        package: format!("{} {}", kernel.package, kernel.version),
        accel,
        boot_secs,
        booted: suite::booted(&out.serial),
        wall: out.wall,
        outcomes: suite::parse(cases, &out.serial),
        check: suite::check(&out.serial),
        problem,
        log: work.join("serial.log"),
    })
}

/// The lines of a failed test's output worth showing: from its first panic
/// to libtest's summary (the whole output is in the console log).
fn failure_excerpt(output: &[String]) -> Vec<&str> {
    let from = output.iter().position(|l| l.contains("panicked at")).unwrap_or(0);
    output[from..]
        .iter()
        .map(String::as_str)
        .take_while(|l| *l != "failures:" && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .filter(|l| !l.trim().is_empty())
        .take(40)
        .collect()
}

fn report(run: &KernelRun, cases: &[Case]) -> bool {
    let boot = match (&run.booted, run.boot_secs) {
        (Some((release, up)), Some(wall)) => format!("{release} booted in {wall:.1} s ({up:.1} s of guest uptime)"),
        _ => "no boot".to_owned(),
    };
    let suite: f64 = run.outcomes.iter().map(|o| o.secs).sum();
    println!(
        "\n=== kernel {} ({}, {}): {boot}, {suite:.0} s of tests, {:.0} s in all",
        run.series,
        run.package,
        run.accel.name(),
        run.wall.as_secs_f64()
    );
    let mut ok = run.problem.is_none();
    for (c, o) in cases.iter().zip(&run.outcomes) {
        let status = match o.status {
            Status::Passed => "ok".to_owned(),
            Status::Failed(rc) => format!("FAILED (exit {rc})"),
            Status::TimedOut => "FAILED (time limit)".to_owned(),
            Status::NoSuchTest => "FAILED (no test of that name ran)".to_owned(),
            Status::Unfinished => "FAILED (unfinished: the guest ended)".to_owned(),
            Status::NotRun => "FAILED (not run: the guest ended)".to_owned(),
        };
        println!("  {status:<34} {:>6.1} s  {} — {}", o.secs, c.check.what, c.id());
        if o.status != Status::Passed {
            ok = false;
            for l in failure_excerpt(&o.output) {
                println!("      | {l}");
            }
        }
    }
    match &run.check {
        Some((rc, lines)) => {
            println!("  leaktrace check (exit {rc}):");
            for l in lines {
                println!("      {l}");
            }
        }
        None => println!("  leaktrace check did not run"),
    }
    if let Some(p) = &run.problem {
        println!("  kernel {}: {p}", run.series);
    }
    println!("  console: {}", run.log.display());
    ok
}

fn series(kernel: Option<&str>) -> Result<Vec<&'static kernels::Series>> {
    let chosen: Vec<_> = kernels::SERIES.iter().filter(|s| kernel.is_none_or(|k| s.name == k)).collect();
    if chosen.is_empty() {
        let names: Vec<_> = kernels::SERIES.iter().map(|s| s.name).collect();
        bail!("--kernel {}: the matrix has {}", kernel.unwrap_or(""), names.join(", "));
    }
    Ok(chosen)
}

/// Runs the suite on each kernel and fails if any test or guest did.
pub fn run(root: &Path, cargo: &Path, path: &OsStr, opts: &MatrixOptions) -> Result<()> {
    let chosen = series(opts.kernel.as_deref())?;
    let cases = suite::select(opts.filter.as_deref());
    if cases.is_empty() {
        bail!("--filter {}: no test of the smoke suite matches", opts.filter.as_deref().unwrap_or(""));
    }
    for tool in ["qemu-system-x86_64", "cpio", "depmod", "xz"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_or(true, |o| !o.status.success()) {
            bail!("{tool} is missing: cargo xtask setup installs it");
        }
    }
    crate::fixture::build(root)?;
    let exes = build_tests(root, cargo, path, &cases)?;
    let mut env = vec![("PATH".to_owned(), path.to_string_lossy().into_owned())];
    env.extend(PASSED_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))));
    // The checkout (a test may build the fixture or write beside it) and HOME.
    let writable = match std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_dir()) {
        Some(home) if root.starts_with(&home) => vec![home],
        Some(home) => vec![root.to_path_buf(), home],
        None => vec![root.to_path_buf()],
    };
    let job = GuestJob { script: suite::script(&cases, &exes, &root.join("tracer-user"), &env), writable, accel: Mutex::new(None) };
    // Kernels are fetched one after the other (apt holds a lock), then the
    // guests run side by side: each is mostly waiting on its emulated tests.
    let kernels: Vec<_> = chosen.iter().map(|s| kernels::fetch(root, s)).collect();
    let runs: Vec<Result<KernelRun>> = std::thread::scope(|scope| {
        let guests: Vec<_> = chosen
            .iter()
            .zip(&kernels)
            .map(|(&s, k)| {
                let (job, cases) = (&job, &cases);
                scope.spawn(move || match k {
                    Ok(k) => run_kernel(root, s, k, cases, job, opts),
                    Err(e) => Err(anyhow::anyhow!("{e:#}")),
                })
            })
            .collect();
        guests.into_iter().map(|g| g.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the guest's thread panicked")))).collect()
    });
    let mut failed = Vec::new();
    for (s, run) in chosen.iter().zip(runs) {
        match run {
            Ok(run) if report(&run, &cases) => {}
            Ok(_) => failed.push(s.name),
            Err(e) => {
                println!("\n=== kernel {}: no guest: {e:#}", s.name);
                failed.push(s.name);
            }
        }
    }
    for (test, why) in suite::LEFT_OUT {
        println!("not in the matrix: {test}: {why}");
    }
    if !failed.is_empty() {
        bail!("the kernel smoke suite failed on {}", failed.join(", "));
    }
    println!("\nkernel smoke suite: every test passed on every kernel");
    Ok(())
}
