//! Per-process figures of a program that forks, as valgrind
//! `--trace-children=yes` (a log per process) and leaktrace's `processes[]`
//! give them: kernel_prefork.rs and kernel_nginx.rs compare them.

use std::path::Path;

/// valgrind's options for the comparison.
pub const VALGRIND: [&str; 5] =
    ["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--run-libc-freeres=no", "--trace-children=yes"];
pub const CLASSES: [&str; 4] = ["definite", "indirect", "possible", "reachable"];

/// What one process holds at its end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    /// (bytes, blocks)
    pub heap: (u64, u64),
    /// Descriptors the program opened.
    pub descriptors: u64,
    /// (bytes, blocks) per class, in [`CLASSES`] order.
    pub classes: [(u64, u64); 4],
}

/// "1,063 bytes in 8 blocks" after `label`, on the line that has it.
pub fn bytes_in_blocks(text: &str, label: &str) -> (u64, u64) {
    let line = text.lines().find_map(|l| l.split_once(label).map(|(_, rest)| rest)).unwrap_or_else(|| panic!("no `{label}`:\n{text}"));
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.replace(',', "").parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// valgrind's heap figures of one process from its log, with `descriptors`.
pub fn valgrind_held(log: &str, descriptors: u64) -> Held {
    let labels = ["definitely lost:", "indirectly lost:", "possibly lost:", "still reachable:"];
    Held { heap: bytes_in_blocks(log, "in use at exit:"), descriptors, classes: labels.map(|l| bytes_in_blocks(log, l)) }
}

/// Each log of `logs` (`--log-file=DIR/%p`) read by `held`: the master's
/// (pid `master`), then `workers` others.
pub fn valgrind_logs(logs: &Path, master: u32, workers: usize, held: impl Fn(&str) -> Held) -> Vec<Held> {
    let (mut first, mut others) = (None, Vec::new());
    for e in std::fs::read_dir(logs).unwrap() {
        let e = e.unwrap();
        let h = held(&std::fs::read_to_string(e.path()).unwrap());
        if e.file_name().to_str() == Some(master.to_string().as_str()) {
            first = Some(h);
        } else {
            others.push(h);
        }
    }
    assert_eq!(others.len(), workers, "one log per worker");
    in_order(first.expect("the master's log"), others)
}

/// The master's, then the workers' in a stable order (heap, then the rest).
pub fn in_order(master: Held, mut workers: Vec<Held>) -> Vec<Held> {
    workers.sort_by_key(|w| (w.heap, w.descriptors, w.classes));
    std::iter::once(master).chain(workers).collect()
}

/// leaktrace's view of one process, from `processes[]`.
pub fn leaktrace_held(p: &serde_json::Value) -> Held {
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let r = &p["reachability"];
    assert_eq!(r["unscanned"]["count"], 0, "every process is scanned at its end: {p:#}");
    Held {
        heap: (n(&p["heap_bytes"]), n(&p["heap_allocations"])),
        descriptors: p["handles"].as_object().unwrap().values().map(n).sum(),
        classes: CLASSES.map(|c| (n(&r[c]["bytes"]), n(&r[c]["count"]))),
    }
}

/// A report's processes: the target's (the master's), then `workers` others.
pub fn leaktrace_processes(r: &serde_json::Value, workers: usize) -> Vec<Held> {
    let master = &r["target"]["pid"];
    let processes = r["processes"].as_array().unwrap();
    assert_eq!(processes.len(), workers + 1, "{:#}", r["processes"]);
    let first = processes.iter().find(|p| p["pid"] == *master).map(leaktrace_held).expect("the master's row");
    in_order(first, processes.iter().filter(|p| p["pid"] != *master).map(leaktrace_held).collect())
}
