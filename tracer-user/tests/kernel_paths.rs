//! Privileged: `leaktrace run` over a program that leaks through every path
//! (a second thread, a shared library, calloc/realloc/posix_memalign/strdup,
//! accept4, socketpair) and releases through dup2, close_range and socketpair.
//! Every site must be right and nothing else reported.

mod common;

use common::*;

#[test]
fn every_site_is_attributed_and_nothing_else_reported() {
    require_root();
    let dir = build_programs();
    let manifest = dir.path().join("expect.json");
    let m = manifest_from_markers(&["paths.c", "libleaky.c"], |name| match name {
        "thread_malloc" => "thread_main",
        "lib_calloc" => "lib_leak",
        "accept4" | "socketpair" => "fd_paths",
        _ => "heap_paths",
    });
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .args(["run", "--ci", "--format", "json", "--focus", "tests/programs/", "--expect"])
        .arg(&manifest)
        .arg("--output")
        .arg(&report)
        .arg("--")
        .arg(dir.path().join("paths"))
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(0), "verdict; stderr:\n{}\nreport sites: {:#}", stderr(&out), r["sites"]);
    assert_eq!(r["complete"], true);
    assert_eq!(r["lost_events"], 0);
    // Spot-check the shape the README documents.
    let lib = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "lib_leak").expect("the shared library's site");
    assert!(lib["site"]["module"].as_str().unwrap().ends_with("libleaky.so"), "{lib:#}");
    assert_eq!((lib["count"].as_u64(), lib["bytes"].as_u64()), (Some(4), Some(128)));
    assert!(
        lib["stack"].as_array().unwrap().iter().any(|f| f["function"] == "heap_paths"),
        "the caller of the library is on the stack: {lib:#}"
    );
}

#[test]
fn a_million_malloc_free_pairs_leave_nothing_and_lose_nothing() {
    require_root();
    let dir = build_programs();
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .args(["run", "--ci", "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(dir.path().join("churn_heap"))
        .arg("1000000")
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["lost_events"], 0, "{:#}", r["counters"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}\n{:#}", stderr(&out), r["sites"]);
    assert_eq!(r["totals"]["heap_bytes"], 0);
    let churn = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "main").expect("the loop's site");
    assert_eq!(churn["allocations"], 1_000_000);
    assert_eq!(churn["releases"], 1_000_000);
}

#[test]
fn follow_forks_traces_a_child_that_execs() {
    require_root();
    let dir = build_programs();
    let manifest = dir.path().join("expect.json");
    // The shell's own heap has no frame in the focus: only the child's sites count.
    let m = manifest_from_markers(&["libleaky.c"], |_| "lib_leak");
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let script = format!("{} && true", dir.path().join("paths").display());
    let out = leaktrace()
        .args(["run", "--ci", "--follow-forks", "--focus", "libleaky.so", "--expect"])
        .arg(&manifest)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    // Without --follow-forks the child is not traced at all.
    let out = leaktrace()
        .args(["run", "--ci", "--focus", "libleaky.so", "--expect"])
        .arg(&manifest)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "the child's leaks are missing without --follow-forks: {}", stderr(&out));
}
