//! The exit code: the verdict (`verdict/`) with the CLI's thresholds,
//! `--expect` and `--max-growth`, or without `--ci` the command's own status.

use tracer_common::manifest::Expectation;

use super::Options;
use crate::report::Report;
use crate::verdict::{self, expect, Thresholds};

/// The exit code: with `--ci` the verdict, without it the command's own
/// status (128 + N for signal N; 0 for an attached process).
pub fn judge(report: &Report, opts: &Options, expected: Option<&Expectation>) -> i32 {
    let expectation_failed = expected.map(|e| {
        let diff = expect::compare(report, e);
        for m in &diff {
            eprintln!("leaktrace: --expect: {m}");
        }
        if diff.is_empty() {
            eprintln!("leaktrace: --expect: all {} expected sites match", e.leaks.len());
        } else if let Some(note) = expect::outside_focus(report, e) {
            eprintln!("leaktrace: --expect: {note}");
        }
        !diff.is_empty()
    });
    let code = verdict::verdict(
        report,
        Thresholds {
            max_leaked_bytes: opts.max_leaked_bytes,
            max_leaked_handles: opts.max_leaked_handles,
            kinds: opts.leak_kinds.unwrap_or_default(),
        },
        expectation_failed,
    );
    let code = super::observers::judge_growth(report, opts, code);
    if !opts.ci {
        return verdict::command_status(report);
    }
    eprintln!("leaktrace: verdict: {code:?} (exit {})", code as i32);
    code as i32
}
