//! Privileged: sampling mode (`--sample N`). Heap figures are estimates
//! scaled by N; descriptors stay exact; a sampled block that was freed is
//! never outstanding.

mod common;

use common::*;

/// Blocks kept, and malloc/free pairs, by the program.
const KEPT: u64 = 20_000;
const EVERY: u64 = 8;

#[test]
fn sampling_estimates_the_heap_and_keeps_descriptors_exact() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "sampled.c", "sampled", &[]);
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .args(["run", "--no-tui", "--sample", &EVERY.to_string(), "--format", "json", "--focus", "tests/programs/", "--output"])
        .arg(&report)
        .arg("--")
        .arg(&program)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "the command's own status: {}", stderr(&out));
    let r = json_report(&out, &report);
    assert_eq!(r["sample_every"], EVERY, "the report says it is sampled");
    assert_eq!(r["complete"], true, "{:#}", r["counters"]);
    let sites = r["sites"].as_array().unwrap();
    let at = |function: &str| sites.iter().filter(|s| s["site"]["function"] == function).collect::<Vec<_>>();
    let pipes = at("open_pipes");
    assert_eq!(pipes.len(), 1, "{:#}", r["sites"]);
    assert_eq!((pipes[0]["kind"].as_str(), pipes[0]["count"].as_u64()), (Some("pipe"), Some(8)), "exact: 4 pipes, 2 ends each");
    let kept = at("keep_blocks");
    assert_eq!(kept.len(), 1, "{:#}", r["sites"]);
    let (count, bytes) = (kept[0]["count"].as_u64().unwrap(), kept[0]["bytes"].as_u64().unwrap());
    // About 2,500 sampled blocks: off by about 2% (1/sqrt(k)); 20% is far outside chance.
    assert!(count.abs_diff(KEPT) <= KEPT / 5, "estimate {count} of {KEPT} blocks; counters {:#}, {}", r["counters"], r["tracer"]);
    assert_eq!((count % EVERY, bytes), (0, count * 32), "counts scaled by N, bytes with them");
    let churn = at("churn");
    assert!(churn.iter().all(|s| s["count"] == 0), "every sampled block of the churn was freed: {churn:#?}");
    let calls: u64 = churn.iter().map(|s| s["allocations"].as_u64().unwrap()).sum();
    assert!(calls.abs_diff(KEPT) <= KEPT / 5, "estimate {calls} of the churn's {KEPT} allocations");
}
