//! Privileged: without `--focus`, the system's shared libraries are not call
//! sites. A C program on Debian's stripped libuv makes its listening socket
//! in `main` and its client sockets in the timer callback `dial_later`; all
//! of them come from libuv's internal `uv__socket` (one unnamed offset of
//! libuv.so.1), and the sites are the program's two calls, not that offset.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The line of `uv_sites.c` that holds `marker`.
fn line_of(marker: &str) -> u64 {
    let text = std::fs::read_to_string(programs_src().join("uv_sites.c")).unwrap();
    text.lines().position(|l| l.contains(marker)).unwrap_or_else(|| panic!("no {marker} in uv_sites.c")) as u64 + 1
}

fn run_uv_sites(dir: &Path) -> Value {
    let exe = compile(dir, "uv_sites.c", "uv_sites", &["-luv"]);
    let report = dir.join("report.json");
    let out = leaktrace().args(["run", "--no-tui", "--format", "json", "--output"]).arg(&report).arg("--").arg(&exe).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json_report(&out, &report)
}

#[test]
fn a_system_library_s_sockets_are_the_program_s_call_sites() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let r = run_uv_sites(dir.path());
    let sockets: Vec<&Value> = r["sites"].as_array().unwrap().iter().filter(|s| s["kind"] == "socket").collect();
    let described: Vec<String> = sockets.iter().map(|s| format!("{} x{}", s["site"]["label"], s["count"])).collect();
    let at = |function: &str, line: u64| {
        sockets
            .iter()
            .find(|s| s["site"]["function"] == function && s["site"]["line"] == line)
            .unwrap_or_else(|| panic!("no socket site {function} at line {line}: {described:?}"))
    };
    let dial = at("dial_later", line_of("@dial"));
    let listen = at("main", line_of("@listen"));
    assert_eq!((dial["count"].as_u64(), listen["count"].as_u64()), (Some(3), Some(1)), "{described:?}");
    assert!(dial["site"]["file"].as_str().unwrap().ends_with("uv_sites.c"), "{}", dial["site"]);
    // libuv accepts in uv_run, before it calls the program: the site is the
    // callback that created each connection's handle (kernel_event_loop.rs).
    let accepted = at("on_connection", line_of("@accept"));
    assert_eq!((accepted["count"].as_u64(), accepted["site_from"].as_str()), (Some(3), Some("created")), "{described:?}");
    assert_eq!(sockets.len(), 3, "{described:?}");
    // The sites' stacks do go through libuv: it is skipped, not missing.
    let libuv = |s: &Value| s["stack"].as_array().unwrap().iter().any(|f| f["module"].as_str().unwrap().contains("/libuv.so"));
    assert!(libuv(dial) && libuv(listen), "{:#}", dial["stack"]);
    assert!(sockets.iter().all(|s| !s["site"]["module"].as_str().unwrap().contains("libuv")), "{described:?}");
}
