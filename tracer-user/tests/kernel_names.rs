//! Privileged: names you can trust on real programs. C++ and Rust leaks
//! through their allocation wrappers are named after the functions that
//! leaked; Debian's python3 (stripped) is named only by symbols whose extent
//! holds the address; redis's heap sites are redis functions above zmalloc;
//! libc frames carry file:line from libc6-dbg; the report's sites,
//! outside-focus and suppressed figures add up to everything outstanding; a
//! descriptor opened between fork and exec is named with the pre-exec image.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn build(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (cargo xtask setup installs the compilers)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// `leaktrace run --format json [extra] -- argv`, its report.
fn trace(dir: &Path, extra: &[&str], argv: &[&str]) -> Value {
    let report = dir.join(format!("report-{}.json", std::process::id()));
    let out = leaktrace()
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .args(extra)
        .arg("--")
        .args(argv)
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["lost_events"], 0, "{:#}", r["counters"]);
    r
}

fn sites(r: &Value) -> &Vec<Value> {
    r["sites"].as_array().unwrap()
}

fn function(s: &Value) -> &str {
    s["site"]["function"].as_str().unwrap_or("")
}

/// The report's sites, outside-focus and suppressed figures add up to everything outstanding.
fn assert_totals_add_up(r: &Value) {
    let part = |k: &str, f: &str| r[k][f].as_u64().unwrap_or(0);
    for f in ["heap_bytes", "heap_allocations"] {
        let sum = part("totals", f) + part("outside_focus", f) + part("suppressed", f);
        assert_eq!(
            sum,
            part("outstanding", f),
            "{f}: totals {:#} outside {:#} suppressed {:#}",
            r["totals"],
            r["outside_focus"],
            r["suppressed"]
        );
    }
    let handles = |k: &str, kind: &str| r[k]["handles"][kind].as_u64().unwrap_or(0);
    for kind in r["outstanding"]["handles"].as_object().unwrap().keys() {
        let sum = handles("totals", kind) + handles("outside_focus", kind) + handles("suppressed", kind);
        assert_eq!(sum, handles("outstanding", kind), "{kind}");
    }
    let in_sites: u64 = sites(r).iter().filter(|s| s["kind"] == "heap").map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(in_sites, part("totals", "heap_bytes"), "the totals are what the sites report");
}

#[test]
fn cpp_leaks_through_operator_new_are_two_sites_and_the_emergency_pool_is_suppressed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("two_leaks_cpp");
    build(Command::new("g++").args(["-O2", "-g", "-fno-omit-frame-pointer", "-o"]).arg(&exe).arg(programs_src().join("two_leaks.cpp")));
    let r = trace(dir.path(), &[], &[exe.to_str().unwrap()]);
    let heap: Vec<&Value> = sites(&r).iter().filter(|s| s["kind"] == "heap").collect();
    let nodes = heap.iter().find(|s| function(s).starts_with("leak_nodes")).unwrap_or_else(|| panic!("{heap:#?}"));
    let arrays = heap.iter().find(|s| function(s).starts_with("leak_array")).unwrap_or_else(|| panic!("{heap:#?}"));
    assert_eq!((nodes["count"].as_u64(), nodes["bytes"].as_u64()), (Some(3), Some(120)));
    assert_eq!((arrays["count"].as_u64(), arrays["bytes"].as_u64()), (Some(5), Some(200)));
    assert!(heap.iter().all(|s| !function(s).starts_with("operator new")), "{heap:#?}");
    assert!(r["suppressed"]["heap_bytes"].as_u64().unwrap() >= 72_704, "the emergency exception pool: {:#}", r["suppressed"]);
    assert_totals_add_up(&r);
}

#[test]
fn rust_leaks_through_the_global_allocator_are_two_sites() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("two_leaks_rs");
    build(
        Command::new("rustc")
            .args(["-C", "opt-level=2", "-g", "-C", "force-frame-pointers=yes", "--crate-name", "two_leaks", "-o"])
            .arg(&exe)
            .arg(programs_src().join("two_leaks.rs")),
    );
    let r = trace(dir.path(), &[], &[exe.to_str().unwrap()]);
    let heap: Vec<&Value> = sites(&r).iter().filter(|s| s["kind"] == "heap").collect();
    let boxes = heap.iter().find(|s| function(s) == "two_leaks::leak_boxes").unwrap_or_else(|| panic!("{heap:#?}"));
    let vecs = heap.iter().find(|s| function(s) == "two_leaks::leak_vecs").unwrap_or_else(|| panic!("{heap:#?}"));
    assert_eq!((boxes["count"].as_u64(), boxes["bytes"].as_u64()), (Some(3), Some(144)));
    assert_eq!((vecs["count"].as_u64(), vecs["bytes"].as_u64()), (Some(4), Some(320)));
    let labels: Vec<&str> = heap.iter().map(|s| s["site"]["label"].as_str().unwrap()).collect();
    let mut unique = labels.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), labels.len(), "no two sites share a label: {labels:?}");
    assert_totals_add_up(&r);
}

/// (start, size) of every function symbol called `name` in an ELF file.
fn extents(data: &[u8], name: &str) -> Vec<(u64, u64)> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(data).unwrap();
    file.symbols().chain(file.dynamic_symbols()).filter(|s| s.name() == Ok(name)).map(|s| (s.address(), s.size())).collect()
}

fn svma_of(data: &[u8], offset: u64) -> u64 {
    use object::{Object, ObjectSegment};
    let file = object::File::parse(data).unwrap();
    file.segments()
        .find_map(|s| {
            let (o, n) = s.file_range();
            (offset >= o && offset < o + n).then(|| offset - o + s.address())
        })
        .expect("offset in a segment")
}

#[test]
fn debian_python3_is_named_only_by_symbols_that_hold_the_address() {
    require_root();
    let python = std::fs::canonicalize("/usr/bin/python3").expect("Debian's python3");
    let data = std::fs::read(&python).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = "import os\nkeep = [os.pipe() for _ in range(3)]\nkeep.append(os.eventfd(0))\n";
    let r = trace(dir.path(), &[], &[python.to_str().unwrap(), "-c", script]);
    let module = python.display().to_string();
    let frames: Vec<&Value> =
        sites(&r).iter().flat_map(|s| s["stack"].as_array().unwrap()).filter(|f| f["module"] == module.as_str()).collect();
    assert!(frames.len() >= 3, "python's own frames are on the stacks: {:#}", r["sites"]);
    let mut named = 0;
    for f in frames {
        let Some(name) = f["function"].as_str() else { continue };
        if f["file"].is_string() {
            continue; // named by debug information (python3-dbg), not by a symbol
        }
        let svma = svma_of(&data, f["module_offset"].as_u64().unwrap());
        let holds = extents(&data, name).iter().any(|&(start, size)| start <= svma && svma < start + size.max(1));
        assert!(holds, "{name} does not contain {svma:#x}: {f:#}");
        named += 1;
    }
    eprintln!("{named} python frames named by symbols, all within their extent");
    let pipes = sites(&r).iter().filter(|s| s["kind"] == "pipe").map(|s| s["count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(pipes, 6, "three pipes, two ends each: {:#}", r["sites"]);
}

#[test]
fn libc_frames_carry_file_and_line_and_totals_add_up_with_a_focus() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("small");
    build(Command::new("cc").args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"]).arg(&exe).arg(programs_src().join("sized.c")));
    let r = trace(dir.path(), &["--focus", exe.to_str().unwrap()], &[exe.to_str().unwrap()]);
    let libc: Vec<&Value> = sites(&r)
        .iter()
        .flat_map(|s| s["stack"].as_array().unwrap())
        .filter(|f| f["module"].as_str().unwrap().contains("libc.so"))
        .collect();
    assert!(!libc.is_empty(), "fopen's stack passes through libc: {:#}", r["sites"]);
    assert!(libc.iter().all(|f| f["file"].is_string() && f["line"].is_u64()), "libc6-dbg names libc's lines: {libc:#?}");
    let leak = sites(&r).iter().find(|s| function(s) == "leak").expect("the leak site");
    assert_eq!(leak["count"], 10);
    assert_eq!(r["focus"]["matched"][0].as_str(), exe.to_str(), "the report says what the focus matched: {:#}", r["focus"]);
    assert_totals_add_up(&r);
}

#[test]
fn redis_heap_sites_are_redis_functions_above_zmalloc() {
    require_root();
    // redis-server is a link to redis-check-rdb, which tells the two apart by argv[0].
    let redis = std::fs::canonicalize("/usr/bin/redis-server").expect("redis-server (cargo xtask setup installs it)");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = leaktrace()
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg("/usr/bin/redis-server")
        .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
        .arg(dir.path().join("redis.sock"))
        .arg("--dir")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let redis start up, then stop it the way a supervisor would: SIGTERM to
    // leaktrace, which passes it on and reports once redis has shut down.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let leaktrace_pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(leaktrace_pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success() || report.exists());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let module = redis.display().to_string();
    let heap: Vec<&Value> = sites(&r).iter().filter(|s| s["kind"] == "heap" && s["count"].as_u64() > Some(0)).collect();
    let in_redis: Vec<&Value> = heap.iter().copied().filter(|s| s["site"]["module"] == module.as_str()).collect();
    assert!(in_redis.len() >= 5, "redis's own sites: {heap:#?}");
    for s in &in_redis {
        let f = function(s);
        assert!(!f.starts_with('z') || !f.contains("alloc") && !f.starts_with("zstrdup"), "a wrapper named as the site: {s:#}");
    }
    let named = in_redis.iter().filter(|s| s["site"]["function"].is_string()).count();
    assert!(named * 2 >= in_redis.len(), "most redis sites are named functions: {in_redis:#?}");
    assert_totals_add_up(&r);
}
