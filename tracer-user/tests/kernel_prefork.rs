//! Privileged: a pre-fork server (programs/prefork.c) under `run
//! --follow-forks`. Each worker starts with what the master held at its
//! fork: leaktrace charges each process what it still holds at its end —
//! heap, descriptors, and the heap's classes — as valgrind `--trace-children=yes`
//! does, and the workers' frees and closes of what they inherited are known.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tracer_common::valgrind;

const WORKERS: usize = 3;
const VALGRIND: [&str; 5] =
    ["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--run-libc-freeres=no", "--trace-children=yes"];
const CLASSES: [&str; 4] = ["definite", "indirect", "possible", "reachable"];

/// What one process holds at its end.
#[derive(Debug, Default, PartialEq, Eq)]
struct Held {
    /// (bytes, blocks)
    heap: (u64, u64),
    /// Descriptors the program opened.
    descriptors: u64,
    /// (bytes, blocks) per class, in [`CLASSES`] order.
    classes: [(u64, u64); 4],
}

/// "1,063 bytes in 8 blocks" after `label`, on the line that has it.
fn bytes_in_blocks(text: &str, label: &str) -> (u64, u64) {
    let line = text.lines().find_map(|l| l.split_once(label).map(|(_, rest)| rest)).unwrap_or_else(|| panic!("no `{label}`:\n{text}"));
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.replace(',', "").parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// valgrind's view of one process, from its own log.
fn valgrind_held(log: &str) -> Held {
    let labels = ["definitely lost:", "indirectly lost:", "possibly lost:", "still reachable:"];
    let fds = valgrind::records(log, |f| f == "prefork.c").unwrap().into_iter().filter(|r| r.kind != "heap").count();
    Held { heap: bytes_in_blocks(log, "in use at exit:"), descriptors: fds as u64, classes: labels.map(|l| bytes_in_blocks(log, l)) }
}

/// The master's, then the workers' by heap bytes (each leaks a block of its own size).
fn in_order(master: Held, mut workers: Vec<Held>) -> Vec<Held> {
    workers.sort_by_key(|w| w.heap);
    std::iter::once(master).chain(workers).collect()
}

fn valgrind_processes(dir: &Path, exe: &Path) -> Vec<Held> {
    let logs = dir.join("vg");
    std::fs::create_dir(&logs).unwrap();
    let mut vg = Command::new("valgrind")
        .args(VALGRIND)
        .arg(format!("--log-file={}/%p", logs.display()))
        .arg(exe)
        .arg(WORKERS.to_string())
        .spawn()
        .expect("valgrind (cargo xtask setup)");
    let master = vg.id().to_string();
    assert!(vg.wait().unwrap().success(), "the program under valgrind");
    let mut workers = Vec::new();
    let mut first = None;
    for e in std::fs::read_dir(&logs).unwrap() {
        let e = e.unwrap();
        let held = valgrind_held(&std::fs::read_to_string(e.path()).unwrap());
        if e.file_name().to_str() == Some(master.as_str()) {
            first = Some(held);
        } else {
            workers.push(held);
        }
    }
    assert_eq!(workers.len(), WORKERS, "one log per worker");
    in_order(first.expect("the master's log"), workers)
}

/// leaktrace's view of one process, from `processes[]`.
fn leaktrace_held(p: &serde_json::Value) -> Held {
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let r = &p["reachability"];
    assert_eq!(r["unscanned"]["count"], 0, "every process is scanned at its end: {p:#}");
    Held {
        heap: (n(&p["heap_bytes"]), n(&p["heap_allocations"])),
        descriptors: p["handles"].as_object().unwrap().values().map(n).sum(),
        classes: CLASSES.map(|c| (n(&r[c]["bytes"]), n(&r[c]["count"]))),
    }
}

fn leaktrace_processes(dir: &Path, exe: &Path, heap_probes: &str) -> (Vec<Held>, serde_json::Value) {
    let report = dir.join(format!("prefork-{heap_probes}.json"));
    let out = leaktrace()
        .args(["run", "--no-tui", "--follow-forks", "--heap-probes", heap_probes, "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(exe)
        .arg(WORKERS.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_report(&out, &report);
    let master = &r["target"]["pid"];
    let processes = r["processes"].as_array().unwrap();
    assert_eq!(processes.len(), WORKERS + 1, "{:#}", r["processes"]);
    let first = processes.iter().find(|p| p["pid"] == *master).map(leaktrace_held).expect("the master's row");
    let workers = processes.iter().filter(|p| p["pid"] != *master).map(leaktrace_held).collect();
    (in_order(first, workers), r)
}

#[test]
fn each_process_of_a_prefork_server_holds_what_valgrind_says_it_holds() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), "prefork.c", "prefork", &["-O2"]);
    let vg = valgrind_processes(dir.path(), &exe);
    // The program does what it says: each worker lost the configuration it inherited.
    assert!(vg[1..].iter().all(|w| w.classes[0].1 == 3 && w.classes[1].1 == 2), "{vg:#?}");
    assert_eq!((vg[0].classes[0].1, vg[0].descriptors, vg[1].descriptors), (1, 3, 2), "{vg:#?}");
    for heap_probes in ["inprocess", "uprobe"] {
        let (lt, r) = leaktrace_processes(dir.path(), &exe, heap_probes);
        assert_eq!(lt, vg, "{heap_probes}: per process, leaktrace (left) and valgrind (right)");
        let a = &r["anomalies"];
        assert_eq!((&a["unknown_frees"], &a["unknown_closes"]), (&0.into(), &0.into()), "{heap_probes}: {a:#}");
        let scans = r["scans"].as_array().unwrap();
        assert!(scans.len() == WORKERS + 1 && scans.iter().all(|s| s["heap_known"] == true), "{heap_probes}: {scans:#?}");
        // The sites add the processes up.
        let held: u64 = lt.iter().map(|p| p.heap.1).sum();
        assert_eq!(r["outstanding"]["heap_allocations"].as_u64(), Some(held), "{heap_probes}");
    }
}
