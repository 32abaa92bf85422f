//! The text and JSON formats over hand-built reports.

use tracer_common::FdKind;

use super::text;
use crate::aggregate::ResourceKind;
use crate::report::fixtures::{leaky, report, site};
use crate::report::model::StackFrame;

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
