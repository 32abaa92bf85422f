//! The in-process recorder's targets (issue 23): per malloc/free pair at
//! most heaptrack's, a server at 0.8 × its untraced throughput, nothing lost.

use super::measure::Config;
use super::targets::{value, Check};
use super::BenchResult;

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (threads, depth) in [(1, 0), (1, 24), (2, 0), (2, 24)] {
        let w = format!("malloc/free {threads}T depth {depth}");
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
            target: "redis SET/GET in-process ≥ 0.8 × untraced",
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
    checks
}
