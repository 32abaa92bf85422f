//! Writing the report and deciding the exit code.

use tracer_common::manifest::ExpectedLeak;

use super::destination::Destination;
use super::{Format, Options};
use crate::report::{self, expect, text, ExitCode, Report, Thresholds};

/// Writes the report to --output (opened before tracing; on stdout when that
/// write fails) or to stdout.
pub fn emit(report: &Report, opts: &Options, output: Option<Destination>) -> anyhow::Result<()> {
    let body = match opts.format {
        Format::Text => text::render(report),
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
    };
    match output {
        Some(dest) => dest.deliver(&body),
        None => print!("{body}"),
    }
    Ok(())
}

pub fn judge(report: &Report, opts: &Options, expected: Option<&[ExpectedLeak]>) -> ExitCode {
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
        return ExitCode::Clean;
    }
    eprintln!("leaktrace: verdict: {code:?} (exit {})", code as i32);
    code
}
