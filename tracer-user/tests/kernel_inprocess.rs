//! Privileged: the heap recorded in the process (`--heap-probes inprocess`)
//! gives what the allocator's uprobes give — the same sites, counts and
//! bytes — on programs of the project and on Debian's curl, python3 and
//! redis-server; the program sees the environment it was given; an image
//! the recorder cannot serve falls back to uprobes and says so.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Each site by kind and label: (outstanding count, bytes, acquired, released).
type Sites = BTreeMap<(String, String), (u64, u64, u64, u64)>;

fn sites(r: &serde_json::Value) -> Sites {
    let mut out = Sites::new();
    for s in r["sites"].as_array().unwrap() {
        let key = (s["kind"].as_str().unwrap().to_owned(), s["site"]["label"].as_str().unwrap().to_owned());
        let v = |k: &str| s[k].as_u64().unwrap_or(0);
        let e = out.entry(key).or_default();
        *e = (e.0 + v("count"), e.1 + v("bytes"), e.2 + v("allocations"), e.3 + v("releases"));
    }
    out
}

/// `leaktrace run --heap-probes MODE ARGS -- CMD` (JSON): the report, after checking how the heap was traced.
fn traced(dir: &Path, mode: &str, args: &[&str], cmd: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> serde_json::Value {
    let report = dir.join(format!("{mode}.json"));
    let mut lt = leaktrace();
    lt.envs(env.iter().copied()).args(["run", "--no-tui", "--heap-probes", mode, "--format", "json", "--output"]).arg(&report);
    let out = lt.args(args).arg("--").args(cmd).output().unwrap();
    let r = json_report(&out, &report);
    let want = if mode == "inprocess" { "in-process" } else { "uprobes" };
    assert_eq!(r["target"]["heap_probes"], want, "{}", stderr(&out));
    assert_eq!(r["lost_events"], 0, "{:#}", r["counters"]);
    r
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

/// The same command both ways: identical sites and totals, and a complete report.
fn assert_same_both_ways(what: &str, args: &[&str], cmd: &[std::ffi::OsString], env: &[(&str, &str)]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let cmd: Vec<&std::ffi::OsStr> = cmd.iter().map(|a| a.as_os_str()).collect();
    let inproc = traced(dir.path(), "inprocess", args, &cmd, env);
    let uprobe = traced(dir.path(), "uprobe", args, &cmd, env);
    assert!(inproc["totals"]["heap_allocations"].as_u64().unwrap() > 0, "{what}: no heap seen");
    assert_eq!(inproc["totals"]["heap_bytes"], uprobe["totals"]["heap_bytes"], "{what}: outstanding bytes");
    assert_eq!(inproc["totals"]["heap_allocations"], uprobe["totals"]["heap_allocations"], "{what}: outstanding blocks");
    assert_eq!(sites(&inproc), sites(&uprobe), "{what}: sites in-process (left) and by uprobes (right)");
    assert_eq!(inproc["target"]["allocator"], uprobe["target"]["allocator"], "{what}: the allocator named");
    inproc
}

#[test]
fn every_entry_point_of_three_allocators_gives_the_same_sites_in_process() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all", &[]).display().to_string();
    let glibc = ["malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"];
    let common = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc"];
    for (preload, entries) in [
        (None, &glibc[..]),
        (Some("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"), &common[..]),
        (Some("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"), &common[..]),
    ] {
        // The user's own preload stays, after the recorder's.
        let env: Vec<(&str, &str)> = preload.map(|p| ("LD_PRELOAD", p)).into_iter().collect();
        let what = preload.unwrap_or("glibc");
        let cmd: Vec<_> = std::iter::once(program.as_str()).chain(entries.iter().copied()).collect();
        let r = assert_same_both_ways(what, &["--focus", "tests/programs/"], &os(&cmd), &env);
        let named = r["target"]["allocator"].as_str().unwrap_or("");
        assert!(preload.is_none_or(|p| named.contains(Path::new(p).file_name().unwrap().to_str().unwrap())), "{what}: {named}");
        let s = sites(&r);
        let malloc = s.iter().find(|((_, label), _)| label.contains("leak_malloc")).expect("malloc's site");
        assert_eq!((malloc.1 .2, malloc.1 .3), (3, 1), "{what}: three mallocs, one freed: {s:?}");
    }
}

/// (Not through a shell: a shell copies its environment into its own
/// variables, and under --follow-forks leaktrace's variables stay in it for
/// the children's dynamic linker: see the README.)
#[test]
fn children_forked_and_execd_give_the_same_sites_in_process() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all", &[]).display().to_string();
    let parent = compile(dir.path(), "spawn_children.c", "spawn_children", &[]).display().to_string();
    let r = assert_same_both_ways("a parent and its children", &["--follow-forks"], &os(&[&parent, &program, "malloc", "calloc"]), &[]);
    let s = sites(&r);
    let malloc = s.iter().find(|((_, label), _)| label.contains("leak_malloc")).expect("the children's malloc site");
    assert_eq!((malloc.1 .0, malloc.1 .2), (4, 6), "two children, three mallocs each, two kept: {s:?}");
}

#[test]
fn debian_curl_and_python3_give_the_same_sites_in_process() {
    require_root();
    assert_same_both_ways("curl", &[], &os(&["/usr/bin/curl", "-s", "-o", "/dev/null", "file:///etc/hostname"]), &[]);
    let script = "import json, hashlib; print(len(json.dumps({'k': hashlib.sha256(b'x').hexdigest()})))";
    assert_same_both_ways("python3", &[], &os(&["/usr/bin/python3", "-c", script]), &[("PYTHONHASHSEED", "0")]);
}

/// redis-server under each mode, the same requests; what it holds at its
/// shutdown (its timers make the counts of a few sites vary by a block or
/// two from run to run, traced or not: sites and totals are compared within that).
fn redis(dir: &Path, mode: &str) -> serde_json::Value {
    let sock = dir.join(format!("{mode}.sock"));
    let report = dir.join(format!("redis-{mode}.json"));
    let lt = leaktrace()
        .args(["run", "--no-tui", "--no-scan", "--heap-probes", mode, "--format", "json", "--output"])
        .arg(&report)
        .args(["--", "/usr/bin/redis-server", "--port", "0", "--save", "", "--appendonly", "no", "--hz", "1", "--unixsocket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| Command::new("redis-cli").arg("-s").arg(&sock).args(args).output().expect("redis-cli");
    let started = Instant::now();
    while !cli(&["ping"]).stdout.starts_with(b"PONG") {
        assert!(started.elapsed() < Duration::from_secs(30), "redis-server did not answer under leaktrace ({mode})");
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..100 {
        cli(&["set", &format!("key{i}"), &"v".repeat(i * 10)]);
    }
    cli(&["shutdown", "nosave"]);
    let out = lt.wait_with_output().unwrap();
    json_report(&out, &report)
}

#[test]
fn debian_redis_server_gives_the_same_sites_in_process() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (inproc, uprobe) = (redis(dir.path(), "inprocess"), redis(dir.path(), "uprobe"));
    assert_eq!(inproc["target"]["heap_probes"], "in-process");
    let (a, b) = (sites(&inproc), sites(&uprobe));
    // Sites left in a system library have no frame of redis's: start-up
    // work of the libraries themselves (a constructor may run before the
    // recorder's own and is then not recorded in-process). The program's are compared.
    let in_system = |r: &serde_json::Value, label: &str| {
        r["sites"].as_array().unwrap().iter().any(|s| {
            s["site"]["label"] == label && ["/lib/", "/usr/lib/"].iter().any(|d| s["site"]["module"].as_str().unwrap_or("").starts_with(d))
        })
    };
    let labels = |s: &Sites, r: &serde_json::Value| s.keys().filter(|k| !in_system(r, &k.1)).cloned().collect::<Vec<_>>();
    assert_eq!(labels(&a, &inproc), labels(&b, &uprobe), "redis-server: the same sites");
    assert!(labels(&b, &uprobe).len() >= 50, "redis's own sites are compared: {:?}", labels(&b, &uprobe));
    let bytes = |r: &serde_json::Value| r["totals"]["heap_bytes"].as_i64().unwrap();
    let diff = (bytes(&inproc) - bytes(&uprobe)).abs();
    assert!(diff * 100 <= bytes(&uprobe), "redis-server: outstanding bytes {} in-process, {} by uprobes", bytes(&inproc), bytes(&uprobe));
}

#[test]
fn the_program_sees_the_environment_it_was_given() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let env_out = dir.path().join("env.txt");
    let script = format!("env > {}", env_out.display());
    let r = traced(dir.path(), "inprocess", &[], &[std::ffi::OsStr::new("/bin/sh"), "-c".as_ref(), script.as_ref()], &[]);
    assert_eq!(r["target"]["heap_probes"], "in-process");
    let seen = std::fs::read_to_string(&env_out).unwrap();
    let ours = |l: &&str| ["LD_PRELOAD=", "LEAKTRACE_SHM=", "LEAKTRACE_LD_PRELOAD="].iter().any(|v| l.starts_with(v));
    assert_eq!(seen.lines().filter(ours).count(), 0, "the command's environment:\n{seen}");
    // A preload of the user's own is put back as it was given.
    let r = traced(
        dir.path(),
        "inprocess",
        &[],
        &[std::ffi::OsStr::new("/bin/sh"), "-c".as_ref(), script.as_ref()],
        &[("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")],
    );
    assert!(r["target"]["allocator"].as_str().unwrap().contains("jemalloc"), "{}", r["target"]);
    let seen = std::fs::read_to_string(&env_out).unwrap();
    let preload: Vec<&str> = seen.lines().filter(ours).collect();
    assert_eq!(preload, ["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"], "the command's environment:\n{seen}");
}

#[test]
fn a_static_image_falls_back_to_uprobes_and_says_so() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "alloc_all.c", "alloc_all_static", &["-static"]);
    let report = dir.path().join("static.json");
    let out = leaktrace()
        .args(["run", "--no-tui", "--heap-probes", "inprocess", "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(&program)
        .arg("malloc")
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["target"]["heap_probes"], "uprobes", "{}", r["target"]);
    let said = r["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).any(|w| w.contains("traced by uprobes, not in-process"));
    assert!(said, "{:#}", r["warnings"]);
    let malloc = sites(&r).into_iter().find(|((_, l), _)| l.contains("leak_malloc")).expect("malloc's site").1;
    assert_eq!((malloc.2, malloc.3), (3, 1));
}

/// `attach --heap-probes inprocess`: the recorder loaded into a running
/// program finds its leak; at the end it is taken out again and the program
/// runs on.
#[test]
fn attach_loads_the_recorder_finds_the_leak_and_takes_it_out() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), "alloc_loop.c", "alloc_loop", &["-g"]);
    let mut target = Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(target.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let report = dir.path().join("attach.json");
    let pid = target.id().to_string();
    let out = leaktrace()
        .args(["attach", "--pid", &pid, "--duration", "1", "--heap-probes", "inprocess", "--format", "json", "--output"])
        .arg(&report)
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(r["target"]["heap_probes"], "in-process", "{}", stderr(&out));
    let leak = sites(&r).into_iter().find(|((_, l), _)| l.starts_with("leak_one")).map(|(_, v)| v);
    let (count, bytes, ..) = leak.unwrap_or_else(|| panic!("no leak_one site: {:#}", r["sites"]));
    assert!(count > 0 && bytes == 40 * count, "{count} blocks, {bytes} bytes");
    assert_eq!(r["lost_events"], 0);
    // Taken out: the program runs on (its GOT entries put back: kernel_inject checks them).
    std::thread::sleep(Duration::from_millis(200));
    assert!(target.try_wait().unwrap().is_none(), "the program stopped after the detach");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(maps.contains("memfd:leaktrace-recorder"), "the library stays, inert");
    target.kill().unwrap();
    let _ = target.wait();
}
