//! Privileged: leaktrace over a Node.js service (fixtures/node/server.js).
//! The leaky run's sockets are attributed to the JavaScript functions that
//! opened them, exactly as its manifest says; the fixed run leaks no
//! descriptor; attached to a running service, the socket site that grows
//! with the requests a client drives is named after its JavaScript function.
//!
//! The stacks go through V8's builtins and JIT code, which have no unwind
//! tables: the walker steps them with frame pointers, which V8 keeps, and
//! the rest (node, libuv, libc) with their CFI.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn fixture() -> PathBuf {
    workspace().join("fixtures/node")
}

/// `--ci` with the manifest's SCENARIO, node's flags passed by leaktrace, focus on the fixture.
fn ci_expecting(scenario: &str) -> Vec<String> {
    let focus = fixture().display().to_string() + "/";
    let expect = fixture().join("manifest.json").display().to_string();
    ["--ci", "--node-perf-map", "--focus", &focus, "--expect", &expect, "--expect-scenario", scenario].map(str::to_owned).to_vec()
}

/// `leaktrace run ARGS -- node server.js run VARIANT` in a fresh directory, JSON report.
fn run(variant: &str, args: &[String]) -> (Output, Value, tempfile::TempDir) {
    run_node(args, &[fixture().join("server.js").into_os_string(), "run".into(), variant.into()])
}

fn sites<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["sites"].as_array().unwrap().iter().filter(|s| s["kind"] == kind).collect()
}

#[test]
fn leaky_service_sockets_are_its_javascript_functions_exactly_as_its_manifest_says() {
    require_root();
    let (out, r, dir) = run("leaky", &ci_expecting("leaky"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("all 4 expected sites match"), "{}", stderr(&out));
    let sockets = sites(&r, "socket");
    let listener = sockets.iter().find(|s| s["site"]["function"] == "openCallbackListener").expect("the listener site");
    assert_eq!(listener["site"]["file"], fixture().join("server.js").display().to_string());
    assert_eq!((listener["site"]["module"].as_str(), listener["site"]["column"].as_u64()), (Some("[jit]"), Some(30)));
    // From the system call through libuv, node:: and V8's builtins to
    // node:net's JavaScript, the fixture's, and below it V8's entry and the
    // node:: code that called into JavaScript (32 frames: not down to main).
    let stack: Vec<&str> = listener["stack"].as_array().unwrap().iter().map(|f| f["function"].as_str().unwrap_or("?")).collect();
    let at = |name: &str| stack.iter().position(|f| f.contains(name)).unwrap_or_else(|| panic!("no {name} in {stack:?}"));
    assert!(at("uv__socket") < at("node::TCPWrap::Bind") && at("node::TCPWrap::Bind") < at("Builtins_CEntry"), "{stack:?}");
    assert!(at("Builtins_CEntry") < at("Server.listen") && at("Server.listen") < at("openCallbackListener"), "{stack:?}");
    assert!(at("openCallbackListener") < at("Builtins_JSEntry"), "{stack:?}");
    assert!(stack[at("Builtins_JSEntry")..].iter().any(|f| f.starts_with("node::")), "{stack:?}");
    assert!(listener["stack_end"].is_null(), "{}", listener["stack_end"]);
    let pid = r["target"]["pid"].as_u64().unwrap();
    assert!(!Path::new(&format!("/tmp/perf-{pid}.map")).exists(), "--node-perf-map removes the map it made node write");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.json")], "and V8's log");
}

#[test]
fn fixed_service_leaks_no_descriptor() {
    require_root();
    let (out, r, _dir) = run("fixed", &ci_expecting("fixed"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(r["target"]["exit"]["code"], 0, "the fixed service exits by itself: nothing keeps its loop alive");
    assert_eq!(r["totals"]["handles"], serde_json::json!({}), "{:#}", r["totals"]);
    let opened: u64 = sites(&r, "socket").iter().map(|s| s["allocations"].as_u64().unwrap()).sum();
    assert!(opened >= 12, "the same sockets were opened, and released: {opened}");
}

#[test]
fn without_node_s_flags_the_report_says_how_to_name_javascript() {
    require_root();
    let (out, r, _dir) = run("leaky", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings: Vec<&str> = r["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(warnings.iter().any(|w| w.contains("JavaScript frames that are unnamed") && w.contains("--node-perf-map")), "{warnings:?}");
    assert!(sites(&r, "socket").iter().all(|s| s["site"]["module"] != "[jit]"), "nothing could name JavaScript");
    let not_node = leaktrace().args(["run", "--node-perf-map", "--", "/bin/true"]).output().unwrap();
    assert_eq!(not_node.status.code(), Some(2));
    assert!(stderr(&not_node).contains("--node-perf-map: /bin/true is not node"), "{}", stderr(&not_node));
}

#[test]
fn a_container_s_private_tmp_is_read_after_the_container_is_gone() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // The service outside /tmp, which the container hides (a checkout may live there).
    let app = tempfile::Builder::new().prefix("leaktrace-node-app").tempdir_in("/var/tmp").unwrap();
    std::fs::copy(fixture().join("server.js"), app.path().join("server.js")).unwrap();
    let node = format!(
        "mount -t tmpfs tmpfs /tmp && exec {} --perf-basic-prof --interpreted-frames-native-stack {} run leaky",
        node().display(),
        app.path().join("server.js").display()
    );
    let focus = app.path().display().to_string() + "/";
    let mut expecting = ci_expecting("leaky");
    expecting[3] = focus; // --focus the copy
    let out = leaktrace()
        .current_dir(dir.path())
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .arg("--ci")
        .args(&expecting[2..]) // not --node-perf-map: the command is unshare
        .args(["--", "unshare", "--mount", "--propagation", "private", "sh", "-c", &node])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("all 4 expected sites match"), "{}", stderr(&out));
    let pid = json_report(&out, &report)["target"]["pid"].as_u64().unwrap();
    assert!(!Path::new(&format!("/tmp/perf-{pid}.map")).exists(), "the map was in the private /tmp only");
}

/// The process's socket descriptors, from /proc.
fn sockets_of(pid: u32) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten();
    fds.filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// One HTTP/1.0 request; the whole answer.
fn get(port: u16, route: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {route} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn attached_to_a_running_service_the_growing_socket_site_is_its_javascript_function() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut service = Command::new(node())
        .current_dir(dir.path())
        .args(["--perf-basic-prof", "--interpreted-frames-native-stack"])
        .arg(fixture().join("server.js"))
        .args(["serve", "leaky"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = service.id();
    let mut line = String::new();
    BufReader::new(service.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    assert!(get(port, "/subscribe").contains("callback port"), "the service answers before leaktrace attaches");
    let before = sockets_of(pid);
    let report = dir.path().join("report.json");
    let focus = fixture().display().to_string() + "/";
    let (mut tracer, mut err) = attached(&["--pid", &pid.to_string(), "--duration", "6", "--focus", &focus], &report);
    for _ in 0..7 {
        assert!(get(port, "/subscribe").contains("callback port"));
    }
    for _ in 0..2 {
        assert!(get(port, "/query").contains("result"));
    }
    let status = tracer.wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let opened = sockets_of(pid).into_iter().filter(|fd| !before.contains(fd)).count() as u64;
    drop(service.stdin.take());
    let _ = service.wait();
    let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    let out = Output { status, stdout: Vec::new(), stderr: rest.into_bytes() };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_report(&out, &report);
    let sockets = sites(&r, "socket");
    let by = |f: &str| sockets.iter().find(|s| s["site"]["function"] == f).unwrap_or_else(|| panic!("no {f} site: {sockets:#?}"));
    let listener = by("openCallbackListener");
    assert_eq!((listener["count"].as_u64(), listener["allocations"].as_u64()), (Some(7), Some(7)), "only what grew while attached");
    assert_eq!(listener["site"]["line"], 53);
    assert_eq!(by("openUpstreamConnection")["count"], 2);
    // Everything still open that was opened while attached, in /proc: the
    // listeners, the upstream connections and their accepted ends (outside the
    // focus: their server was created before leaktrace attached).
    assert_eq!(r["outstanding"]["handles"]["socket"].as_u64(), Some(opened), "{:#}", r["outstanding"]);
    assert_eq!(opened, 7 + 2 + 2);
    assert_eq!(r["target"]["state"], "detached");
}

#[test]
fn a_perf_map_another_user_wrote_is_refused() {
    require_root();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let map = format!("/tmp/perf-{}.map", sleeper.id());
    std::fs::write(&map, "1000 100 JS:~planted /tmp/x.js:1:1\n").unwrap();
    std::os::unix::fs::chown(&map, Some(65534), Some(65534)).unwrap();
    let maps = leaktrace::symbolize::ProcessMaps::capture(sleeper.id()).unwrap();
    let mut sym = leaktrace::symbolize::Symbolizer::new();
    let f = sym.symbolize(&maps, 0x1010, true);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    std::fs::remove_file(&map).unwrap();
    assert_eq!(f[0].function, None, "{f:?}");
    let warnings = sym.warnings();
    assert!(warnings.iter().any(|w| w.contains("belongs to uid 65534")), "{warnings:?}");
}
