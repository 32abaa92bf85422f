//! Privileged: a report build held open never holds up ingestion. Every live
//! view refresh, `--interval` print and metrics scrape builds its report
//! through `report::build` on leaktrace's main thread; here gdb stops that
//! thread at the entry of `report::build` (non-stop mode: the other threads,
//! the ring-buffer consumer among them, keep running) and keeps it there while
//! the target leaks 60,000 blocks, far more records than the 1 MiB ring holds.
//! The report then counts every block and no lost event: the consumer drained
//! the ring all along. The same harness with gdb in all-stop mode (every
//! thread stopped, the consumer too) loses most of them, so the measurement
//! can fail. (The heap goes through the kernel's ring: allocator uprobes.
//! The in-process recorders' ring never loses: a recorder that finds it
//! full waits for leaktrace, and the report counts the waits.)

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BLOCKS: u64 = 60_000;

fn wait_for_file(path: &Path, what: &str, log: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never happened; gdb said:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lets gdb go on (and detach) however the test ends.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// gdb's commands: attach, stop the thread that enters `report::build` until
/// `release` exists (`held` tells that it is there), then detach.
fn gdb_script(pid: u32, non_stop: bool, held: &Path, release: &Path) -> String {
    let (held, release) = (held.display(), release.display());
    format!(
        "set pagination off\nset confirm off\nset breakpoint pending off\nset non-stop {}\nattach {pid}\n\
         break leaktrace::report::build::build\ncommands 1\n  shell touch '{held}'\n  \
         shell while [ ! -e '{release}' ]; do sleep 0.05; done\nend\n\
         python\nimport os\nwhile not os.path.exists('{release}'):\n    \
         gdb.execute('continue -a' if gdb.parameter('non-stop') else 'continue')\nend\ndelete\ndetach\n",
        if non_stop { "on" } else { "off" }
    )
}

/// Runs the burst under leaktrace while gdb holds a report build open; the
/// final JSON report.
fn burst_while_a_build_is_held(non_stop: bool, heap_probes: &str) -> serde_json::Value {
    let (dir, burst) = build_one("burst");
    let d = dir.path();
    let (report, log) = (d.join("report.json"), d.join("gdb.log"));
    let mut leaktrace = leaktrace()
        .args(["run", "--no-tui", "--interval", "1", "--ring-size", "1", "--heap-probes", heap_probes, "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(&burst)
        .arg(d)
        .arg(BLOCKS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&d.join("ready"), "the target's start", &log);
    std::fs::write(d.join("hold.gdb"), gdb_script(leaktrace.id(), non_stop, &d.join("held"), &d.join("release"))).unwrap();
    let gdb_log = std::fs::File::create(&log).unwrap();
    let mut gdb = Command::new("timeout")
        .args(["-s", "KILL", "120", "gdb", "-batch", "-nx", "-x"])
        .arg(d.join("hold.gdb"))
        .stdin(Stdio::null())
        .stderr(gdb_log.try_clone().unwrap())
        .stdout(gdb_log)
        .spawn()
        .expect("gdb (cargo xtask setup installs it)");
    let release = Release(d.join("release"));
    wait_for_file(&d.join("held"), "a report build held by gdb", &log);
    let mut stdin = leaktrace.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    if heap_probes == "inprocess" && !non_stop {
        // The burst takes 3 s; its records (about 9 MB) outgrow the
        // recorders' 2 MiB ring (twice --ring-size) within a second: it cannot end while
        // leaktrace is stopped, its records wait for room.
        std::thread::sleep(Duration::from_secs(2));
        assert!(!d.join("done").exists(), "the burst ended while leaktrace's reader was stopped");
        drop(release);
    } else {
        wait_for_file(&d.join("done"), "the end of the burst", &log);
        drop(release);
    }
    wait_for_file(&d.join("done"), "the end of the burst", &log);
    assert!(gdb.wait().unwrap().success(), "gdb failed:\n{}", std::fs::read_to_string(&log).unwrap());
    let gdb_said = std::fs::read_to_string(&log).unwrap();
    assert!(gdb_said.contains("hit Breakpoint 1, leaktrace::report::build::build"), "{gdb_said}");
    drop(stdin); // the target exits at the end of its input
    let out = leaktrace.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json_report(&out, &report)
}

fn burst_count(report: &serde_json::Value) -> u64 {
    let sites = report["sites"].as_array().unwrap();
    sites.iter().filter(|s| s["site"]["function"] == "burst_block").map(|s| s["count"].as_u64().unwrap()).sum()
}

#[test]
fn the_consumer_drains_while_a_report_build_is_held_open() {
    require_root();
    let report = burst_while_a_build_is_held(true, "uprobe");
    assert_eq!(report["lost_events"], 0, "the ring overflowed while a report was being built");
    assert_eq!(burst_count(&report), BLOCKS);
}

/// The control: with every thread of leaktrace stopped, the ring overflows.
#[test]
fn with_the_consumer_stopped_too_the_burst_overflows_the_ring() {
    require_root();
    let report = burst_while_a_build_is_held(false, "uprobe");
    assert!(report["lost_events"].as_u64().unwrap() > BLOCKS / 2, "{}", report["lost_events"]);
    assert!(burst_count(&report) < BLOCKS / 2, "{}", burst_count(&report));
}

/// In-process, with every thread of leaktrace stopped: the recorder waits
/// for room, nothing is lost, and the report says it waited.
#[test]
fn with_the_consumer_stopped_the_recorder_waits_and_loses_nothing() {
    require_root();
    let report = burst_while_a_build_is_held(false, "inprocess");
    assert_eq!(report["target"]["heap_probes"], "in-process");
    assert_eq!(report["lost_events"], 0, "{:#}", report["counters"]);
    assert_eq!(burst_count(&report), BLOCKS);
    assert!(report["counters"]["recorder_waits"].as_u64().unwrap() > 0, "{:#}", report["counters"]);
}
