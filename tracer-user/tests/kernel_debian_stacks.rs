//! Privileged: complete stacks in programs the project did not write —
//! Debian's curl, python3 and redis-server, built without frame pointers and
//! stripped. At most 1% of the stacks taken may end before the outermost
//! frame (and each such site says why).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Stacks taken (acquisitions at every site) and stacks that ended early.
fn stack_counts(r: &serde_json::Value) -> (u64, u64) {
    let taken = r["sites"].as_array().unwrap().iter().map(|s| s["allocations"].as_u64().unwrap()).sum();
    (taken, r["counters"]["truncated_stacks"].as_u64().unwrap())
}

fn assert_complete(what: &str, r: &serde_json::Value) {
    let (taken, early) = stack_counts(r);
    assert!(taken > 100, "{what}: only {taken} stacks taken");
    assert!(early * 100 <= taken, "{what}: {early} of {taken} stacks end early; sites: {:#}", r["sites"]);
    for s in r["sites"].as_array().unwrap().iter().filter(|s| s["truncated"] == true) {
        assert!(s["stack_end"].as_str().is_some_and(|w| !w.is_empty()), "{what}: a cut stack says why: {s:#}");
    }
}

fn trace(dir: &Path, name: &str, cmd: &[&str]) -> serde_json::Value {
    let report = dir.join(format!("{name}.json"));
    let out = leaktrace().args(["run", "--no-tui", "--format", "json", "--output"]).arg(&report).arg("--").args(cmd).output().unwrap();
    json_report(&out, &report)
}

/// One test, the programs one after the other: tracing two at once on two
/// cores would measure the machine, not the walker (a module met in a
/// dlopen is walked from stack copies until its table is in).
#[test]
fn curl_python_and_redis_stacks_are_complete() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let r = trace(dir.path(), "curl", &["/usr/bin/curl", "-s", "-o", "/dev/null", "file:///etc/hostname"]);
    assert_complete("curl", &r);
    let script = "import ssl, json, decimal, sqlite3, hashlib; print(len(json.dumps({'k': hashlib.sha256(b'x').hexdigest()})))";
    let r = trace(dir.path(), "python3", &["/usr/bin/python3", "-c", script]);
    assert_complete("python3", &r);
    // The same as a new image of a shell (Debian's python3 is not PIE: its
    // mappings sit at low addresses), with nothing compiled before it starts.
    let r = trace(dir.path(), "sh-python3", &["/bin/sh", "-c", &format!("exec /usr/bin/python3 -c \"{script}\"")]);
    assert_complete("python3 exec'd by sh", &r);
    redis_server(dir.path());
}

fn redis_server(dir: &Path) {
    let sock = dir.join("redis.sock");
    let report = dir.join("redis.json");
    let lt = leaktrace()
        .args(["run", "--no-tui", "--format", "json", "--output"])
        .arg(&report)
        .args(["--", "/usr/bin/redis-server", "--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new("redis-cli").arg("-s").arg(&sock).args(args).output().expect("redis-cli (cargo xtask setup installs it)")
    };
    let started = Instant::now();
    while !cli(&["ping"]).stdout.starts_with(b"PONG") {
        assert!(started.elapsed() < Duration::from_secs(30), "redis-server did not answer under leaktrace");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..200 {
        cli(&["set", &format!("key{i}"), &"v".repeat(i * 10)]);
    }
    cli(&["shutdown", "nosave"]);
    let out = lt.wait_with_output().unwrap();
    let r = json_report(&out, &report);
    assert_complete("redis-server", &r);
}
