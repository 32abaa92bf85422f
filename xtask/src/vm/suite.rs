//! The kernel smoke suite: which of leaktrace's kernel tests each guest runs
//! (one table), the script that runs them inside the guest, and reading
//! their results back from the serial console.

use std::collections::BTreeMap;
use std::path::Path;

/// One item of the smoke suite: tests of one test binary (`tracer-user/tests/BINARY.rs`).
pub struct Check {
    /// The item of the suite, as issue 22 lists it.
    pub what: &'static str,
    pub binary: &'static str,
    /// Exact test names; each runs on its own, so each has its own status and time.
    pub tests: &'static [&'static str],
}

/// The suite. Everything here runs in every guest: none of it needs what
/// the guest lacks (the guest has the host's files, BTF, tracefs, bpffs,
/// loopback, and the host's node, valgrind, jemalloc and tcmalloc); what is
/// left out of it is in [`LEFT_OUT`], with the reason.
pub const SMOKE: &[Check] = &[
    Check {
        what: "fixture verdicts, with and without frame pointers",
        binary: "kernel_fixture",
        tests: &["leaky_builds_match_the_manifest_exactly", "fixed_builds_are_clean_and_leaky_fails_plain_ci"],
    },
    Check { what: "attach against /proc/PID/fd", binary: "kernel_attach", tests: &["outstanding_handles_equal_proc_fd"] },
    Check { what: "every descriptor kind", binary: "kernel_descriptors", tests: &["every_kind_equals_proc_fd_and_every_site_is_right"] },
    Check {
        what: "heap on glibc, jemalloc and tcmalloc",
        binary: "kernel_allocators",
        tests: &["every_entry_point_of_three_allocators_is_traced_on_the_links_the_kernel_offers"],
    },
    Check {
        what: "heap in-process equal to uprobes (glibc, jemalloc, tcmalloc); attach loads the recorder",
        binary: "kernel_inprocess",
        tests: &[
            "every_entry_point_of_three_allocators_gives_the_same_sites_in_process",
            "attach_loads_the_recorder_finds_the_leak_and_takes_it_out",
        ],
    },
    Check {
        what: "reachability against valgrind (the oracle)",
        binary: "kernel_reach",
        tests: &["every_block_of_the_oracle_program_has_valgrinds_class"],
    },
    Check { what: "--sample", binary: "kernel_sample", tests: &["sampling_estimates_the_heap_and_keeps_descriptors_exact"] },
    Check {
        what: "Node.js perf map",
        binary: "kernel_node",
        tests: &["leaky_service_sockets_are_its_javascript_functions_exactly_as_its_manifest_says"],
    },
    Check {
        what: "event loops: libuv handles' creation stacks (C on Debian's libuv, by dlopen too, Node.js), libuv timers",
        binary: "kernel_event_loop",
        tests: &[
            "a_c_program_on_debian_s_libuv_has_its_sockets_and_timers_at_the_functions_that_created_them",
            "node_s_sockets_are_at_the_javascript_functions_that_created_them_without_focus",
            "a_libuv_loaded_by_dlopen_is_followed_from_the_load_on",
        ],
    },
    Check { what: "run -- /bin/true", binary: "kernel_lifecycle", tests: &["run_bin_true_exits_as_true_did_with_a_complete_report"] },
    Check { what: "leaktrace check", binary: "kernel_check", tests: &["check_names_every_feature_and_can_trace_here"] },
];

/// Tests of the suite's binaries that the guests do not run, and why (the
/// summary says so on every run).
pub const LEFT_OUT: &[(&str, &str)] = &[(
    "kernel_allocators::every_entry_point_of_three_allocators_is_traced_on_every_link_kind",
    "forces uprobe sessions (Linux 6.13) and uprobe_multi (6.6) in turn: these kernels lack them (the host runs it)",
)];

/// One test to run: its item and its name.
#[derive(Clone, Copy)]
pub struct Case {
    pub check: &'static Check,
    pub test: &'static str,
}

impl Case {
    pub fn id(&self) -> String {
        format!("{}::{}", self.check.binary, self.test)
    }
}

/// The cases whose item, binary or name contains `filter` (all without one).
pub fn select(filter: Option<&str>) -> Vec<Case> {
    SMOKE
        .iter()
        .flat_map(|check| check.tests.iter().map(move |&test| Case { check, test }))
        .filter(|c| filter.is_none_or(|f| c.id().contains(f) || c.check.what.contains(f)))
        .collect()
}

/// The key of leaktrace's own executable among the test binaries'.
pub const LEAKTRACE: &str = "leaktrace";

/// A test's time limit inside the guest (emulated, it is far slower than on the host).
const TEST_TIMEOUT_SECS: u32 = 480;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's script: each case in turn from `cwd` (where cargo runs the
/// tests) with `env`, between `@@matrix start N` and `@@matrix end N RC`,
/// with the guest's uptime for timing.
pub fn script(cases: &[Case], exes: &BTreeMap<String, std::path::PathBuf>, cwd: &Path, env: &[(String, String)]) -> String {
    let mut s = String::from("# Written by cargo xtask matrix.\n");
    for (k, v) in env {
        s += &format!("export {k}={}\n", quote(v));
    }
    s += &format!("cd {} || {{ echo '@@matrix fatal no working directory'; exit 1; }}\n", quote(&cwd.display().to_string()));
    s += "up() { cut -d' ' -f1 /proc/uptime; }\n";
    // What the kernel offers and what leaktrace uses of it, for the summary.
    let leaktrace = exes.get(LEAKTRACE).map(|p| p.display().to_string()).unwrap_or_default();
    s += &format!("echo '@@matrix check'\n{} check 2>&1 </dev/null\necho \"@@matrix checked $?\"\n", quote(&leaktrace));
    s += &format!(
        "run() {{\n    echo \"@@matrix start $1 $(up)\"\n    timeout -k 10 {TEST_TIMEOUT_SECS} \"$2\" --exact \"$3\" --test-threads=1 </dev/null 2>&1\n    \
         rc=$?\n    echo \"@@matrix end $1 $rc $(up)\"\n}}\n"
    );
    for (i, c) in cases.iter().enumerate() {
        let exe = exes.get(c.check.binary).map(|p| p.display().to_string()).unwrap_or_default();
        s += &format!("run {i} {} {}\n", quote(&exe), quote(c.test));
    }
    s
}

/// How a case ended.
#[derive(Debug, PartialEq)]
pub enum Status {
    Passed,
    /// The test binary's exit code.
    Failed(i32),
    /// Killed at the time limit.
    TimedOut,
    /// Exit 0 but no test of that name ran (a stale table).
    NoSuchTest,
    /// Started, never finished: the guest ended (or was killed) during it.
    Unfinished,
    /// The guest ended (or was killed) before it.
    NotRun,
}

pub struct Outcome {
    pub status: Status,
    pub secs: f64,
    /// Its output on the console.
    pub output: Vec<String>,
}

fn marker(line: &str) -> Option<Vec<&str>> {
    line.find("@@matrix ").map(|at| line[at + "@@matrix ".len()..].split_whitespace().collect())
}

/// Each case's outcome, from the serial console.
pub fn parse(cases: &[Case], serial: &str) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = cases.iter().map(|_| Outcome { status: Status::NotRun, secs: 0.0, output: Vec::new() }).collect();
    let mut current: Option<(usize, f64)> = None;
    for line in serial.lines() {
        match marker(line).as_deref() {
            Some(["start", id, at, ..]) => {
                current = id.parse().ok().filter(|&i| i < cases.len()).map(|i| (i, at.parse().unwrap_or(0.0)));
                if let Some((i, _)) = current {
                    out[i].status = Status::Unfinished;
                }
            }
            Some(["end", id, rc, at, ..]) => {
                let Some((i, t0)) = current.take().filter(|(i, _)| id.parse() == Ok(*i)) else { continue };
                let rc: i32 = rc.parse().unwrap_or(-1);
                let ran = out[i].output.iter().any(|l| l.trim_end() == format!("test {} ... ok", cases[i].test));
                out[i].secs = at.parse::<f64>().unwrap_or(t0) - t0;
                out[i].status = match rc {
                    0 if ran => Status::Passed,
                    0 => Status::NoSuchTest,
                    124 | 137 => Status::TimedOut,
                    rc => Status::Failed(rc),
                };
            }
            _ => {
                if let Some((i, _)) = current {
                    out[i].output.push(line.trim_end_matches('\r').to_owned());
                }
            }
        }
    }
    out
}

/// The guest's uptime when its root was ready, and its kernel release.
pub fn booted(serial: &str) -> Option<(String, f64)> {
    serial.lines().filter_map(marker).find_map(|m| match m.as_slice() {
        ["booted", release, at, ..] => Some((release.to_string(), at.parse().ok()?)),
        _ => None,
    })
}

/// Why the guest stopped early, when it says.
pub fn fatal(serial: &str) -> Option<String> {
    serial.lines().filter_map(marker).find(|m| m.first() == Some(&"fatal")).map(|m| m[1..].join(" "))
}

/// `leaktrace check`'s exit code and output, when it ran.
pub fn check(serial: &str) -> Option<(i32, Vec<String>)> {
    let mut lines = serial.lines().skip_while(|l| marker(l).as_deref() != Some(&["check"][..])).skip(1);
    let mut out = Vec::new();
    for line in lines.by_ref() {
        if let Some(["checked", rc, ..]) = marker(line).as_deref() {
            return Some((rc.parse().unwrap_or(-1), out));
        }
        out.push(line.trim_end_matches('\r').to_owned());
    }
    None
}

/// Whether the suite ran to its end.
pub fn done(serial: &str) -> bool {
    serial.lines().filter_map(marker).any(|m| m.first() == Some(&"done"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_from_the_console_between_markers() {
        let cases = select(Some("kernel_fixture"));
        assert_eq!(cases.len(), 2);
        let serial = "noise\r\n@@matrix booted 6.1.0 3.5\n@@matrix start 0 10.00\nrunning 1 test\n\
                      test leaky_builds_match_the_manifest_exactly ... FAILED\n[ 12.3] kernel line\n@@matrix end 0 101 40.50\n\
                      @@matrix start 1 40.50\nrunning 0 tests\n@@matrix end 1 0 41.00\n";
        let o = parse(&cases, serial);
        assert_eq!((&o[0].status, o[0].secs), (&Status::Failed(101), 30.5));
        assert!(o[0].output.iter().any(|l| l.contains("FAILED")));
        assert_eq!(o[1].status, Status::NoSuchTest, "exit 0 with no test of that name is no pass");
        assert_eq!(booted(serial), Some(("6.1.0".to_owned(), 3.5)));
        assert_eq!(check(serial), None);
        assert_eq!(check("@@matrix check\r\nkernel: Linux 6.1\n@@matrix checked 0\n"), Some((0, vec!["kernel: Linux 6.1".to_owned()])));
        assert!(!done(serial));
        let cut = parse(&cases, "@@matrix start 0 1.0\ntest leaky_builds_match_the_manifest_exactly ... ok\n");
        assert_eq!((&cut[0].status, &cut[1].status), (&Status::Unfinished, &Status::NotRun), "no end marker: the guest died in it");
    }

    #[test]
    fn every_item_has_a_test_and_a_filter_narrows() {
        assert!(SMOKE.iter().all(|c| !c.tests.is_empty()));
        assert_eq!(select(Some("--sample")).len(), 1);
        assert_eq!(select(None).len(), SMOKE.iter().map(|c| c.tests.len()).sum::<usize>());
    }
}
