//! `--expect MANIFEST`: the report must hold exactly the manifest's leaks.

use tracer_common::manifest::{Expectation, ExpectedLeak};

use crate::report::Report;

/// One difference between the report and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Missing(ExpectedLeak),
    Unexpected { kind: String, function: String, file: String, count: u64, bytes: u64 },
    Different { expected: ExpectedLeak, count: u64, bytes: u64 },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(e) => write!(f, "missing: {} at {} ({}:{}) x{} / {} bytes", e.kind, e.function, e.file, e.line, e.count, e.bytes),
            Self::Unexpected { kind, function, file, count, bytes } => {
                write!(f, "unexpected: {kind} at {function} ({file}) x{count} / {bytes} bytes")
            }
            Self::Different { expected: e, count, bytes } => {
                write!(
                    f,
                    "different: {} at {} ({}:{}): expected x{} / {} bytes, found x{count} / {bytes} bytes",
                    e.kind, e.function, e.file, e.line, e.count, e.bytes
                )
            }
        }
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Compares leaking sites by kind, function and file basename (and line when
/// the report has one). Counts and bytes must be equal. Sites of kinds the
/// manifest does not speak for are not compared.
pub fn compare(report: &Report, expectation: &Expectation) -> Vec<Mismatch> {
    let expected = &expectation.leaks;
    let mut out = Vec::new();
    let mut used = vec![false; report.sites.len()];
    for e in expected {
        let found = report.sites.iter().enumerate().find(|(i, s)| {
            !used[*i]
                && s.count > 0
                && s.kind.name() == e.kind
                && s.site.function.as_deref() == Some(e.function.as_str())
                && s.site.file.as_deref().map(basename) == Some(basename(&e.file))
                && s.site.line.is_none_or(|l| l == e.line)
        });
        match found {
            Some((i, s)) => {
                used[i] = true;
                if s.count != e.count || s.bytes != e.bytes {
                    out.push(Mismatch::Different { expected: e.clone(), count: s.count, bytes: s.bytes });
                }
            }
            None => out.push(Mismatch::Missing(e.clone())),
        }
    }
    for (s, _) in report.sites.iter().zip(&used).filter(|(s, u)| !**u && s.count > 0 && expectation.covers(s.kind.name())) {
        out.push(Mismatch::Unexpected {
            kind: s.kind.name().to_owned(),
            function: s.site.label.clone(),
            file: s.site.file.as_deref().map(basename).unwrap_or("?").to_owned(),
            count: s.count,
            bytes: s.bytes,
        });
    }
    out
}

/// What `--focus` kept out of the sites that the manifest speaks for: not
/// compared, but where a missing count may have gone (a stack that never
/// reached the focused code). `None` when there is nothing of the kind.
pub fn outside_focus(report: &Report, expectation: &Expectation) -> Option<String> {
    let outside = report.outside_focus.as_ref()?;
    let mut parts: Vec<String> =
        outside.handles.iter().filter(|(k, n)| **n > 0 && expectation.covers(k)).map(|(k, n)| format!("{k} x{n}")).collect();
    if outside.heap_allocations > 0 && expectation.covers("heap") {
        parts.push(format!("heap x{} / {} bytes", outside.heap_allocations, outside.heap_bytes));
    }
    (!parts.is_empty()).then(|| format!("outside --focus, not compared: {}", parts.join(", ")))
}
