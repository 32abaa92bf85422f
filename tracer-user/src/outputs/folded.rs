//! Folded stacks (`frame;frame;frame value`, outermost first), the input of
//! flamegraph.pl, inferno and speedscope. Each line starts with the kind
//! (`heap`, `socket`, ...); its value is outstanding bytes for heap stacks
//! and outstanding handles for the others, so each kind's lines add up to
//! the report's total of that kind.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::profile::{self, frame_name};
use super::{Output, Rendered};
use crate::aggregate::ResourceKind;
use crate::report::Report;

pub struct Folded;

impl Output for Folded {
    fn name(&self) -> &'static str {
        "folded"
    }

    fn needs_stacks(&self) -> bool {
        true
    }

    fn render(&self, report: &Report) -> anyhow::Result<Rendered> {
        Ok(render(report).into())
    }
}

/// Every stack that holds something, one line each (identical lines summed).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for (stack, value) in stacks(report, |_| true) {
        let _ = writeln!(out, "{stack} {value}");
    }
    out
}

/// Folded stacks of the kinds `keep` accepts, each starting with its kind, and their values.
pub fn stacks(report: &Report, keep: impl Fn(ResourceKind) -> bool) -> BTreeMap<String, u64> {
    let profile = profile::of(report);
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    for s in profile.stacks.iter().filter(|s| keep(s.kind) && s.weight() > 0) {
        let mut line = s.kind.name().to_owned();
        for f in s.frames.iter().rev() {
            line.push(';');
            line.extend(frame_name(f).chars().map(|c| if c == ';' || c.is_control() { '_' } else { c }));
            if f.inferred {
                line.push_str(" [tail call]");
            }
        }
        *folded.entry(line).or_insert(0) += s.weight();
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Site, StackFrame, Target};
    use tracer_common::FdKind;

    fn frame(function: &str) -> StackFrame {
        StackFrame {
            function: Some(function.into()),
            module: "/bin/app".into(),
            address: 0x1000,
            module_offset: 0x10,
            ..StackFrame::default()
        }
    }

    fn site(kind: ResourceKind, count: u64, bytes: u64, stack: &[&str]) -> Site {
        Site { stack: stack.iter().map(|f| frame(f)).collect(), ..Site::named(kind, stack[0], count, bytes) }
    }

    #[test]
    fn lines_are_outermost_first_and_add_up_to_the_totals() {
        let r = Report::of_sites(
            Target::default(),
            vec![
                site(ResourceKind::Heap, 3, 300, &["malloc", "make;thing", "main"]),
                site(ResourceKind::Fd(FdKind::Socket), 2, 0, &["socket", "connect_to", "main"]),
                site(ResourceKind::Fd(FdKind::Timerfd), 0, 0, &["timerfd_create", "main"]),
            ],
            0,
        );
        let text = render(&r);
        assert_eq!(text, "heap;main;make_thing;malloc 300\nsocket;main;connect_to;socket 2\n");
        let heap: u64 = stacks(&r, |k| k == ResourceKind::Heap).values().sum();
        assert_eq!(heap, r.totals.heap_bytes);
    }
}
