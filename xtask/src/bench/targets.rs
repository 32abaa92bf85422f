//! The targets, judged on ratios from one run, and the results table.

use std::fmt::Write;

use super::measure::Config;
use super::BenchResult;

pub struct Check {
    pub target: &'static str,
    pub figure: String,
    pub pass: Option<bool>,
}

pub fn value(r: &[BenchResult], workload: &str, c: Config) -> Option<f64> {
    r.iter().find(|x| x.workload == workload && x.config == c.name()).and_then(|x| x.value)
}

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let w = "malloc/free 1T depth 0";
    let base = value(r, w, Config::Untraced).unwrap_or(0.0);
    let over = |c| value(r, w, c).map(|v| v - base);
    let mut checks = Vec::new();
    // One stack capture as bpftrace measures it: its floor with and without ustack(8).
    let stack = match (over(Config::BpftraceFloorStack), over(Config::BpftraceFloor)) {
        (Some(a), Some(b)) => Some((a - b).max(0.0)),
        _ => None,
    };
    if let (Some(exact), Some(floor), Some(stack)) = (over(Config::Exact), over(Config::ProbeFloor), stack) {
        let ratio = exact / (floor + stack);
        checks.push(Check {
            target: "exact overhead ≤ 1.3 × (probe floor + one stack)",
            figure: format!("{exact:.0} ns vs {floor:.0} + {stack:.0} ns = {ratio:.2}×"),
            pass: Some(ratio <= 1.3),
        });
    }
    if let (Some(exact), Some(ml)) = (over(Config::Exact), over(Config::Memleak)) {
        checks.push(Check {
            target: "exact overhead ≤ ½ memleak-style script's",
            figure: format!("{exact:.0} ns vs {ml:.0} ns = {:.2}×", exact / ml),
            pass: Some(exact <= ml / 2.0),
        });
    }
    if let (Some(sample), Some(bare)) = (over(Config::Sample64), over(Config::EntryFloor)) {
        checks.push(Check {
            target: "sampling overhead ≤ 1.2 × two bare uprobe hits",
            figure: format!("{sample:.0} ns vs {bare:.0} ns (empty malloc and free entry probes) = {:.2}×", sample / bare),
            pass: Some(sample <= 1.2 * bare),
        });
    }
    let s = "redis SET/GET";
    if let (Some(lt), Some(ht), Some(vg)) = (value(r, s, Config::Exact), value(r, s, Config::Heaptrack), value(r, s, Config::Valgrind)) {
        checks.push(Check {
            target: "server throughput under leaktrace ≥ heaptrack's",
            figure: format!("{lt:.0} vs {ht:.0} req/s"),
            pass: Some(lt >= ht),
        });
        checks.push(Check {
            target: "server throughput under leaktrace ≥ 3 × valgrind's",
            figure: format!("{lt:.0} vs {vg:.0} req/s = {:.1}×", lt / vg),
            pass: Some(lt >= 3.0 * vg),
        });
    }
    checks.extend(super::unwind::evaluate(r));
    checks.extend(super::syscalls::evaluate(r));
    if let Some(x) = r.iter().find(|x| x.workload.starts_with("2 threads flat out") && x.config == Config::Exact.name()) {
        let lost = x.m.lost_events;
        checks.push(Check {
            target: "0 lost events, two threads flat out",
            figure: format!("{} lost, {:.0} events/s", lost.map_or("?".into(), |l| l.to_string()), x.m.events_per_sec.unwrap_or(0.0)),
            pass: lost.map(|l| l == 0),
        });
    }
    if let Some(x) = r.iter().find(|x| x.workload == "1,000,000 outstanding") {
        checks.push(Check {
            target: "leaktrace RSS < 100 MiB with 1,000,000 outstanding",
            figure: format!("{:.1} MiB", x.value.unwrap_or(f64::NAN)),
            pass: x.value.map(|v| v < 100.0),
        });
    }
    if let Some(x) = r.iter().find(|x| x.workload.starts_with("soak:")) {
        checks.push(Check {
            target: "leaktrace RSS flat within 2 MiB after the first minute of a 10-minute attach",
            figure: format!("{:.1} MiB growth", x.value.unwrap_or(f64::NAN)),
            pass: x.value.map(|v| v <= 2.0),
        });
    }
    checks.extend(lifecycle(r));
    checks.extend(super::reach::evaluate(r));
    checks.extend(super::inprocess::evaluate(r));
    checks.extend(super::teardown::evaluate(r));
    checks
}

/// Start, stop and follow-forks costs.
fn lifecycle(r: &[BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let t = super::lifecycle::TRUE_ROW;
    if let (Some(lt), Some(base)) = (value(r, t, Config::Exact), value(r, t, Config::Untraced)) {
        checks.push(Check {
            target: "run /bin/true within 0.3 s of untraced",
            figure: format!("{lt:.3} s vs {base:.3} s (+{:.3} s)", lt - base),
            pass: Some(lt - base <= 0.3),
        });
    }
    if let Some(q) = value(r, super::lifecycle::QUIT_ROW, Config::Exact) {
        checks.push(Check {
            target: "q in the live view returns the shell within 0.3 s",
            figure: format!("{q:.3} s"),
            pass: Some(q <= 0.3),
        });
    }
    let f = super::lifecycle::FORKS_ROW;
    if let (Some(lt), Some(base)) = (value(r, f, Config::FollowForks), value(r, f, Config::Untraced)) {
        checks.push(Check {
            target: "--follow-forks adds under 10 ms per child",
            figure: format!("{lt:.2} vs {base:.2} ms per child (+{:.2} ms)", lt - base),
            pass: Some(lt - base < 10.0),
        });
    }
    if let Some(x) = r.iter().find(|x| x.workload == f && x.config == Config::FollowForks.name()) {
        let (attach, detach) = (x.m.probe_attach_ms, x.m.probe_detach_ms);
        checks.push(Check {
            target: "allocator probes attach + detach per process under 100 ms",
            figure: format!(
                "{} ms attach + {} ms detach (in the background)",
                attach.map_or("?".into(), |a| format!("{a:.1}")),
                detach.map_or("?".into(), |d| format!("{d:.1}"))
            ),
            pass: attach.zip(detach).map(|(a, d)| a + d < 100.0),
        });
    }
    let d = "fixture driver (leaky)";
    if let (Some(lt), Some(vg)) = (value(r, d, Config::Exact), value(r, d, Config::Valgrind)) {
        checks.push(Check {
            target: "fixture driver faster under leaktrace than under valgrind",
            figure: format!("{lt:.2} s vs {vg:.2} s"),
            pass: Some(lt < vg),
        });
    }
    checks
}

pub fn markdown(r: &[BenchResult], checks: &[Check], quick: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# leaktrace benchmarks{}\n", if quick { " (quick run)" } else { "" });
    let _ = writeln!(s, "Produced by `cargo xtask bench` on this machine (2 cores). Ratios are what count; see bench/README.md.\n");
    let _ = writeln!(s, "## Targets\n\n| target | figure | verdict |\n| --- | --- | --- |");
    for c in checks {
        let v = match c.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        let _ = writeln!(s, "| {} | {} | {v} |", c.target, c.figure);
    }
    let _ = writeln!(s, "\n## Results\n\n| workload | configuration | value | × untraced | × probe floor | × memleak-style | × valgrind | × heaptrack | lost | events/s | leaktrace CPU s | leaktrace RSS MiB |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for x in r {
        let same = |c: Config| r.iter().find(|y| y.workload == x.workload && y.config == c.name()).and_then(|y| y.value);
        // Throughput is better when higher: ratios are inverted so > 1 always means slower.
        let ratio = |c: Config| match (x.value, same(c)) {
            (Some(v), Some(b)) if b > 0.0 && v > 0.0 => format!("{:.2}", if x.unit == "req/s" { b / v } else { v / b }),
            _ => "".into(),
        };
        let value = x.value.map_or_else(
            || format!("error: {}", x.error.clone().unwrap_or_default().lines().next().unwrap_or("")),
            |v| format!("{v:.1} {}", x.unit),
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "| {} | {} | {value} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.workload,
            x.config,
            ratio(Config::Untraced),
            ratio(Config::ProbeFloor),
            ratio(Config::Memleak),
            ratio(Config::Valgrind),
            ratio(Config::Heaptrack),
            x.m.lost_events.map_or(String::new(), |l| l.to_string()),
            opt(x.m.events_per_sec),
            opt(x.m.tracer_cpu_secs),
            opt(x.m.tracer_peak_rss_mib),
        );
    }
    s
}
