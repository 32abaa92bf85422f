//! Privileged: the profile formats over the sample net module, read by
//! their own consumers. Go's pprof (Debian's golang-go) opens the pprof
//! profile and finds every leaking function of the manifest with its bytes;
//! the folded stacks and the SVG flame graphs add up to the JSON report's
//! totals, kind by kind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

fn build_fixture() {
    let st =
        Command::new("make").args(["-s", "-C"]).arg(workspace().join("fixtures")).status().expect("make (cargo xtask setup installs it)");
    assert!(st.success(), "building the fixture failed");
}

/// leaktrace over the leaky fixture in `format`, to `output` when given; its stdout.
fn run(format: &str, output: Option<&Path>) -> String {
    let root = workspace();
    let mut cmd = leaktrace();
    cmd.current_dir(&root).args(["run", "--no-tui", "--focus", "fixtures/net/", "--format", format]);
    if let Some(o) = output {
        cmd.arg("--output").arg(o);
    }
    let out = cmd.arg("--").arg(root.join("fixtures/build/leaky/net-driver")).output().unwrap();
    assert!(out.status.success(), "--format {format}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The manifest's heap bytes per function.
fn manifest_heap_bytes() -> BTreeMap<String, u64> {
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(workspace().join("fixtures/manifest.json")).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for leak in m["scenarios"].as_array().unwrap().iter().flat_map(|s| s["leaks"].as_array().unwrap()) {
        if leak["kind"] == "heap" {
            *out.entry(leak["function"].as_str().unwrap().to_owned()).or_insert(0) += leak["bytes"].as_u64().unwrap();
        }
    }
    out
}

fn pprof_top(profile: &Path, sample_index: &str, tmp: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-nodefraction=0", "-symbolize=none", "-unit=B"])
        .arg(format!("-sample_index={sample_index}"))
        .arg(profile)
        .env("PPROF_TMPDIR", tmp)
        .output()
        .expect("go (Debian's golang-go; cargo xtask setup installs it)");
    assert!(out.status.success(), "go tool pprof: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `Showing nodes accounting for X, 100% of TOTAL total`: TOTAL, without its unit.
fn pprof_total(top: &str) -> u64 {
    let line = top.lines().find(|l| l.starts_with("Showing nodes")).unwrap_or_else(|| panic!("no totals line:\n{top}"));
    let total = line.split(" of ").nth(1).unwrap().split_whitespace().next().unwrap();
    total.trim_end_matches('B').parse().unwrap_or_else(|_| panic!("{line}"))
}

/// The `all (N unit, 100%)` root frame of an inferno SVG.
fn svg_total(path: &Path) -> u64 {
    let svg = std::fs::read_to_string(path).unwrap();
    let at = svg.find("<title>all (").unwrap_or_else(|| panic!("no root frame in {}", path.display()));
    let n = svg[at + "<title>all (".len()..].split_whitespace().next().unwrap();
    n.replace(',', "").parse().unwrap()
}

#[test]
fn pprof_folded_and_flame_graphs_carry_the_reports_leaks() {
    require_root();
    build_fixture();
    let dir = tempfile::tempdir().unwrap();
    let json: serde_json::Value = serde_json::from_str(&run("json", None)).unwrap();
    let totals = &json["totals"];
    let heap_bytes = totals["heap_bytes"].as_u64().unwrap();
    let handles: BTreeMap<String, u64> = serde_json::from_value(totals["handles"].clone()).unwrap();
    let expected = manifest_heap_bytes();
    assert_eq!(heap_bytes, expected.values().sum::<u64>(), "the JSON report equals the manifest");

    let profile = dir.path().join("leaks.pb.gz");
    run("pprof", Some(&profile));
    let top = pprof_top(&profile, "inuse_space", dir.path());
    assert_eq!(pprof_total(&top), heap_bytes, "{top}");
    for (function, bytes) in &expected {
        let row = top.lines().find(|l| l.split_whitespace().last() == Some(function.as_str()));
        let row = row.unwrap_or_else(|| panic!("{function} is not in pprof's top:\n{top}"));
        let cum: u64 = row.split_whitespace().nth(3).unwrap().trim_end_matches('B').parse().unwrap();
        assert!(cum >= *bytes, "{function}: pprof says {cum} B, the manifest {bytes} B:\n{top}");
    }
    assert!(top.contains("Build ID: "), "the mapping carries the build-id:\n{top}");
    for (kind, n) in &handles {
        assert_eq!(pprof_total(&pprof_top(&profile, &format!("{kind}_handles"), dir.path())), *n, "{kind}");
    }

    let folded = run("folded", None);
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for line in folded.lines() {
        let (stack, value) = line.rsplit_once(' ').unwrap();
        *sums.entry(stack.split(';').next().unwrap().to_owned()).or_insert(0) += value.parse::<u64>().unwrap();
    }
    assert_eq!(sums.remove("heap"), Some(heap_bytes), "{folded}");
    assert_eq!(sums, handles, "{folded}");

    let svg = dir.path().join("leaks.svg");
    run("flamegraph", Some(&svg));
    assert_eq!(svg_total(&svg), heap_bytes);
    assert_eq!(svg_total(&dir.path().join("leaks.handles.svg")), handles.values().sum::<u64>());
}
