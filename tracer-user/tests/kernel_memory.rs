//! Privileged: leaktrace's own memory. An 89 MB executable is mapped, not
//! read: tracing it costs at most 1.5 times the resident memory of tracing a
//! small one. 50,000 distinct leak stacks fit in under 100 MiB.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn cc(args: &[&str], src: &Path, out: &Path) {
    let o = Command::new("cc").args(args).arg("-o").arg(out).arg(src).output().expect("cc (cargo xtask setup)");
    assert!(o.status.success(), "cc failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn trace(dir: &Path, argv: &[&Path]) -> Value {
    let report = dir.join("report.json");
    let out = leaktrace().args(["run", "--no-tui", "--format", "json", "--output"]).arg(&report).arg("--").args(argv).output().unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["lost_events"], 0, "{:#}", r["counters"]);
    r
}

fn peak_rss_kib(r: &Value) -> u64 {
    r["tracer"]["peak_rss_kib"].as_u64().unwrap()
}

#[test]
fn an_89_mb_binary_costs_at_most_one_and_a_half_times_a_small_one() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let src = programs_src().join("sized.c");
    let (small, big) = (dir.path().join("small"), dir.path().join("big"));
    cc(&["-O1", "-g", "-fno-omit-frame-pointer"], &src, &small);
    cc(&["-O1", "-g", "-fno-omit-frame-pointer", "-DBIG"], &src, &big);
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > 85_000_000, "{size}");
    let (rs, rb) = (trace(dir.path(), &[&small]), trace(dir.path(), &[&big]));
    for r in [&rs, &rb] {
        let leak = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "leak").expect("named");
        assert_eq!(leak["count"], 10);
    }
    let (s, b) = (peak_rss_kib(&rs), peak_rss_kib(&rb));
    eprintln!("leaktrace peak RSS: {s} KiB over a small binary, {b} KiB over an {} MB one", size / 1_000_000);
    assert!(b * 2 <= s * 3, "{b} KiB > 1.5 x {s} KiB");
}

#[test]
fn fifty_thousand_distinct_stacks_fit_in_100_mib() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("many_stacks");
    cc(&["-O1", "-g", "-fno-omit-frame-pointer"], &programs_src().join("many_stacks.c"), &exe);
    let r = trace(dir.path(), &[&exe]);
    let leaf = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "leaf").expect("the leak site");
    assert_eq!(leaf["count"], 50_000);
    assert!(leaf["stacks"].as_u64().unwrap() >= 50_000, "{}", leaf["stacks"]);
    let rss = peak_rss_kib(&r);
    eprintln!("leaktrace peak RSS with 50,000 distinct stacks: {rss} KiB");
    assert!(rss < 100 * 1024, "{rss} KiB");
}
