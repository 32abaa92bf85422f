//! Privileged: leaktrace over the sample net module. The leaky build's leaks
//! equal the manifest (kind, function, file, line, count, bytes) with and
//! without frame pointers; the fixed builds are clean; plain --ci on the leaky
//! build says "leaks found". Symbols and lines come after the target exited.

mod common;

use std::process::Command;

use common::*;

fn build_fixture() {
    let st =
        Command::new("make").args(["-s", "-C"]).arg(workspace().join("fixtures")).status().expect("make (cargo xtask setup installs it)");
    assert!(st.success(), "building the fixture failed");
}

fn run_ci(variant: &str, expect: bool) -> std::process::Output {
    run_ci_with(variant, expect, "auto")
}

fn run_ci_with(variant: &str, expect: bool, heap_probes: &str) -> std::process::Output {
    let root = workspace();
    let mut cmd = leaktrace();
    // From the workspace root, as the demo runs it: a relative focus is resolved there.
    cmd.current_dir(&root).args(["run", "--ci", "--heap-probes", heap_probes, "--focus", "fixtures/net/"]);
    if expect {
        cmd.arg("--expect").arg(root.join("fixtures/manifest.json"));
    }
    cmd.arg("--").arg(root.join("fixtures/build").join(variant).join("net-driver")).output().unwrap()
}

#[test]
fn leaky_builds_match_the_manifest_exactly() {
    require_root();
    build_fixture();
    // The heap in-process (what `run` does by default here) and by the allocator's uprobes.
    for heap_probes in ["inprocess", "uprobe"] {
        for variant in ["leaky", "leaky-nofp"] {
            let out = run_ci_with(variant, true, heap_probes);
            let what = format!("{variant} ({heap_probes})");
            assert_eq!(out.status.code(), Some(0), "{what}: {}\n{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
            assert!(stderr(&out).contains("all 8 expected sites match"), "{what}: {}", stderr(&out));
        }
    }
}

#[test]
fn fixed_builds_are_clean_and_leaky_fails_plain_ci() {
    require_root();
    build_fixture();
    for variant in ["fixed", "fixed-nofp"] {
        let out = run_ci(variant, false);
        assert_eq!(out.status.code(), Some(0), "{variant}: {}\n{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("no leaks found"));
    }
    let out = run_ci("leaky", false);
    assert_eq!(out.status.code(), Some(1), "leaks found: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[heap] 30 bytes in 3 allocations at js_socket_connect (net_socket.c:15)"), "{text}");
    assert!(text.contains("[timerfd] 15 timerfd handles at net_timer_init (net_loop.c:73)"), "{text}");
}

/// Frames from the site down to main: (function, file basename, line).
type Path = Vec<(String, String, u32)>;

fn to_main(frames: impl Iterator<Item = (String, String, u32)>) -> Path {
    let mut out = Vec::new();
    for f in frames {
        let last = f.0 == "main";
        out.push(f);
        if last {
            break;
        }
    }
    out
}

#[test]
fn leaky_stacks_equal_valgrinds_from_site_to_main() {
    require_root();
    build_fixture();
    let fixture_file = |f: &str| f.starts_with("net_") && f.ends_with(".c");
    for variant in ["leaky", "leaky-nofp"] {
        let exe = workspace().join("fixtures/build").join(variant).join("net-driver");
        let vg = Command::new("valgrind")
            .args(["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--run-libc-freeres=no", "--num-callers=50"])
            .arg(&exe)
            .output()
            .expect("valgrind");
        let records = tracer_common::valgrind::records(&String::from_utf8_lossy(&vg.stderr), fixture_file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        let out = leaktrace()
            .current_dir(workspace()) // the relative focus is the workspace's, as in run_ci
            .args(["run", "--format", "json", "--focus", "fixtures/net/", "--output"])
            .arg(&report)
            .arg("--")
            .arg(&exe)
            .output()
            .unwrap();
        let r = json_report(&out, &report);
        let mut compared = 0;
        for site in r["sites"].as_array().unwrap().iter().filter(|s| s["count"].as_u64() > Some(0)) {
            let frame = |f: &serde_json::Value| {
                let file = f["file"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_owned();
                (f["function"].as_str().unwrap_or("?").to_owned(), file, f["line"].as_u64().unwrap_or(0) as u32)
            };
            let stack: Vec<_> = site["stack"].as_array().unwrap().iter().map(frame).collect();
            let from_site = stack.iter().position(|f| fixture_file(&f.1)).expect("a frame in the fixture");
            let ours = to_main(stack[from_site..].iter().cloned());
            let theirs: Vec<Path> =
                records.iter().filter(|rec| rec.stack[0] == ours[0]).map(|rec| to_main(rec.stack.iter().cloned())).collect();
            assert!(
                theirs.contains(&ours),
                "{variant}: the stack of {} differs from valgrind's\nleaktrace: {ours:#?}\nvalgrind: {theirs:#?}",
                site["site"]["label"]
            );
            compared += 1;
        }
        assert_eq!(compared, 8, "{variant}: every manifest site compared");
    }
}
