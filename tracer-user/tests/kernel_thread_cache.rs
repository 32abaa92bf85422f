//! Privileged: glibc's release of each exiting thread's cache. glibc keeps
//! blocks a thread freed in the thread's cache and frees them again, with
//! the cache, inside its own code when the thread exits: with the
//! allocator's uprobes and glibc's debug symbols (libc6-dbg) that release
//! is probed and none of it is an unknown free; in-process it is not seen.

mod common;

use common::*;

#[test]
fn threads_exiting_leave_no_unknown_free() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), "thread_cache.c", "thread_cache", &["-pthread"]);
    for heap in ["uprobe", "inprocess"] {
        let report = dir.path().join(format!("{heap}.json"));
        let out = leaktrace()
            .args(["run", "--no-tui", "--heap-probes", heap, "--format", "json", "--output"])
            .arg(&report)
            .arg("--")
            .arg(&exe)
            .arg("5")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let r = json_report(&out, &report);
        assert_eq!(r["anomalies"]["unknown_frees"], 0, "{heap}: {:#}", r["anomalies"]);
        let work: Vec<&serde_json::Value> = r["sites"].as_array().unwrap().iter().filter(|s| s["site"]["function"] == "work").collect();
        let sum = |field: &str| work.iter().map(|s| s[field].as_u64().unwrap()).sum::<u64>();
        assert_eq!((sum("count"), sum("bytes")), (5, 200), "{heap}: one block of each thread leaked");
        assert_eq!((sum("allocations"), sum("releases")), (35, 30), "{heap}: every free of the program, once");
        assert!(r["warnings"].as_array().unwrap().iter().all(|w| !w.as_str().unwrap().contains("thread's cache")), "{heap}");
    }
}
