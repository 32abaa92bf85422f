//! Privileged: a pre-fork server (programs/prefork.c) under `run
//! --follow-forks`. Each worker starts with what the master held at its
//! fork: leaktrace charges each process what it still holds at its end —
//! heap, descriptors, and the heap's classes — as valgrind `--trace-children=yes`
//! does, and the workers' frees and closes of what they inherited are known.

mod common;

use std::path::Path;
use std::process::Command;

use common::processes::{self, valgrind_logs, Held, VALGRIND};
use common::*;
use tracer_common::valgrind;

const WORKERS: usize = 3;

/// valgrind's view of one process, from its own log.
fn valgrind_held(log: &str) -> Held {
    let fds = valgrind::records(log, |f| f == "prefork.c").unwrap().into_iter().filter(|r| r.kind != "heap").count();
    processes::valgrind_held(log, fds as u64)
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
    let master = vg.id();
    assert!(vg.wait().unwrap().success(), "the program under valgrind");
    valgrind_logs(&logs, master, WORKERS, valgrind_held)
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
    (processes::leaktrace_processes(&r, WORKERS), r)
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
