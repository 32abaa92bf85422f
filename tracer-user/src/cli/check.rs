//! `leaktrace check`: the kernel's features, what leaktrace uses of them,
//! and the verdict, as text or one JSON object.

use crate::outputs::to_stdout;
use crate::probes::{self, CheckReport, ProbeError};
use crate::session::SessionError;
use crate::verdict::ExitCode;

/// The program the kernel refused, and its verifier log, behind an error.
pub(super) fn refused(e: &anyhow::Error) -> Option<(&str, &str)> {
    let probe = e.chain().find_map(|c| {
        c.downcast_ref::<ProbeError>().or(match c.downcast_ref::<SessionError>() {
            Some(SessionError::Probe(p)) => Some(p),
            _ => None,
        })
    });
    probe?.verifier_log()
}

/// `--verbose`: the verifier's whole log of a refused program, after the one-line reason.
pub fn print_verifier_log(program: &str, log: &str) {
    eprintln!("leaktrace: the kernel verifier's log of {program}:");
    eprintln!("{}", log.trim_end());
}

/// Prints the report; exit 0 when leaktrace can trace here, else the
/// reason on stderr (the verifier's log too with `--verbose`) and exit 2.
pub fn run(json: bool, verbose: bool) -> anyhow::Result<i32> {
    let report = probes::check();
    let body = if json { serde_json::to_string_pretty(&report)? + "\n" } else { render(&report) };
    to_stdout(body.as_bytes())?;
    if report.can_trace {
        return Ok(ExitCode::Clean as i32);
    }
    eprintln!("leaktrace: error: {}", report.reason.as_deref().unwrap_or("leaktrace cannot trace here"));
    if let Some((program, log)) = report.error.as_ref().and_then(refused).filter(|_| verbose) {
        print_verifier_log(program, log);
    }
    Ok(ExitCode::TracerError as i32)
}

/// The report as text: a line per feature, a line per part, the verdict.
pub fn render(r: &CheckReport) -> String {
    let mut out = format!("kernel: Linux {} ({})\n\nkernel features:\n", r.kernel, r.machine);
    let width = r.features.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &r.features {
        let (word, note) = match f.available {
            Some(true) => ("yes", f.detail.clone()),
            Some(false) if f.detail.is_empty() => ("no", format!("(Linux {})", f.since)),
            Some(false) => ("no", format!("(Linux {}): {}", f.since, f.detail)),
            None => ("?", format!("could not tell: {}", f.detail)),
        };
        out.push_str(format!("  {:<width$}  {word:<3}  {note}", f.name).trim_end());
        out.push('\n');
    }
    if r.features.is_empty() {
        out.push_str("  (not probed)\n");
    }
    if !r.uses.is_empty() {
        out.push_str("\nleaktrace uses:\n");
        let width = r.uses.iter().map(|u| u.part.len()).max().unwrap_or(0);
        for u in &r.uses {
            out.push_str(&format!("  {:<width$}  {}\n", u.part, u.how));
        }
    }
    for note in &r.notes {
        out.push_str(&format!("\nnote: {note}\n"));
    }
    out.push_str(&match &r.reason {
        None if r.refused.is_empty() => "\nleaktrace can trace here: every program it uses loads.\n".to_owned(),
        None => format!("\nleaktrace can trace here, without: {} (the kernel refused their program).\n", r.refused.join(", ")),
        Some(_) => "\nleaktrace cannot trace here (the reason is on stderr).\n".to_owned(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::features::Feature;
    use crate::probes::Use;

    #[test]
    fn a_missing_feature_says_its_release_and_the_fallback_is_named() {
        let feature = |name, since, available| Feature { key: "k", name, since, available, detail: String::new() };
        let report = CheckReport {
            kernel: "6.1.0-37-cloud-amd64".into(),
            machine: "x86_64",
            features: vec![feature("uprobe_multi links", "6.6", Some(false)), feature("bpf_loop", "5.17", Some(true))],
            uses: vec![Use { part: "heap", how: "perf-event uprobes, one per probe point".into() }],
            notes: vec!["the kernel refused uprobe session (no such links on this kernel)".into()],
            can_trace: true,
            refused: Vec::new(),
            reason: None,
            error: None,
        };
        let text = render(&report);
        assert!(text.starts_with("kernel: Linux 6.1.0-37-cloud-amd64 (x86_64)\n"), "{text}");
        assert!(text.contains("  uprobe_multi links  no   (Linux 6.6)\n"), "{text}");
        assert!(text.contains("  bpf_loop            yes\n"), "{text}");
        assert!(text.contains("  heap  perf-event uprobes"), "{text}");
        assert!(text.contains("note: the kernel refused uprobe session"), "{text}");
        assert!(text.ends_with("leaktrace can trace here: every program it uses loads.\n"), "{text}");
        let partial = CheckReport { refused: vec!["event loops"], ..report };
        assert!(render(&partial).ends_with("leaktrace can trace here, without: event loops (the kernel refused their program).\n"));
    }
}
