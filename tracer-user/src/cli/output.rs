//! Writing the report and deciding the exit code.

use std::io::Write;

use anyhow::Context;
use tracer_common::manifest::Expectation;

use super::{Format, Options};
use crate::report::{self, expect, flamegraph, folded, pprof, text, Report, Thresholds};

pub fn emit(report: &Report, opts: &Options) -> anyhow::Result<()> {
    let body = match opts.format {
        Format::Text => text::render(report),
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Folded => folded::render(report),
        Format::Pprof | Format::Flamegraph => return write_files(report, opts),
    };
    match &opts.output {
        Some(path) => std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))?,
        // A reader gone (`| head`) is not an error worth a word: the command's
        // own status says how it went.
        None => match std::io::stdout().lock().write_all(body.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.context("writing the report to stdout")?,
        },
    }
    Ok(())
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

/// The binary and SVG formats, to `--output` (which they require).
fn write_files(report: &Report, opts: &Options) -> anyhow::Result<()> {
    let path = opts.output.as_deref().context("this --format needs --output FILE")?;
    let written = match opts.format {
        Format::Pprof => std::fs::write(path, pprof::encode(report)?).map(|()| vec![path.to_owned()]),
        _ => flamegraph::write(report, path),
    };
    for p in written.with_context(|| format!("writing {}", path.display()))?.iter().skip(1) {
        eprintln!("leaktrace: handles flame graph: {}", p.display());
    }
    Ok(())
}
