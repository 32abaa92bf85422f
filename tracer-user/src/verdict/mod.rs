//! The verdict: a judgement on the report, not a format. Exit codes
//! (documented in the README, "Exit codes"; keep them in step) and
//! `--expect`'s comparison with a manifest (`expect.rs`).

pub mod expect;

use crate::report::{LeakKinds, Report};

/// The process exit code of a `--ci` run, and of errors in any run. When
/// several apply, the first of: tracer error, command failed, incomplete,
/// `--expect` mismatch, leaks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Nothing leaked above the thresholds (and `--expect` matched, if given).
    Clean = 0,
    /// Leaks above `--max-leaked-bytes` / `--max-leaked-handles`.
    LeaksFound = 1,
    /// leaktrace could not do its job: bad arguments, not permitted, kernel
    /// lacks a feature, target not found, target exited at once...
    TracerError = 2,
    /// Events were lost, or a part of a process (its heap) was not traced:
    /// the counts cannot be trusted, and nothing can be called clean.
    Incomplete = 3,
    /// `--expect`: a site is missing, unexpected, or has other counts.
    ExpectationMismatch = 4,
    /// `run`: the command itself failed (a non-zero exit code, or killed by
    /// a signal): a crashing test fails CI whatever it leaked.
    CommandFailed = 5,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub max_leaked_bytes: u64,
    pub max_leaked_handles: u64,
    /// The heap blocks that count (`--leak-kinds`).
    pub kinds: LeakKinds,
}

/// The verdict of a `--ci` run. A failed command comes first, then lost
/// events: a report that missed frees cannot tell leaks from noise.
pub fn verdict(report: &Report, limits: Thresholds, expectation_failed: Option<bool>) -> ExitCode {
    if report.target.exit.is_some_and(|e| !e.success()) {
        return ExitCode::CommandFailed;
    }
    if !report.complete {
        return ExitCode::Incomplete;
    }
    if let Some(failed) = expectation_failed {
        return if failed { ExitCode::ExpectationMismatch } else { ExitCode::Clean };
    }
    if report.gated_bytes(limits.kinds) > limits.max_leaked_bytes || report.leaked_handles() > limits.max_leaked_handles {
        return ExitCode::LeaksFound;
    }
    ExitCode::Clean
}

/// leaktrace's exit code without `--ci`: the command's own status, as a
/// shell reports it (128 + N for signal N), like valgrind and strace; 0 for
/// an attached process.
pub fn command_status(report: &Report) -> i32 {
    report.target.exit.map_or(0, |e| e.shell_status())
}

#[cfg(test)]
mod tests;
