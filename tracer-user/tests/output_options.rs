//! The options of the other outputs (profile formats, metrics, growth):
//! every bad value is exit code 2 with the reason on the first line, before
//! anything is traced (the command never runs).

mod common;

use std::net::TcpListener;

use common::*;

fn refused(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = leaktrace().args(["run"]).args(args).args(["--", "touch"]).arg(&marker).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains(needle), "{args:?}: expected `{needle}` in the first line: {err}");
    assert!(!err.contains("panicked") && !marker.exists(), "{args:?}: {err}");
}

#[test]
fn bad_values_are_refused_before_tracing() {
    let rows: &[(&[&str], &str)] = &[
        (&["--format", "svg"], "invalid value 'svg' for '--format"),
        (&["--format", "pprof"], "required arguments were not provided"),
        (&["--format", "flamegraph"], "required arguments were not provided"),
        (&["--metrics", "localhost"], "`localhost` is not an address and port"),
        (&["--metrics", "127.0.0.1:99999"], "is not an address and port"),
        (&["--metrics", "127.0.0.1:0", "--metrics-top", "0"], "0 is not in 1..=10000"),
        (&["--metrics-top", "5"], "required arguments were not provided"),
        (&["--growth-window", "5"], "`5` is not a number of seconds of at least 10"),
        (&["--growth-window", "inf"], "is not a number of seconds"),
        (&["--max-growth", "-1"], "`-1` is not a rate per minute"),
        (&["--max-growth", "NaN"], "is not a rate per minute"),
        (&["--max-growth-handles", "lots"], "`lots` is not a rate per minute"),
    ];
    for (args, needle) in rows {
        refused(args, needle);
    }
}

#[test]
fn a_metrics_port_in_use_is_refused_before_tracing() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(&["--metrics", &addr], &format!("--metrics {addr}: cannot listen there"));
}
