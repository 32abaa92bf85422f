//! Every bad input is one clear line and exit code 2 (tracer error).

mod common;

use std::process::Command;

use common::*;

fn expect_error(out: std::process::Output, needle: &str) {
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn no_such_pid() {
    expect_error(leaktrace().args(["attach", "--pid", "4194303"]).output().unwrap(), "no such process: 4194303");
}

#[test]
fn command_not_found() {
    require_root();
    expect_error(leaktrace().args(["run", "--", "no-such-command-xyz"]).output().unwrap(), "command not found: no-such-command-xyz");
}

#[test]
fn not_root() {
    require_root();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_leaktrace"))
        .args(["run", "--", "true"])
        .output()
        .expect("setpriv (util-linux)");
    expect_error(out, "not permitted");
}

#[test]
fn malformed_manifest_and_suppressions() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    expect_error(leaktrace().args(["run", "--expect"]).arg(&bad).args(["--", "true"]).output().unwrap(), "malformed manifest");
    let supp = dir.path().join("bad.supp");
    std::fs::write(&supp, "frobnicate\n").unwrap();
    expect_error(leaktrace().args(["run", "--suppress"]).arg(&supp).args(["--", "true"]).output().unwrap(), "bad.supp:1");
}

#[test]
fn bad_arguments() {
    expect_error(leaktrace().args(["run", "--ring-size", "3", "--", "true"]).output().unwrap(), "power of two");
    expect_error(leaktrace().args(["attach"]).output().unwrap(), "--pid");
}

#[test]
fn a_target_that_exits_at_once_is_reported() {
    require_root();
    let out = leaktrace().args(["run", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exited (exit code 0)"), "{}", String::from_utf8_lossy(&out.stdout));
}
