//! The `leaktrace` command: arguments, inputs checked before tracing, the
//! trace loop, output and verdict.

mod args;
mod inputs;
mod node;
mod output;
mod signals;
mod trace;

use std::time::Duration;

use clap::Parser;

pub use args::{Cli, Command, Format, Options};

use crate::report::ExitCode;
use crate::session::{Session, TargetSpec};

/// Parses arguments, runs, and returns the process exit code. Errors are one
/// line on stderr and exit code 2.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::TracerError as i32 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match execute(cli) {
        Ok(code) => code as i32,
        Err(e) => {
            eprintln!("leaktrace: error: {e:#}");
            ExitCode::TracerError as i32
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut perf_map_files = None;
    let (spec, opts, duration) = match cli.command {
        Command::Run { opts, node_perf_map, mut command } => {
            if node_perf_map {
                (command, perf_map_files) = node::with_perf_map(command)?;
            }
            (TargetSpec::Run { argv: command }, opts, None)
        }
        Command::Attach { pid, duration, opts } => (TargetSpec::Attach { pid }, opts, duration.map(Duration::from_secs_f64)),
    };
    let inputs = inputs::prepare(&opts)?;
    let is_run = matches!(spec, TargetSpec::Run { .. });
    let session = Session::start(spec, inputs.config)?;
    let report = trace::trace(session, &opts, is_run, duration)?;
    if let Some(files) = &perf_map_files {
        files.remove(report.target.pid);
    }
    output::emit(&report, &opts)?;
    Ok(output::judge(&report, &opts, inputs.expected.as_ref()))
}
