//! Writing the report and deciding the exit code.

use std::io::Write;

use anyhow::Context;
use tracer_common::manifest::Expectation;

use super::destination::Destination;
use super::{Format, Options};
use crate::report::{self, expect, flamegraph, folded, pprof, text, Report, Thresholds};

/// Writes the report to --output (opened before tracing; on stdout when that
/// write fails) or to stdout; a flame graph's handles graph to `handles`.
pub fn emit(report: &Report, opts: &Options, output: Option<Destination>, handles: Option<Destination>) -> anyhow::Result<()> {
    let body = match opts.format {
        Format::Text => text::render(report),
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Folded => folded::render(report),
        Format::Pprof | Format::Flamegraph => return write_files(report, opts, output, handles),
    };
    match output {
        Some(dest) => {
            dest.deliver(body.as_bytes());
        }
        None => to_stdout(body.as_bytes())?,
    }
    Ok(())
}

/// The report on stdout. A reader gone (`| head`) is not an error worth a
/// word: the command's own status says how it went.
pub fn to_stdout(body: &[u8]) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(body) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the report to stdout"),
    }
}

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
    let code = report::verdict(
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
        return report::command_status(report);
    }
    eprintln!("leaktrace: verdict: {code:?} (exit {})", code as i32);
    code as i32
}

/// The binary and SVG formats, to `--output` (which they require); the
/// handles flame graph beside it (opened before tracing, the same way).
fn write_files(report: &Report, opts: &Options, output: Option<Destination>, handles: Option<Destination>) -> anyhow::Result<()> {
    let dest = output.context("this --format needs --output FILE")?;
    if opts.format == Format::Pprof {
        dest.deliver(&pprof::encode(report)?);
        return Ok(());
    }
    let graphs = flamegraph::render(report)?;
    dest.deliver(&graphs.bytes);
    if let (Some(body), Some(beside)) = (graphs.handles, handles) {
        let shown = beside.path().display().to_string();
        if beside.deliver(&body) {
            eprintln!("leaktrace: handles flame graph: {shown}");
        }
    }
    Ok(())
}
