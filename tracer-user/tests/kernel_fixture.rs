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
    let root = workspace();
    let mut cmd = leaktrace();
    // From the workspace root, as the demo runs it: a relative focus is resolved there.
    cmd.current_dir(&root).args(["run", "--ci", "--focus", "fixtures/net/"]);
    if expect {
        cmd.arg("--expect").arg(root.join("fixtures/manifest.json"));
    }
    cmd.arg("--").arg(root.join("fixtures/build").join(variant).join("net-driver")).output().unwrap()
}

#[test]
fn leaky_builds_match_the_manifest_exactly() {
    require_root();
    build_fixture();
    for variant in ["leaky", "leaky-nofp"] {
        let out = run_ci(variant, true);
        assert_eq!(out.status.code(), Some(0), "{variant}: {}\n{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(stderr(&out).contains("all 8 expected sites match"), "{}", stderr(&out));
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
