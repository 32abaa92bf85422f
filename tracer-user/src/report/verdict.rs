//! Exit codes. Documented in the README ("Exit codes"); keep them in step.

use super::model::Report;

/// The process exit code of a `--ci` run, and of errors in any run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Nothing leaked above the thresholds (and `--expect` matched, if given).
    Clean = 0,
    /// Leaks above `--max-leaked-bytes` / `--max-leaked-handles`.
    LeaksFound = 1,
    /// leaktrace could not do its job: bad arguments, not permitted, kernel
    /// lacks a feature, target not found, target exited at once...
    TracerError = 2,
    /// Events were lost: the counts cannot be trusted.
    Incomplete = 3,
    /// `--expect`: a site is missing, unexpected, or has other counts.
    ExpectationMismatch = 4,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub max_leaked_bytes: u64,
    pub max_leaked_handles: u64,
}

/// The verdict of a `--ci` run. Lost events come first: a report that missed
/// frees cannot tell leaks from noise.
pub fn verdict(report: &Report, limits: Thresholds, expectation_failed: Option<bool>) -> ExitCode {
    if !report.complete {
        return ExitCode::Incomplete;
    }
    if let Some(failed) = expectation_failed {
        return if failed { ExitCode::ExpectationMismatch } else { ExitCode::Clean };
    }
    if report.leaked_bytes() > limits.max_leaked_bytes || report.leaked_handles() > limits.max_leaked_handles {
        return ExitCode::LeaksFound;
    }
    ExitCode::Clean
}
