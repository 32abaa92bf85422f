//! Verdict, `--expect` and text rendering over hand-built reports.

use tracer_common::manifest::{Expectation, ExpectedLeak};
use tracer_common::FdKind;

use super::expect::{self, compare, Mismatch};
use super::model::{ExitStatus, Location, Report, Site, StackFrame, Target, TargetState, Totals};
use super::{command_status, text, verdict, ExitCode, Thresholds};
use crate::aggregate::ResourceKind;

fn site(kind: ResourceKind, function: &str, file: &str, line: u32, count: u64, bytes: u64) -> Site {
    let module = "/bin/net-driver";
    let location = Location {
        function: Some(function.into()),
        file: Some(format!("/src/fixtures/net/{file}")),
        line: Some(line),
        column: None,
        line_is_function_start: false,
        module: module.into(),
        label: function.into(),
    };
    let frame = StackFrame {
        function: Some(function.into()),
        file: Some(file.into()),
        line: Some(line),
        column: None,
        line_is_function_start: false,
        module: module.into(),
        address: 0x1234,
        module_offset: 0x1234,
        inlined: false,
        inferred: false,
    };
    Site {
        count,
        bytes,
        allocations: count + 1,
        releases: 1,
        oldest_age_secs: 1.5,
        stacks: 1,
        stack: vec![frame],
        ..Site::empty(kind, location)
    }
}

fn report(sites: Vec<Site>, lost: u64) -> Report {
    Report::of_sites(
        Target {
            pid: 42,
            command: "net-driver".into(),
            state: TargetState::Exited,
            exit: Some(ExitStatus { code: Some(0), signal: None }),
            duration_secs: 1.0,
            allocator: None,
            heap_probes: None,
        },
        sites,
        lost,
    )
}

fn expected(kind: &str, function: &str, file: &str, line: u32, count: u64, bytes: u64) -> ExpectedLeak {
    ExpectedLeak { kind: kind.into(), function: function.into(), file: file.into(), line, count, bytes }
}

fn all_kinds(leaks: &[ExpectedLeak]) -> Expectation {
    Expectation { leaks: leaks.to_vec(), kinds: Vec::new() }
}

fn leaky() -> Report {
    report(
        vec![
            site(ResourceKind::Heap, "js_socket_connect", "net_socket.c", 57, 3, 30),
            site(ResourceKind::Fd(FdKind::Socket), "js_socket_connect", "net_socket.c", 52, 3, 0),
        ],
        0,
    )
}

#[test]
fn a_heap_that_was_not_traced_is_never_clean() {
    let mut r = report(Vec::new(), 0);
    assert_eq!(verdict(&r, Thresholds::default(), None), ExitCode::Clean);
    r.untraced.push("heap of /srv/app (pid 7) not traced, descriptors only: no loaded object exports `malloc`".into());
    r.complete = false;
    assert_eq!(verdict(&r, Thresholds::default(), None), ExitCode::Incomplete);
    assert_eq!(verdict(&r, Thresholds::default(), Some(false)), ExitCode::Incomplete, "not even with --expect matched");
    let text = text::render(&r);
    assert!(text.contains("INCOMPLETE: heap of /srv/app (pid 7) not traced"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["complete"], false);
    assert_eq!(json["untraced"][0].as_str().unwrap(), r.untraced[0]);
}

#[test]
fn verdicts_follow_the_thresholds() {
    let limits = Thresholds::default();
    assert_eq!(verdict(&leaky(), limits, None), ExitCode::LeaksFound);
    assert_eq!(verdict(&report(vec![], 0), limits, None), ExitCode::Clean);
    assert_eq!(verdict(&leaky(), Thresholds { max_leaked_bytes: 30, max_leaked_handles: 3, ..limits }, None), ExitCode::Clean);
    assert_eq!(verdict(&leaky(), Thresholds { max_leaked_bytes: 30, max_leaked_handles: 2, ..limits }, None), ExitCode::LeaksFound);
}

#[test]
fn after_a_scan_the_leak_kinds_decide_which_bytes_count() {
    use super::model::{Amount, Reachability};
    use super::LeakKinds;
    let limits = Thresholds { max_leaked_handles: 3, ..Thresholds::default() };
    let mut r = leaky();
    // 30 bytes: 10 definitely lost, 20 still reachable.
    let reach =
        Reachability { definite: Amount { count: 1, bytes: 10 }, reachable: Amount { count: 2, bytes: 20 }, ..Reachability::default() };
    r.sites[0].reachability = Some(reach);
    let at = |r: &Report, max, kinds: &str| {
        verdict(r, Thresholds { max_leaked_bytes: max, kinds: LeakKinds::parse(kinds).unwrap(), ..limits }, None)
    };
    assert_eq!(verdict(&r, Thresholds { max_leaked_bytes: 10, ..limits }, None), ExitCode::Clean, "definite and indirect by default");
    assert_eq!(verdict(&r, Thresholds { max_leaked_bytes: 9, ..limits }, None), ExitCode::LeaksFound);
    assert_eq!(at(&r, 29, "all"), ExitCode::LeaksFound);
    assert_eq!(at(&r, 0, "none"), ExitCode::Clean);
    // What no scan saw counts whatever the kinds.
    r.sites[0].reachability = Some(Reachability { unscanned: Amount { count: 3, bytes: 30 }, ..Reachability::default() });
    assert_eq!(at(&r, 29, "none"), ExitCode::LeaksFound);
}

#[test]
fn lost_events_make_the_verdict_incomplete_first() {
    let mut r = leaky();
    r.complete = false;
    r.lost_events = 5;
    assert_eq!(verdict(&r, Thresholds::default(), None), ExitCode::Incomplete);
    assert_eq!(verdict(&r, Thresholds::default(), Some(false)), ExitCode::Incomplete);
}

#[test]
fn a_failed_command_comes_first_and_without_ci_is_the_exit_status() {
    let mut r = leaky();
    r.complete = false;
    r.target.exit = Some(ExitStatus { code: Some(7), signal: None });
    assert_eq!(verdict(&r, Thresholds::default(), Some(true)), ExitCode::CommandFailed);
    assert_eq!(command_status(&r), 7);
    r.target.exit = Some(ExitStatus { code: None, signal: Some(11) });
    assert_eq!(verdict(&r, Thresholds::default(), None), ExitCode::CommandFailed);
    assert_eq!(command_status(&r), 139, "128 + SIGSEGV, as a shell reports it");
    r.target.exit = None; // attached: no status of its own
    assert_eq!(command_status(&r), 0);
    assert_eq!(verdict(&r, Thresholds::default(), None), ExitCode::Incomplete);
}

#[test]
fn expectation_matches_exactly_or_names_each_difference() {
    let exact = [
        expected("heap", "js_socket_connect", "net_socket.c", 57, 3, 30),
        expected("socket", "js_socket_connect", "net_socket.c", 52, 3, 0),
    ];
    assert!(compare(&leaky(), &all_kinds(&exact)).is_empty());
    assert_eq!(verdict(&leaky(), Thresholds::default(), Some(false)), ExitCode::Clean);

    let wrong_count = [expected("heap", "js_socket_connect", "net_socket.c", 57, 4, 40), exact[1].clone()];
    assert!(matches!(compare(&leaky(), &all_kinds(&wrong_count))[..], [Mismatch::Different { count: 3, bytes: 30, .. }]));

    let missing_one = [exact[0].clone(), exact[1].clone(), expected("timerfd", "js_socket_set_timeout", "net_socket.c", 90, 2, 0)];
    let diff = compare(&leaky(), &all_kinds(&missing_one));
    assert_eq!(diff.len(), 1);
    assert!(diff[0].to_string().starts_with("missing: timerfd at js_socket_set_timeout"), "{}", diff[0]);

    let diff = compare(&leaky(), &all_kinds(&exact[..1]));
    assert!(matches!(&diff[..], [Mismatch::Unexpected { kind, count: 3, .. }] if kind == "socket"), "{diff:?}");
    assert_eq!(verdict(&leaky(), Thresholds::default(), Some(true)), ExitCode::ExpectationMismatch);
}

#[test]
fn kinds_the_manifest_does_not_speak_for_are_not_compared() {
    let sockets =
        Expectation { leaks: vec![expected("socket", "js_socket_connect", "net_socket.c", 52, 3, 0)], kinds: vec!["socket".into()] };
    assert!(compare(&leaky(), &sockets).is_empty(), "the heap site is not the manifest's to list");
    let none = Expectation { leaks: Vec::new(), kinds: vec!["socket".into()] };
    assert!(matches!(&compare(&leaky(), &none)[..], [Mismatch::Unexpected { kind, .. }] if kind == "socket"));
}

#[test]
fn what_focus_left_out_of_the_comparison_is_named_by_kind() {
    let sockets =
        Expectation { leaks: vec![expected("socket", "js_socket_connect", "net_socket.c", 52, 3, 0)], kinds: vec!["socket".into()] };
    let mut r = leaky();
    assert_eq!(expect::outside_focus(&r, &sockets), None, "no --focus");
    let mut outside = Totals { heap_bytes: 64, heap_allocations: 2, ..Totals::default() };
    r.outside_focus = Some(outside.clone());
    assert_eq!(expect::outside_focus(&r, &sockets), None, "the manifest does not speak for the heap");
    outside.handles.insert("socket".into(), 1);
    r.outside_focus = Some(outside);
    assert_eq!(expect::outside_focus(&r, &sockets).as_deref(), Some("outside --focus, not compared: socket x1"));
    assert_eq!(expect::outside_focus(&r, &all_kinds(&[])).as_deref(), Some("outside --focus, not compared: socket x1, heap x2 / 64 bytes"));
}

#[test]
fn a_site_on_another_line_is_not_the_expected_one() {
    let other_line = [
        expected("heap", "js_socket_connect", "net_socket.c", 58, 3, 30),
        expected("socket", "js_socket_connect", "net_socket.c", 52, 3, 0),
    ];
    let diff = compare(&leaky(), &all_kinds(&other_line));
    assert_eq!(diff.len(), 2, "{diff:?}");
}

#[test]
fn text_report_names_sites_lines_and_losses() {
    let mut r = leaky();
    let t = text::render(&r);
    assert!(t.contains("2 leaking call sites (30 bytes, 3 handles)"), "{t}");
    assert!(t.contains("[heap] 30 bytes in 3 allocations at js_socket_connect (net_socket.c:57)"), "{t}");
    assert!(t.contains("[socket] 3 socket handles at js_socket_connect (net_socket.c:52)"), "{t}");
    assert!(!t.contains("INCOMPLETE"));
    r.complete = false;
    r.lost_events = 7;
    assert!(text::render(&r).contains("INCOMPLETE: 7 events were lost"));
    assert!(text::render(&report(vec![], 0)).contains("no leaks found"));
}

/// The keys the README's JSON section documents: (top level, per site).
fn documented_keys() -> (Vec<String>, Vec<String>) {
    let readme = include_str!("../../../README.md");
    let block = readme.split("### JSON report").nth(1).and_then(|s| s.split("```").nth(1)).expect("the README's JSON section");
    let section = block.split_once('\n').map_or("", |(_fence, rest)| rest);
    // `name  what it is`, or `a, b  what they are`.
    let names = |line: &str| -> Vec<String> {
        let mut out = Vec::new();
        for word in line.split_whitespace() {
            out.push(word.trim_end_matches(',').trim_end_matches("[]").trim_end_matches("{}").to_owned());
            if !word.ends_with(',') {
                break;
            }
        }
        out
    };
    let top = section.lines().filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_lowercase())).flat_map(names).collect();
    let site = section
        .lines()
        .filter(|l| l.starts_with("  ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_lowercase()))
        .flat_map(names)
        .collect();
    (top, site)
}

#[test]
fn json_report_has_the_documented_fields() {
    let v = serde_json::to_value(leaky()).unwrap();
    let (top, site) = documented_keys();
    let keys = |o: &serde_json::Value| -> Vec<String> { o.as_object().unwrap().keys().cloned().collect() };
    let mut undocumented: Vec<String> = keys(&v).into_iter().filter(|k| !top.contains(k)).collect();
    undocumented.extend(keys(&v["sites"][0]).into_iter().filter(|k| !site.contains(k)).map(|k| format!("sites[].{k}")));
    assert!(undocumented.is_empty(), "in the JSON, not in the README: {undocumented:?}");
    // Only for descriptors of libuv handles (absent elsewhere).
    const OPTIONAL: [&str; 3] = ["site_from", "created_stack", "server_stack"];
    let mut missing: Vec<String> = top.iter().filter(|k| v.get(k.as_str()).is_none()).cloned().collect();
    missing.extend(
        site.iter().filter(|k| v["sites"][0].get(k.as_str()).is_none() && !OPTIONAL.contains(&k.as_str())).map(|k| format!("sites[].{k}")),
    );
    assert!(missing.is_empty(), "in the README, not in the JSON: {missing:?}");
    assert!(top.len() >= 15 && site.len() >= 15, "the README's section read: {top:?} {site:?}");
    let s = &v["sites"][0];
    assert_eq!(s["kind"], "heap");
    for key in ["function", "file", "line", "module"] {
        assert!(s["site"].get(key).is_some() && s["stack"][0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(s["stack"][0]["address"], 0x1234);
    assert_eq!(v["totals"]["handles"]["socket"], 3);
}

#[test]
fn a_deep_site_is_shown_with_its_neighbours_after_the_acquisition() {
    let mut s = site(ResourceKind::Fd(FdKind::Socket), "openChannel", "server.js", 52, 4, 0);
    let frame =
        |i: usize| StackFrame { function: Some(format!("f{i}")), file: Some("x.c".into()), line: Some(i as u32), ..s.stack[0].clone() };
    let mut stack: Vec<StackFrame> = (0..16).map(frame).collect();
    stack[10] = StackFrame { file: Some("/srv/server.js".into()), ..s.stack[0].clone() };
    s.site.file = Some("/srv/server.js".into());
    s.stack = stack;
    let t = text::render(&report(vec![s.clone()], 0));
    let lines: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("[socket]")).skip(2).map(str::trim).collect();
    assert_eq!(&lines[..4], ["f0  x.c:0", "f1  x.c:1", "... 7 frames", "f9  x.c:9"], "{t}");
    assert_eq!(lines[4], "openChannel  server.js:52");
    assert_eq!((lines[8], lines[9]), ("f14  x.c:14", "... 1 more frames"), "{t}");
    s.stack.truncate(3);
    s.stack[2] = StackFrame { file: Some("/srv/server.js".into()), ..s.stack[0].clone() };
    let t = text::render(&report(vec![s], 0));
    assert!(!t.contains("more frames") && !t.contains("... "), "a short stack is shown whole: {t}");
}

#[test]
fn descriptor_details_and_the_mechanism_are_shown() {
    let mut s = site(ResourceKind::Fd(FdKind::Memfd), "receive", "net_socket.c", 60, 2, 0);
    s.detail = vec!["memfd:shm".into()];
    s.received = true;
    let mut r = report(vec![s], 0);
    r.descriptors.syscalls = 46;
    r.descriptors.not_on_this_kernel = vec!["open_tree_attr"];
    let t = text::render(&r);
    assert!(t.contains("descriptors: per-syscall exit tracepoints on 46 system calls (not on this kernel: open_tree_attr)"), "{t}");
    assert!(
        t.contains("[memfd] 2 memfd handles at receive (net_socket.c:60)\n    memfd:shm; received from another process (SCM_RIGHTS)"),
        "{t}"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["sites"][0]["detail"], serde_json::json!(["memfd:shm"]));
    assert_eq!(v["sites"][0]["received"], true);
    assert_eq!(v["descriptors"]["syscalls"], 46);
}

#[test]
fn text_says_when_a_line_is_only_the_function_s_start() {
    let mut s = site(ResourceKind::Fd(FdKind::File), "leakyOpen", "app.js", 10, 1, 0);
    s.site.line_is_function_start = true;
    s.stack[0].line_is_function_start = true;
    let t = text::render(&report(vec![s.clone()], 0));
    assert!(t.contains("at leakyOpen (app.js:10, function start)"), "{t}");
    assert!(t.contains("leakyOpen  app.js:10 (function start)"), "{t}");
    s.site.line_is_function_start = false;
    s.stack[0].line_is_function_start = false;
    assert!(!text::render(&report(vec![s], 0)).contains("function start"));
}
