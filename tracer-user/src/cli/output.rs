//! Writing the report and deciding the exit code.

use std::io::Write;

use anyhow::Context;
use tracer_common::manifest::ExpectedLeak;

use super::destination::Destination;
use super::{Format, Options};
use crate::report::{self, expect, text, Report, Thresholds};

/// Writes the report to --output (opened before tracing; on stdout when that
/// write fails) or to stdout.
pub fn emit(report: &Report, opts: &Options, output: Option<Destination>) -> anyhow::Result<()> {
    let body = match opts.format {
        Format::Text => text::render(report),
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
    };
    match output {
        Some(dest) => dest.deliver(&body),
        None => to_stdout(&body)?,
    }
    Ok(())
}

/// The report on stdout. A reader gone (`| head`) is not an error worth a
/// word: the command's own status says how it went.
pub fn to_stdout(body: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(body.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the report to stdout"),
    }
}

/// The exit code: with `--ci` the verdict, without it the command's own
/// status (128 + N for signal N; 0 for an attached process).
pub fn judge(report: &Report, opts: &Options, expected: Option<&[ExpectedLeak]>) -> i32 {
    let expectation_failed = expected.map(|e| {
        let diff = expect::compare(report, e);
        for m in &diff {
            eprintln!("leaktrace: --expect: {m}");
        }
        if diff.is_empty() {
            eprintln!("leaktrace: --expect: all {} expected sites match", e.len());
        }
        !diff.is_empty()
    });
    let code = report::verdict(
        report,
        Thresholds { max_leaked_bytes: opts.max_leaked_bytes, max_leaked_handles: opts.max_leaked_handles },
        expectation_failed,
    );
    if !opts.ci {
        return report::command_status(report);
    }
    eprintln!("leaktrace: verdict: {code:?} (exit {})", code as i32);
    code as i32
}
