//! Privileged: the line of a JavaScript frame. With `--node-jitdump`, V8's
//! debug records give compiled code the line of the call inside the
//! function; with `--node-perf-map` (and for interpreted code, which has no
//! debug records) the line is where the function starts, and the report
//! says so. The program (tests/programs/node_lines.js) opens descriptors
//! from `leakyOpen`, whose call is three lines below its definition: twice
//! interpreted, the third time as TurboFan's code.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

/// The line of node_lines.js that holds `text`.
fn line_of(text: &str) -> u64 {
    let src = std::fs::read_to_string(programs_src().join("node_lines.js")).unwrap();
    src.lines().position(|l| l.contains(text)).unwrap_or_else(|| panic!("no {text} in node_lines.js")) as u64 + 1
}

/// `leaktrace run --no-tui NAMING -- node ... node_lines.js`: the output,
/// the JSON report and the files but it left in node's working directory.
fn run(naming: &str) -> (Output, Value, Vec<String>) {
    // Not inlined, openSync leaves the call's position leakyOpen's own.
    let script = programs_src().join("node_lines.js").into_os_string();
    let (out, r, dir) = run_node(&[naming.to_owned()], &["--allow-natives-syntax".into(), "--no-turbo-inlining".into(), script]);
    let left = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    (out, r, left.filter(|f| f != "report.json").collect())
}

/// The descriptor sites of leakyOpen: (line, line_is_function_start, count), by line.
fn leaky_open_sites(r: &Value) -> Vec<(u64, bool, u64)> {
    let sites = r["sites"].as_array().unwrap().iter().filter(|s| s["kind"] == "file" && s["site"]["function"] == "leakyOpen");
    let mut found: Vec<(u64, bool, u64)> = sites
        .map(|s| {
            assert!(s["site"]["file"].as_str().unwrap().ends_with("/node_lines.js"), "{}", s["site"]);
            let start = s["site"]["line_is_function_start"].as_bool().unwrap_or(false);
            (s["site"]["line"].as_u64().unwrap(), start, s["count"].as_u64().unwrap())
        })
        .collect();
    found.sort();
    found
}

#[test]
fn with_a_jitdump_compiled_javascript_is_at_the_line_of_its_call() {
    require_root();
    let (out, r, left) = run("--node-jitdump");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (defined, call) = (line_of("function leakyOpen"), line_of("@call"));
    assert_eq!(call, defined + 3);
    let found = leaky_open_sites(&r);
    // Interpreted, the function's start (said so); compiled, the call's line.
    assert_eq!(found, [(defined, true, 2), (call, false, 1)], "{:#}", r["sites"]);
    assert!(left.is_empty(), "the jitdump and V8's log are removed: {left:?}");
}

#[test]
fn with_a_perf_map_the_line_is_the_function_s_start_and_the_report_says_so() {
    require_root();
    let (out, r, left) = run("--node-perf-map");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(leaky_open_sites(&r), [(line_of("function leakyOpen"), true, 3)], "{:#}", r["sites"]);
    let site = r["sites"].as_array().unwrap().iter().find(|s| s["kind"] == "file" && s["site"]["function"] == "leakyOpen").unwrap();
    let frame = site["stack"].as_array().unwrap().iter().find(|f| f["function"] == "leakyOpen").unwrap();
    assert_eq!(frame["line_is_function_start"], true, "{frame}");
    assert!(left.is_empty(), "{left:?}");
}
