//! Privileged: complete stacks, judged by valgrind. Programs with leaks behind
//! glibc's frameless stdio, locale and NSS code, dlopen, deep recursion, a
//! 64 KiB frame, a signal handler and a shared library (C at -O0, -O2 and
//! -O2 -fomit-frame-pointer), C++ (operator new, inlined library code) and
//! Rust (std's stack buffer for paths) run under valgrind and under
//! leaktrace: every site — function, file, line, count and bytes, for the
//! innermost frame in the programs' own sources — must be the same. The one
//! expected difference is the tail call: valgrind names the caller of a
//! function that ended in `jmp calloc`, leaktrace puts that function back
//! (and each function of a chain of tail jumps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tracer_common::valgrind::{self, Sites};

const SOURCES: [&str; 5] = ["stacks.c", "stacks_lib.c", "stacks_dl.c", "stacks.cpp", "stacks.rs"];

fn sources() -> PathBuf {
    programs_src().join("stacks")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The C program and its two libraries, with `flags`, in `dir`.
fn build_c(dir: &Path, flags: &[&str]) -> (PathBuf, Vec<String>) {
    let src = |f: &str| sources().join(f);
    let cc = |out: &str, source: &Path, args: &[&str]| {
        let mut c = Command::new("cc");
        c.current_dir(dir).arg("-g").args(flags).args(["-o", out]).arg(source).args(args);
        run(&mut c);
    };
    cc("libstacks_lib.so", &src("stacks_lib.c"), &["-fPIC", "-shared"]);
    cc("libstacks_dl.so", &src("stacks_dl.c"), &["-fPIC", "-shared"]);
    cc("stacks", &src("stacks.c"), &["-L.", "-lstacks_lib", "-Wl,-rpath,$ORIGIN"]);
    (dir.join("stacks"), vec![dir.join("libstacks_dl.so").display().to_string()])
}

fn valgrind_sites(exe: &Path, args: &[String]) -> Sites {
    let out = Command::new("valgrind")
        .args(["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--run-libc-freeres=no", "--num-callers=50"])
        .arg(exe)
        .args(args)
        .env("LANG", "C.UTF-8")
        .output()
        .expect("valgrind (cargo xtask setup installs it)");
    assert!(out.status.success(), "valgrind {}: {}", exe.display(), String::from_utf8_lossy(&out.stderr));
    let sites = valgrind::parse(&String::from_utf8_lossy(&out.stderr), |f| SOURCES.contains(&f)).unwrap();
    // valgrind demangles C++ names with their parameters: `leak_cycle()`.
    sites.into_iter().map(|((k, f, file, l), v)| ((k, f.split('(').next().unwrap_or(&f).to_owned(), file, l), v)).collect()
}

/// The heap recorded in the process and by the allocator's uprobes: the same sites.
const HEAP_PROBES: [&str; 2] = ["inprocess", "uprobe"];

fn leaktrace_sites(exe: &Path, args: &[String], heap_probes: &str) -> (Sites, serde_json::Value) {
    let report = exe.with_extension("report.json");
    let out = leaktrace()
        .args(["run", "--no-tui", "--heap-probes", heap_probes, "--format", "json", "--focus"])
        .arg(sources())
        .arg("--output")
        .arg(&report)
        .arg("--")
        .arg(exe)
        .args(args)
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["complete"], true, "{}: {:#}", exe.display(), r["counters"]);
    let mut sites = Sites::new();
    for s in r["sites"].as_array().unwrap().iter().filter(|s| s["count"].as_u64() > Some(0)) {
        let file = s["site"]["file"].as_str().unwrap_or("").rsplit('/').next().unwrap().to_owned();
        let key = (
            s["kind"].as_str().unwrap().to_owned(),
            s["site"]["function"].as_str().unwrap_or("?").to_owned(),
            file,
            s["site"]["line"].as_u64().unwrap_or(0) as u32,
        );
        let e = sites.entry(key).or_insert((0, 0));
        e.0 += s["count"].as_u64().unwrap();
        e.1 += s["bytes"].as_u64().unwrap();
    }
    (sites, r)
}

/// The line of `text` in stacks.c, 1-based.
fn line_of(text: &str) -> u32 {
    let src = std::fs::read_to_string(sources().join("stacks.c")).unwrap();
    src.lines().position(|l| l.contains(text)).map(|i| i as u32 + 1).unwrap_or_else(|| panic!("`{text}` not in stacks.c"))
}

fn assert_same(what: &str, ours: &Sites, theirs: &Sites) {
    let only_ours: Vec<_> = ours.iter().filter(|(k, v)| theirs.get(*k) != Some(v)).collect();
    let only_theirs: Vec<_> = theirs.iter().filter(|(k, v)| ours.get(*k) != Some(v)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: leaktrace and valgrind differ\nleaktrace only: {only_ours:#?}\nvalgrind only: {only_theirs:#?}"
    );
}

#[test]
fn c_sites_equal_valgrinds_at_every_optimisation() {
    require_root();
    for flags in [&["-O0"][..], &["-O2"], &["-O2", "-fomit-frame-pointer"]] {
        let dir = tempfile::tempdir().unwrap();
        let (exe, args) = build_c(dir.path(), flags);
        let mut theirs = valgrind_sites(&exe, &args);
        for heap_probes in HEAP_PROBES {
            let flags = [flags, &[heap_probes]].concat();
            c_sites_equal(&flags, &exe, &args, heap_probes, &mut theirs);
        }
    }
}

fn c_sites_equal(flags: &[&str], exe: &Path, args: &[String], heap_probes: &str, theirs: &mut Sites) {
    let (ours, report) = leaktrace_sites(exe, args, heap_probes);
    let key = |function: &str, line: u32| ("heap".to_owned(), function.to_owned(), "stacks.c".to_owned(), line);
    // The tail call: at -O2 `make` is `jmp calloc`, and valgrind names its caller.
    // valgrind names the caller of a tail call where leaktrace puts the callee back.
    let at_callee = |theirs: &mut Sites, caller: (String, String, String, u32), callee: &(String, String, String, u32)| {
        if let Some(held) = theirs.remove(&caller) {
            theirs.insert(callee.clone(), held);
        }
        assert!(theirs.contains_key(callee), "{flags:?}: valgrind names the caller of {}: {theirs:#?}", callee.1);
    };
    let make = key("make", line_of("return calloc(1, n)"));
    if flags.contains(&"-O2") {
        at_callee(theirs, key("use_make", line_of("sink += (long)make(40)")), &make);
    }
    assert_eq!(ours.get(&make), Some(&(1, 40)), "{flags:?}: the tail-called allocating function is the site");
    // A chain of two: `relay` is `jmp make_chained`, itself `jmp calloc`.
    let chained = key("make_chained", line_of("return calloc(2, n)"));
    if flags.contains(&"-O2") {
        at_callee(theirs, key("use_relay", line_of("sink += (long)relay(56)")), &chained);
        let site = report["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "make_chained").expect("the chain's site");
        let frames: Vec<(&str, bool)> = site["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["function"].as_str().unwrap_or("?"), f["inferred"].as_bool().unwrap()))
            .skip_while(|f| f.0 != "make_chained")
            .take(3)
            .collect();
        assert_eq!(frames, [("make_chained", true), ("relay", true), ("use_relay", false)], "{flags:?}: both frames put back");
    }
    assert_eq!(ours.get(&chained), Some(&(1, 128)), "{flags:?}: the end of the chain is the site");
    assert_same(&format!("C {flags:?}"), &ours, theirs);
    // The dynamic linker's hook fired at start-up and at the dlopen (two
    // announcements each: objects being added, then consistent).
    let loads = report["tracer"]["object_loads"].as_u64().unwrap();
    assert!(loads >= 4, "{flags:?}: {loads} announcements from the dynamic linker");
    // Every leaking stack reaches the outermost frame.
    for s in report["sites"].as_array().unwrap() {
        assert!(s["stack_end"].is_null(), "{flags:?}: {} ends early: {}", s["site"]["label"], s["stack_end"]);
    }
    // The signal handler's stack goes on through the signal frame to main.
    let handler = report["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "on_signal").expect("the handler's leak");
    assert!(handler["stack"].as_array().unwrap().iter().any(|f| f["function"] == "main"), "{flags:?}: {:#}", handler["stack"]);
}

#[test]
fn cpp_and_rust_sites_equal_valgrinds() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cpp = dir.path().join("stacks_cpp");
    run(Command::new("g++").args(["-g", "-O2", "-o"]).arg(&cpp).arg(sources().join("stacks.cpp")));
    let rust = dir.path().join("stacks_rs");
    run(Command::new("rustc").args(["-g", "-C", "opt-level=2", "-o"]).arg(&rust).arg(sources().join("stacks.rs")));
    for exe in [cpp, rust] {
        let theirs = valgrind_sites(&exe, &[]);
        assert!(!theirs.is_empty(), "valgrind saw the leaks of {}", exe.display());
        for heap_probes in HEAP_PROBES {
            let (ours, _) = leaktrace_sites(&exe, &[], heap_probes);
            assert_same(&format!("{} ({heap_probes})", exe.display()), &ours, &theirs);
        }
    }
}
