//! Privileged: every allocator entry point of glibc, jemalloc and tcmalloc
//! (preloaded through `env`, so the allocator is chosen at the program's own
//! exec) is traced, with the same results whether the allocator probes are a
//! uprobe session, uprobe_multi links or perf-event uprobes (each forced, on
//! a kernel that has them all), and with the links leaktrace picks itself.

mod common;

use std::path::Path;

use common::*;

const GLIBC: &[&str] = &["malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"];
const JEMALLOC: &[&str] = &["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc"];
const TCMALLOC: &[&str] = &["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"];

/// (LD_PRELOAD, what the report names as the allocator, the entry points it exports).
type Allocator = (Option<&'static str>, &'static str, &'static [&'static str]);

fn allocators() -> [Allocator; 3] {
    [
        (None, "libc.so.6", GLIBC),
        (Some("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"), "libjemalloc.so.2", JEMALLOC),
        (Some("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"), "libtcmalloc_minimal.so.4", TCMALLOC),
    ]
}

fn manifest(dir: &Path, functions: &[&str]) -> std::path::PathBuf {
    let mut m = manifest_from_markers(&["alloc_all.c"], |name| Box::leak(name.to_owned().into_boxed_str()));
    let leaks = m["scenarios"][0]["leaks"].as_array_mut().unwrap();
    leaks.retain(|l| functions.iter().any(|f| l["function"] == format!("leak_{f}")));
    assert_eq!(leaks.len(), functions.len(), "a marker per entry point");
    let path = dir.join(format!("expect-{}.json", functions.len()));
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    path
}

/// Runs alloc_all through each entry point `functions` of the allocator
/// (preloaded, or glibc's) with the link kind `mode` forces (leaktrace's own
/// choice without one) and checks every site; returns the report.
fn traced(dir: &Path, program: &Path, (preload, name, functions): Allocator, mode: Option<&str>) -> serde_json::Value {
    assert!(preload.is_none_or(|p| Path::new(p).exists()), "{name} is missing: run `cargo xtask setup`");
    let expect = manifest(dir, functions);
    let report = dir.join("report.json");
    let mut cmd = leaktrace();
    // The allocator's uprobes (kernel_inprocess compares the in-process recorder with them).
    cmd.args(["run", "--ci", "--heap-probes", "uprobe", "--format", "json", "--focus", "tests/programs/"]);
    if let Some(mode) = mode {
        cmd.arg(format!("--uprobe-links={mode}"));
    }
    cmd.arg("--expect").arg(&expect).arg("--output").arg(&report).args(["--", "env"]);
    if let Some(p) = preload {
        cmd.arg(format!("LD_PRELOAD={p}"));
    }
    let out = cmd.arg(program).args(functions).output().unwrap();
    let r = json_report(&out, &report);
    let what = format!("{name} through {}", r["tracer"]["probe_links"]);
    assert_eq!(out.status.code(), Some(0), "{what}: stderr:\n{}\nsites: {:#}", stderr(&out), r["sites"]);
    assert!(r["target"]["allocator"].as_str().unwrap_or("").contains(name), "{what}: {}", r["target"]);
    let site = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "leak_malloc").expect("malloc's site");
    assert_eq!((site["allocations"].as_u64(), site["releases"].as_u64()), (Some(3), Some(1)), "{what}: {site:#}");
    r
}

/// Each kind forced in turn: needs a kernel with uprobe sessions (6.13).
#[test]
fn every_entry_point_of_three_allocators_is_traced_on_every_link_kind() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all", &[]);
    for allocator in allocators() {
        for (mode, links) in [("session", "uprobe session"), ("multi", "uprobe_multi"), ("perf", "perf-event uprobes")] {
            let r = traced(dir.path(), &program, allocator, Some(mode));
            assert_eq!(r["tracer"]["probe_links"], links, "{} forced to {mode}", allocator.1);
        }
    }
}

/// On any kernel: the links leaktrace picks for it.
#[test]
fn every_entry_point_of_three_allocators_is_traced_on_the_links_the_kernel_offers() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all", &[]);
    for allocator in allocators() {
        traced(dir.path(), &program, allocator, None);
    }
}
