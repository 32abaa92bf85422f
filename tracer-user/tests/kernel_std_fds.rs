//! Privileged: descriptors 0, 1 and 2 are the process's standard streams:
//! one a program takes over (a dup2 onto stderr, an open that lands on a
//! closed stdin) is not a leak, and `--ci` does not count it, unless
//! `--track-std-fds` asks; a real leaked descriptor is reported either way.

mod common;

use common::*;

/// The sites of descriptors left open: (function, how many).
fn fd_sites(r: &serde_json::Value) -> Vec<(String, u64)> {
    let mut sites: Vec<(String, u64)> = r["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] != "heap" && s["count"].as_u64() > Some(0))
        .map(|s| (s["site"]["function"].as_str().unwrap_or("?").to_owned(), s["count"].as_u64().unwrap()))
        .collect();
    sites.sort();
    sites
}

#[test]
fn standard_streams_taken_over_are_leaks_only_with_track_std_fds() {
    require_root();
    let (dir, exe) = build_one("std_fds");
    let (log, report) = (dir.path().join("stderr.log"), dir.path().join("r.json"));
    let run = |extra: &[&str]| {
        let out = leaktrace()
            .args(["run", "--no-tui", "--ci", "--format", "json", "--output"])
            .arg(&report)
            .args(extra)
            .arg("--")
            .arg(&exe)
            .arg(&log)
            .output()
            .unwrap();
        let r = json_report(&out, &report);
        (out.status.code(), fd_sites(&r), stderr(&out))
    };
    let (code, sites, err) = run(&["--max-leaked-handles", "1"]);
    assert_eq!(sites, vec![("leak_a_file".to_owned(), 1)], "by default only the real leak: {err}");
    assert_eq!(code, Some(0), "one handle tolerated, and only one counted: {err}");
    let (code, sites, err) = run(&["--track-std-fds", "--max-leaked-handles", "1"]);
    let want = [("leak_a_file", 1), ("redirect_stderr", 1), ("reopen_stdin", 1)].map(|(f, n)| (f.to_owned(), n));
    assert_eq!(sites, want.to_vec(), "with --track-std-fds the dup2 onto 2 and the open onto 0 too: {err}");
    assert_eq!(code, Some(1), "three handles are more than one: {err}");
    let (code, _, err) = run(&["--track-std-fds", "--max-leaked-handles", "3"]);
    assert_eq!(code, Some(0), "{err}");
}
