//! "An untraced process's syscall cost while leaktrace traces another": tight
//! loops of getppid() (a call leaktrace does not follow) and close(-1) (one
//! it does) in a process nobody traces, with nothing loaded, with one empty
//! per-syscall tracepoint (the kernel's floor for syscall tracing: every
//! task's system calls take the slow path), and while leaktrace traces
//! another process. Target: leaktrace's getppid() overhead within 10% of the
//! floor's. Also: the socket/timerfd churn overhead no worse than the last
//! recorded run's (bench/results.json before this run), untraced and traced
//! runs taking turns ([`churn`]).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::measure::{self, read_report, Config, Measured, Measurement, Tools};
use super::targets::{value, Check};
use super::BenchResult;

const GETPPID: &str = "untraced getppid()";
const CLOSE: &str = "untraced close(-1)";
const FLOOR: &str = "one empty per-syscall tracepoint (floor)";
const TRACING: &str = "leaktrace tracing another process";
pub const CHURN: &str = "socket+timerfd open/close";
const PREVIOUS: &str = "previous run: leaktrace exact ÷ untraced";

/// A child that is stopped (its stdin closed, killed after 30 s) and reaped on every path.
struct Held(Child, Option<ChildStdin>);

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.1.take());
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with piped stdin and returns once a line of `stream` contains `needle`.
fn start(cmd: &mut Command, needle: &str, on_stderr: bool) -> Result<Held> {
    cmd.stdin(Stdio::piped());
    if on_stderr {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdin = child.stdin.take();
    let stream: Box<dyn std::io::Read + Send> =
        if on_stderr { Box::new(child.stderr.take().expect("piped")) } else { Box::new(child.stdout.take().expect("piped")) };
    let held = Held(child, stdin);
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains(&needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).context("it did not say it was ready within 60 s")?;
    Ok(held)
}

/// (getppid ns, close(-1) ns) per call in a fresh untraced process.
fn measure(tools: &Tools, calls: u64) -> Result<(f64, f64)> {
    let out = Command::new(tools.scratch.join("syscall_cost")).arg(calls.to_string()).output().context("running syscall_cost")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| text.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok());
    match (get("getppid_ns="), get("close_ns=")) {
        (Some(g), Some(c)) => Ok((g, c)),
        _ => bail!("syscall_cost printed no figures: {text}"),
    }
}

/// The loops under `load`; for leaktrace, its report's figures too.
fn under(tools: &Tools, load: &'static str, calls: u64) -> Result<((f64, f64), Measurement)> {
    let mut m = Measurement::default();
    match load {
        FLOOR => {
            let _floor = start(&mut Command::new(tools.scratch.join("empty_tracepoint")), "attached", false)?;
            Ok((measure(tools, calls)?, m))
        }
        TRACING => {
            // Another process (cat, waiting on its stdin), attached to the way a server is.
            let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().context("starting cat")?;
            let stdin = cat.stdin.take();
            let other = Held(cat, stdin);
            let report = tools.scratch.join("syscalls-report.json");
            let _ = std::fs::remove_file(&report);
            let mut lt = Command::new(&tools.leaktrace);
            lt.args(["attach", "--no-tui", "--format", "json", "--pid", &other.0.id().to_string(), "--output"]).arg(&report);
            let tracer = start(&mut lt, "tracing pid", true)?;
            let figures = measure(tools, calls)?;
            // SAFETY: signalling our own child: leaktrace detaches and writes its report.
            unsafe { libc::kill(tracer.0.id() as i32, libc::SIGINT) };
            drop(tracer);
            drop(other);
            read_report(&report, &mut m)?;
            Ok((figures, m))
        }
        _ => Ok((measure(tools, calls)?, m)),
    }
}

/// The churn untraced and under leaktrace, the two taking turns `rounds`
/// times, each the median of its runs: the target compares their ratio
/// with the last run's, and a drift of the machine while they run moves
/// both sides, not one.
pub fn churn(tools: &Tools, cmd: &[String], rounds: usize, limit: Duration) -> Vec<(Config, Measured)> {
    let configs = [Config::Untraced, Config::Exact];
    let mut runs: [Result<Vec<Measurement>>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
    for _ in 0..rounds {
        for (c, taken) in configs.iter().zip(runs.iter_mut()) {
            if let Ok(list) = taken {
                match measure::run(tools, *c, cmd, limit) {
                    Ok(m) => list.push(m),
                    Err(e) => *taken = Err(e),
                }
            }
        }
    }
    configs
        .into_iter()
        .zip(runs)
        .map(|(c, taken)| {
            let median = taken.map(|list| {
                let m = measure::median_by(list, |m| m.ns_per_op.unwrap_or(f64::NAN));
                (m.ns_per_op, m)
            });
            (c, median)
        })
        .collect()
}

/// The rows, and the previous run's churn ratio as a row of its own.
pub fn run(root: &Path, tools: &Tools, quick: bool) -> Vec<BenchResult> {
    let calls = if quick { 200_000 } else { 2_000_000 };
    let mut out = Vec::new();
    for load in [Config::Untraced.name(), FLOOR, TRACING] {
        let (figures, m, error) = match under(tools, load, calls) {
            Ok((f, m)) => (Some(f), m, None),
            Err(e) => (None, Measurement::default(), Some(format!("{e:#}"))),
        };
        for (workload, v) in [(GETPPID, figures.map(|f| f.0)), (CLOSE, figures.map(|f| f.1))] {
            eprintln!(
                "bench: {workload:<32} {load:<36} {}",
                v.map_or_else(|| error.clone().unwrap_or_default(), |v| format!("{v:.1} ns/call"))
            );
            out.push(BenchResult {
                workload: workload.into(),
                config: load,
                value: v,
                unit: "ns/call",
                m: m.clone(),
                error: error.clone(),
            });
        }
    }
    if let Some(ratio) = previous_churn_ratio(root) {
        out.push(BenchResult {
            workload: CHURN.into(),
            config: PREVIOUS,
            value: Some(ratio),
            unit: "×",
            m: Measurement::default(),
            error: None,
        });
    }
    out
}

/// leaktrace exact ÷ untraced for the churn, from the last recorded results.
fn previous_churn_ratio(root: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(root.join("bench/results.json")).ok()?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
    let get = |c: Config| rows.iter().find(|r| r["workload"] == CHURN && r["config"] == c.name()).and_then(|r| r["value"].as_f64());
    Some(get(Config::Exact)? / get(Config::Untraced)?)
}

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let at = |w: &str, c: &str| r.iter().find(|x| x.workload == w && x.config == c).and_then(|x| x.value);
    let base = at(GETPPID, Config::Untraced.name());
    if let (Some(base), Some(floor), Some(lt)) = (base, at(GETPPID, FLOOR), at(GETPPID, TRACING)) {
        let (f, l) = (floor - base, lt - base);
        // With another syscall tracer loaded meanwhile, "nothing loaded" was already on the slow path.
        let busy = f < 20.0;
        checks.push(Check {
            target:
                "an untraced process's getppid() while leaktrace traces another: overhead within 10% of one empty per-syscall tracepoint's",
            figure: if busy {
                format!("+{l:.0} ns vs +{f:.0} ns on {base:.0} ns: another syscall tracer was loaded, not judged")
            } else {
                format!("+{l:.0} ns vs +{f:.0} ns (on {base:.0} ns) = {:.2}×", l / f)
            },
            pass: (!busy).then_some(l <= 1.1 * f),
        });
    }
    if let (Some(base), Some(floor), Some(lt)) = (at(CLOSE, Config::Untraced.name()), at(CLOSE, FLOOR), at(CLOSE, TRACING)) {
        checks.push(Check {
            target: "an untraced process's close(-1) while leaktrace traces another (informational: close runs leaktrace's program)",
            figure: format!("+{:.0} ns (floor +{:.0} ns, on {base:.0} ns)", lt - base, floor - base),
            pass: None,
        });
    }
    let now = value(r, CHURN, Config::Exact).zip(value(r, CHURN, Config::Untraced)).map(|(e, u)| e / u);
    if let (Some(now), Some(before)) = (now, at(CHURN, PREVIOUS)) {
        checks.push(Check {
            target: "socket/timerfd open-close churn overhead no worse than the previous recorded run's (5% for noise)",
            figure: format!("{now:.2}× untraced vs {before:.2}× before"),
            pass: Some(now <= before * 1.05),
        });
    }
    checks
}

/// The loop and the floor's loader, into `scratch`.
pub fn build(workloads: &Path, scratch: &Path) -> Result<()> {
    super::cc(&scratch.join("syscall_cost"), &workloads.join("syscall_cost.c"), &[])?;
    super::cc(&scratch.join("empty_tracepoint"), &workloads.join("empty_tracepoint.c"), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: &str, config: &'static str, value: f64) -> BenchResult {
        BenchResult { workload: workload.into(), config, value: Some(value), unit: "ns/call", m: Measurement::default(), error: None }
    }

    fn getppid(base: f64, floor: f64, lt: f64) -> Option<bool> {
        let r = [row(GETPPID, Config::Untraced.name(), base), row(GETPPID, FLOOR, floor), row(GETPPID, TRACING, lt)];
        evaluate(&r)[0].pass
    }

    #[test]
    fn the_syscall_target_compares_overheads_with_the_floors() {
        assert_eq!(getppid(167.0, 222.0, 225.0), Some(true), "+58 against +55");
        assert_eq!(getppid(167.0, 222.0, 272.0), Some(false), "+105 against +55: a raw sys_exit program");
        assert_eq!(getppid(222.0, 225.0, 230.0), None, "the floor was already paid: not judged");
    }

    #[test]
    fn the_churn_is_judged_against_the_previous_run() {
        let r = [row(CHURN, Config::Untraced.name(), 4000.0), row(CHURN, Config::Exact.name(), 7000.0), row(CHURN, PREVIOUS, 1.77)];
        assert_eq!(evaluate(&r)[0].pass, Some(true));
        let r = [row(CHURN, Config::Untraced.name(), 4000.0), row(CHURN, Config::Exact.name(), 8000.0), row(CHURN, PREVIOUS, 1.77)];
        assert_eq!(evaluate(&r)[0].pass, Some(false));
    }
}
