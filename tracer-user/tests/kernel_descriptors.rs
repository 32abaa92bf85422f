//! Privileged: descriptors of every kind, from every system call that makes
//! one, against what the kernel itself lists in /proc/PID/fd; and numbers
//! passed between threads by closes and opens in flight at once.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

/// The kind of an open descriptor as /proc/PID/fd shows it (independently of
/// leaktrace's own classification, which reads the file in the kernel).
fn proc_kind(link: &str) -> &'static str {
    let anon = |name: &str| match name {
        "[timerfd]" => "timerfd",
        "[eventfd]" => "eventfd",
        "[eventpoll]" => "epoll",
        "[io_uring]" => "io_uring",
        "inotify" => "inotify",
        "[signalfd]" => "signalfd",
        "[fanotify]" => "fanotify",
        "[userfaultfd]" => "userfaultfd",
        "[perf_event]" => "perf",
        "[pidfd]" => "pidfd",
        n if n.starts_with("bpf") || n == "btf" => "bpf",
        _ => "other",
    };
    if link.starts_with("socket:") {
        "socket"
    } else if link.starts_with("pipe:") {
        "pipe"
    } else if let Some(name) = link.strip_prefix("anon_inode:") {
        anon(name)
    } else if link.starts_with("/memfd:") || link.starts_with("/secretmem") {
        "memfd"
    } else {
        "file"
    }
}

/// Descriptors of `pid` but `inherited` ones, counted by kind.
fn proc_counts(pid: u32, inherited: &[i32]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        if fd < 3 || inherited.contains(&fd) {
            continue; // not the program's own: stdin, stdout, stderr and what cargo passes down
        }
        let link = std::fs::read_link(entry.path()).unwrap();
        *counts.entry(proc_kind(&link.to_string_lossy()).to_owned()).or_insert(0) += 1;
    }
    counts
}

fn site<'a>(r: &'a serde_json::Value, function: &str, kind: &str) -> Vec<&'a serde_json::Value> {
    r["sites"].as_array().unwrap().iter().filter(|s| s["site"]["function"] == function && s["kind"] == kind).collect()
}

#[test]
fn every_kind_equals_proc_fd_and_every_site_is_right() {
    require_root();
    let dir = build_programs();
    let manifest = dir.path().join("expect.json");
    let m = manifest_from_markers(&["kinds.c"], |name| match name {
        "recvmsg" | "recvmmsg" => "receive",
        "socketpair" | "socket" | "accept" | "udp6" => "sockets",
        "pipe2" | "pipe" | "open" | "open_tree" | "by_handle" | "fsopen" | "fsmount" | "fspick" => "files",
        "io_uring" | "pidfd_open" | "memfd" | "memfd_secret" | "pidfd_getfd" | "fanotify" | "userfaultfd" | "perf" | "bpf" | "clone3" => {
            "kernel_objects"
        }
        _ => "events",
    });
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let report = dir.path().join("report.json");
    let mut lt = leaktrace()
        .args(["run", "--ci", "--no-tui", "--format", "json", "--focus", "tests/programs/", "--expect"])
        .arg(&manifest)
        .arg("--output")
        .arg(&report)
        .arg("--")
        .arg(dir.path().join("kinds"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(lt.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let words: Vec<i32> = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("no ready line: {line:?}"))
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    // Everything is open now: what the kernel lists.
    let pid = words[0] as u32;
    let proc = proc_counts(pid, &words[1..]);
    drop(lt.stdin.take()); // lets it exit
    let out = lt.wait_with_output().unwrap();
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(0), "every site as marked; stderr:\n{}\nsites: {:#}", stderr(&out), r["sites"]);
    assert_eq!(r["complete"], true, "{:#}", r["counters"]);
    let traced: BTreeMap<String, u64> = serde_json::from_value(r["totals"]["handles"].clone()).unwrap();
    assert_eq!(traced, proc, "leaktrace's outstanding descriptors by kind against /proc/{pid}/fd");
    assert_eq!(proc.len(), 16, "one kind of each: {proc:?}");
    assert_eq!(r["descriptors"]["mechanism"], "per-syscall exit tracepoints");

    // What the files and the calls say.
    let received = site(&r, "receive", "eventfd");
    assert_eq!(received.len(), 2, "recvmsg and recvmmsg");
    assert!(received.iter().all(|s| s["received"] == true), "{received:#?}");
    assert!(site(&r, "events", "eventfd").iter().all(|s| s["received"] == false));
    let details = |f: &str, k: &str| -> Vec<String> {
        site(&r, f, k).iter().flat_map(|s| s["detail"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned())).collect()
    };
    let sockets = details("sockets", "socket");
    for want in ["AF_UNIX SOCK_STREAM", "AF_INET SOCK_STREAM", "AF_INET6 SOCK_DGRAM"] {
        assert!(sockets.iter().any(|d| d == want), "{want} in {sockets:?}");
    }
    assert!(site(&r, "sockets", "socket").iter().any(|s| s["detail"] == serde_json::json!([])), "accept has no call arguments to show");
    assert_eq!(details("files", "other"), vec!["[fscontext]", "[fscontext]"]);
    let memfds = details("kernel_objects", "memfd");
    assert!(memfds.contains(&"memfd:leaky".to_owned()) && memfds.contains(&"secretmem".to_owned()), "{memfds:?}");
    assert_eq!(details("kernel_objects", "bpf"), vec!["bpf-map"]);
}

#[test]
fn numbers_passed_between_threads_mid_close_are_neither_lost_nor_leaked() {
    require_root();
    let dir = build_programs();
    let manifest = dir.path().join("expect.json");
    let m = manifest_from_markers(&["fd_threads.c"], |_| "keep");
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .args(["run", "--ci", "--format", "json", "--focus", "tests/programs/", "--expect"])
        .arg(&manifest)
        .arg("--output")
        .arg(&report)
        .arg("--")
        .arg(dir.path().join("fd_threads"))
        .arg("20000")
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(0), "only the three kept; stderr:\n{}\nsites: {:#}", stderr(&out), r["sites"]);
    assert_eq!(r["complete"], true, "{:#}", r["counters"]);
    assert_eq!(r["totals"]["handles"], serde_json::json!({"eventfd": 3}));
    let a = &r["anomalies"];
    assert_eq!((a["unknown_closes"].as_u64(), a["reused_descriptors"].as_u64()), (Some(0), Some(0)), "{a:#}");
    let churned: u64 = r["sites"].as_array().unwrap().iter().map(|s| s["allocations"].as_u64().unwrap()).sum();
    assert!(churned >= 4 * 20000 * 4, "every open was seen: {churned}");
}

#[test]
fn descriptors_received_beyond_what_is_followed_make_the_report_incomplete() {
    require_root();
    let dir = build_programs();
    let report = dir.path().join("report.json");
    let out = leaktrace()
        .args(["run", "--ci", "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(dir.path().join("many_fds"))
        .output()
        .unwrap();
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(3), "incomplete, not clean; stderr:\n{}", stderr(&out));
    assert_eq!(r["complete"], false);
    assert_eq!(r["counters"]["received_untraced"], 1, "{:#}", r["counters"]);
    let received: Vec<_> = r["sites"].as_array().unwrap().iter().filter(|s| s["received"] == true).collect();
    assert_eq!(received.len(), 1, "one receiving call");
    assert_eq!((received[0]["kind"].as_str(), received[0]["count"].as_u64()), (Some("eventfd"), Some(16)), "the first 16 followed");
}

#[test]
fn close_on_exec_set_and_cleared_by_ioctl_decides_what_an_exec_keeps() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = compile(dir.path(), "ioctl_cloexec.c", "ioctl_cloexec", &[]);
    let report = dir.path().join("report.json");
    let out = leaktrace().args(["run", "--format", "json", "--output"]).arg(&report).arg("--").arg(&program).output().unwrap();
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Only FIONCLEX's pipe outlives the exec; it is named where it was made, in the image before.
    assert_eq!(r["totals"]["handles"], serde_json::json!({"pipe": 2}), "{:#}", r["sites"]);
    let held = |f: &str| site(&r, f, "pipe").iter().map(|s| s["count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!((held("inheritable"), held("private_pipe")), (2, 0), "{:#}", r["sites"]);
}
