//! The heap is traced in the file the process mapped, whatever its path
//! says now: a library replaced on disk, a deleted executable, one visible
//! only in the target's mount namespace, an executable without section
//! headers, a path that is not UTF-8. Each target loses 7 blocks in
//! `lose_blocks`; the verdict is "leaks" (exit 1) with that site, never
//! "clean". A heap that cannot be traced at all makes the verdict
//! "incomplete" (exit 3), with the reason.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::{attached, build_one, json_report, require_root, stderr};

/// The site of the 7 lost blocks, and the verdict.
fn assert_lost_at_lose_blocks(out: &std::process::Output, r: &serde_json::Value) {
    let site = r["sites"].as_array().unwrap().iter().find(|s| s["kind"] == "heap" && s["site"]["function"] == "lose_blocks");
    let site = site.unwrap_or_else(|| panic!("no heap site at lose_blocks: {:#}\nstderr:\n{}", r["sites"], stderr(out)));
    assert_eq!((site["count"].as_u64(), site["bytes"].as_u64()), (Some(7), Some(7 * 48)), "{site:#}");
    assert_eq!(out.status.code(), Some(1), "leaks found, not clean:\n{}", stderr(out));
    assert_eq!(r["complete"], true, "{}", r["untraced"]);
}

/// A target started from `argv` with its stdin and stdout piped.
fn start(argv: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::piped()).stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (ctl, mut said) = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the target started");
    (child, ctl, said)
}

/// Attaches with `--ci`, has the target lose its blocks, and returns leaktrace's output and report.
fn attach_and_lose(
    child: &mut Child,
    mut ctl: ChildStdin,
    mut said: BufReader<ChildStdout>,
    dir: &Path,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let report = dir.join("attach.json");
    let pid = child.id().to_string();
    let args: Vec<&str> = ["--no-tui", "--ci", "--pid", &pid, "--duration", "2"].into_iter().chain(extra.iter().copied()).collect();
    let (mut tracer, mut err) = attached(&args, &report);
    ctl.write_all(b"l").unwrap();
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert_eq!(line, "done\n");
    let status = tracer.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    drop(ctl);
    assert_eq!(child.wait().unwrap().code(), Some(0), "the target ran on");
    let out = std::process::Output { status, stdout: Vec::new(), stderr: rest.into_bytes() };
    let r = json_report(&out, &report);
    (out, r)
}

#[test]
fn a_library_replaced_on_disk_is_probed_as_the_process_mapped_it() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    let lib = dir.path().join("libjemalloc.so.2");
    std::fs::copy("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", &lib).expect("cargo xtask setup installs libjemalloc2");
    let (mut child, ctl, said) = start(&[exe.as_os_str()], &[("LD_PRELOAD", lib.as_os_str())]);
    // What a package upgrade does: a new file renamed over the old one.
    let new = dir.path().join("libjemalloc.so.2.new");
    std::fs::copy(&lib, &new).unwrap();
    std::fs::rename(&new, &lib).unwrap();
    // Every outstanding block counts: the point is that the probes see them (jemalloc's
    // own memory, scanned as roots, holds words that look like pointers into its slabs).
    let (out, r) = attach_and_lose(&mut child, ctl, said, dir.path(), &["--leak-kinds", "all"]);
    assert!(r["target"]["allocator"].as_str().unwrap_or("").contains("libjemalloc"), "{}", r["target"]);
    assert_lost_at_lose_blocks(&out, &r);
}

#[test]
fn a_deleted_executable_is_traced_through_the_file_it_runs() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    // An executable that defines its allocator: the heap is traced only if the deleted file is read.
    let static_exe = dir.path().join("static");
    let src = common::programs_src().join("lose_on_cue.c");
    assert!(Command::new("cc").args(["-g", "-O2", "-static", "-o"]).arg(&static_exe).arg(&src).status().unwrap().success());
    for program in [exe, static_exe] {
        let (mut child, ctl, said) = start(&[program.as_os_str()], &[]);
        std::fs::remove_file(&program).unwrap();
        let (out, r) = attach_and_lose(&mut child, ctl, said, dir.path(), &[]);
        assert_lost_at_lose_blocks(&out, &r);
    }
}

#[test]
fn an_executable_only_in_the_targets_mount_namespace_is_traced() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    // A tmpfs only the target's namespace sees, the program copied into it and run from there.
    let script = format!("mount -t tmpfs none '{0}' && cp '{1}' '{0}/app' && exec '{0}/app'", private.display(), exe.display());
    let sh = [
        std::ffi::OsStr::new("unshare"),
        "--mount".as_ref(),
        "--propagation".as_ref(),
        "private".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        script.as_ref(),
    ];
    let (mut child, ctl, said) = start(&sh, &[]);
    assert!(!private.join("app").exists(), "the host does not see the private mount");
    let (out, r) = attach_and_lose(&mut child, ctl, said, dir.path(), &[]);
    assert_lost_at_lose_blocks(&out, &r);
}

/// `run --ci` over `program`: its output and JSON report.
fn run_ci(dir: &Path, program: &Path) -> (std::process::Output, serde_json::Value) {
    run_ci_argv(dir, &[program.as_os_str()])
}

fn run_ci_argv(dir: &Path, argv: &[&std::ffi::OsStr]) -> (std::process::Output, serde_json::Value) {
    // One `l`, then end of input: the target loses its blocks and exits.
    common::run_with_input(&["run", "--no-tui", "--ci"], &dir.join("run.json"), argv, b"l")
}

#[test]
fn an_executable_without_section_headers_is_traced() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    let mut data = std::fs::read(&exe).unwrap();
    let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
    // Cut at the section header table, and its count and name index zeroed: the loader needs none of it.
    data.truncate(shoff);
    data[0x28..0x30].fill(0);
    data[0x3c..0x40].fill(0);
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &data).unwrap();
    std::fs::set_permissions(&cut, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (out, r) = run_ci(dir.path(), &cut);
    let heap = r["outstanding"]["heap_allocations"].as_u64().unwrap_or(0);
    assert!(heap >= 7, "the heap was traced: {:#}\n{}", r["outstanding"], stderr(&out));
    assert_eq!(out.status.code(), Some(1), "leaks found:\n{}", stderr(&out));
    assert_eq!(r["complete"], true, "{}", r["untraced"]);
}

#[test]
fn a_path_that_is_not_utf8_is_traced() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&odd).unwrap();
    let program = odd.join(std::ffi::OsStr::from_bytes(b"app-\xff"));
    std::fs::copy(&exe, &program).unwrap();
    let (out, r) = run_ci(dir.path(), &program);
    assert_lost_at_lose_blocks(&out, &r);
}

#[test]
fn a_chrooted_target_has_its_objects_read_inside_its_root() {
    require_root();
    let (dir, exe) = build_one("lose_on_cue");
    let root = dir.path().join("root");
    // The program, its dynamic linker and libc, where the program asks for them.
    let interp = "/lib64/ld-linux-x86-64.so.2";
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    for (from, to) in [(exe.to_str().unwrap(), "/app"), (interp, interp), (libc, libc)] {
        let dest = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap();
    }
    let root_arg = format!("--root={}", root.display());
    let (out, r) = run_ci_argv(dir.path(), &["unshare".as_ref(), root_arg.as_ref(), "/app".as_ref()]);
    let unreadable: Vec<&serde_json::Value> =
        r["warnings"].as_array().unwrap().iter().filter(|w| w.as_str().unwrap_or("").contains("cannot read")).collect();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert_lost_at_lose_blocks(&out, &r);
}
