//! Verdict and `--expect` over hand-built reports.

use tracer_common::manifest::{Expectation, ExpectedLeak};

use super::expect::{self, compare, Mismatch};
use super::{command_status, verdict, ExitCode, Thresholds};
use crate::outputs::text;
use crate::report::fixtures::{leaky, report};
use crate::report::model::{ExitStatus, Report, Totals};

fn expected(kind: &str, function: &str, file: &str, line: u32, count: u64, bytes: u64) -> ExpectedLeak {
    ExpectedLeak { kind: kind.into(), function: function.into(), file: file.into(), line, count, bytes }
}

fn all_kinds(leaks: &[ExpectedLeak]) -> Expectation {
    Expectation { leaks: leaks.to_vec(), kinds: Vec::new() }
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
    use crate::report::model::{Amount, Reachability};
    use crate::report::LeakKinds;
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
