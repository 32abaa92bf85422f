//! `--format text`: the human-readable report.

use std::fmt::Write;

use super::{Output, Rendered};
use crate::report::model::{Reachability, Report, Site, StackFrame, Totals};

pub struct Text;

impl Output for Text {
    fn name(&self) -> &'static str {
        "text"
    }

    fn render(&self, report: &Report) -> anyhow::Result<Rendered> {
        Ok(render(report).into())
    }
}

/// Frames of each site's stack shown in text (the JSON has them all).
const STACK_LINES: usize = 8;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    let leaking: Vec<&Site> = r.sites.iter().filter(|s| s.count > 0).collect();
    if leaking.is_empty() {
        let _ = writeln!(out, "\nno leaks found");
    } else {
        let _ = writeln!(out, "\n{} leaking call sites ({} bytes, {} handles):", leaking.len(), r.leaked_bytes(), r.leaked_handles());
    }
    for s in leaking {
        site(&mut out, s);
    }
    let a = &r.anomalies;
    if a.unknown_frees + a.unknown_closes + a.failed_allocations > 0 {
        let _ = writeln!(
            out,
            "\nalso seen: {} frees and {} closes of things acquired before tracing; {} failed allocations",
            a.unknown_frees, a.unknown_closes, a.failed_allocations
        );
    }
    out
}

/// The target, totals, losses and warnings.
fn header(out: &mut String, r: &Report) {
    let t = &r.target;
    let _ = writeln!(
        out,
        "leaktrace: pid {} `{}` — {}{} after {:.1}s",
        t.pid,
        t.command,
        t.state,
        t.exit.map(|e| format!(" ({e})")).unwrap_or_default(),
        t.duration_secs
    );
    if let Some(a) = &t.allocator {
        let how = if t.heap_probes.as_deref() == Some("in-process") { "; recorded in-process" } else { "" };
        let _ = writeln!(out, "allocator: {a}{how}");
    }
    let _ = writeln!(out, "descriptors: {}", r.descriptors);
    let handles = |h: &std::collections::BTreeMap<String, u64>| {
        if h.is_empty() {
            "no handles".to_owned()
        } else {
            h.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
        }
    };
    let line = |t: &Totals| format!("{} bytes in {} allocations; {}", t.heap_bytes, t.heap_allocations, handles(&t.handles));
    let _ = writeln!(out, "outstanding: {}", line(&r.outstanding));
    if let Some(f) = &r.focus {
        let more = if f.matched_more > 0 { format!(" and {} more", f.matched_more) } else { String::new() };
        let matched = if f.matched.is_empty() { "nothing".to_owned() } else { format!("{}{more}", f.matched.join(", ")) };
        let _ = writeln!(out, "--focus {} = {}; matched {matched}", f.given, f.resolved.join(" or "));
    }
    if let Some(o) = &r.outside_focus {
        let _ = writeln!(out, "outside --focus (not in the sites): {}", line(o));
    }
    if r.suppressed != Totals::default() {
        let _ = writeln!(out, "suppressed (not in the sites): {}", line(&r.suppressed));
    }
    if let Some(reach) = &r.outstanding.reachability {
        summary(out, r, reach);
    }
    if let Some(n) = r.sample_every {
        let _ = writeln!(
            out,
            "sampling 1 in {n} allocator calls: heap figures are estimates (a site with k sampled blocks is off by about 1/sqrt(k))"
        );
    }
    if r.lost_events > 0 {
        let _ = writeln!(out, "INCOMPLETE: {} events were lost; counts below may be wrong", r.lost_events);
    }
    for what in &r.untraced {
        let _ = writeln!(out, "INCOMPLETE: {what}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

fn site(out: &mut String, s: &Site) {
    let what = if s.kind == crate::aggregate::ResourceKind::Heap {
        format!("{} bytes in {} allocations", s.bytes, s.count)
    } else {
        format!("{} {} handles", s.count, s.kind)
    };
    let _ = writeln!(out, "\n[{}] {} at {}", s.kind, what, s.site.place());
    if let Some(d) = s.detail_line() {
        let _ = writeln!(out, "    {d}");
    }
    let stacks = if s.stacks > 1 { format!(", from {} different stacks (the largest shown)", s.stacks) } else { String::new() };
    let _ = writeln!(out, "    {} acquired, {} released, oldest {:.1}s{stacks}", s.allocations, s.releases, s.oldest_age_secs);
    let titled = !s.created_stack.is_empty();
    if titled {
        let _ = writeln!(out, "    opened at:");
    }
    stack(out, &s.stack, s, titled);
    for (title, frames) in [("created at", &s.created_stack), ("its server created at", &s.server_stack)] {
        if !frames.is_empty() {
            let _ = writeln!(out, "    {title}:");
            stack(out, frames, s, true);
        }
    }
    if let Some(why) = &s.stack_end {
        let _ = writeln!(out, "    (stack ends early: {why})");
    }
    if let Some(c) = s.reachability.as_ref().map(Reachability::describe).filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "    {c}");
    }
    if let Some(g) = &s.growth {
        let _ = writeln!(out, "    growth: {}", g.describe(s.kind));
    }
}

/// A stack's first frames (indented under a title when the site has several).
fn stack(out: &mut String, frames: &[StackFrame], s: &Site, titled: bool) {
    let indent = if titled { "  " } else { "" };
    // A site deep in its stack (JavaScript under a runtime's frames) is shown
    // from the frame it called on, after the first two (the acquisition).
    let at = frames.iter().position(|f| f.function == s.site.function && f.file == s.site.file && f.line == s.site.line);
    let (head, tail_from) = match at {
        Some(i) if i + 2 > STACK_LINES => (2, i - 1),
        _ => (STACK_LINES, STACK_LINES),
    };
    for f in frames.iter().take(head) {
        let _ = writeln!(out, "    {indent}{}", frame_line(f));
    }
    let tail = STACK_LINES - head;
    if tail > 0 {
        let _ = writeln!(out, "    {indent}... {} frames", tail_from - head);
        for f in frames.iter().skip(tail_from).take(tail) {
            let _ = writeln!(out, "    {indent}{}", frame_line(f));
        }
    }
    let end = if tail > 0 { tail_from + tail } else { head };
    if frames.len() > end {
        let _ = writeln!(out, "    {indent}... {} more frames", frames.len() - end);
    }
}

/// valgrind's LEAK SUMMARY, over everything outstanding.
fn summary(out: &mut String, r: &Report, reach: &Reachability) {
    let scans: Vec<String> = r
        .scans
        .iter()
        .map(|s| {
            let stopped = s.stopped_ms.map(|ms| format!(", stopped {ms:.1} ms")).unwrap_or_default();
            let before = if s.heap_known { "" } else { ", memory from before tracing taken as roots" };
            format!("pid {} in {:.1} ms{stopped}{before}", s.pid, s.scan_ms)
        })
        .collect();
    let _ = writeln!(out, "reachability (scan of {}):", scans.join(", "));
    for (name, a) in [
        ("definitely lost", reach.definite),
        ("indirectly lost", reach.indirect),
        ("  possibly lost", reach.possible),
        ("still reachable", reach.reachable),
    ] {
        let _ = writeln!(out, "    {name}: {} bytes in {} blocks", a.bytes, a.count);
    }
    if reach.unscanned.count > 0 {
        let _ = writeln!(out, "    not scanned (acquired since): {} bytes in {} blocks", reach.unscanned.bytes, reach.unscanned.count);
    }
}

fn short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn frame_line(f: &StackFrame) -> String {
    // Outside every symbol: where in which file, never a neighbour's name.
    let name = f.function.clone().unwrap_or_else(|| format!("{}+{:#x}", short(&f.module), f.module_offset));
    let inl = match (f.inlined, f.inferred) {
        (_, true) => " [tail call]",
        (true, false) => " [inlined]",
        _ => "",
    };
    match (&f.file, f.line) {
        (Some(file), Some(line)) => {
            let start = if f.line_is_function_start { " (function start)" } else { "" };
            format!("{name}{inl}  {}:{line}{start}", short(file))
        }
        _ => format!("{name}{inl}  ({}) {:#x}", short(&f.module), f.address),
    }
}
