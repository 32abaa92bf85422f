//! The `leaktrace` command: arguments, inputs checked before tracing, the
//! trace loop, output and verdict.

mod args;
mod inputs;
mod node;
mod observers;
mod output;
mod signals;
mod trace;

use std::time::Duration;

use clap::Parser;

pub use args::{Cli, Command, Format, Options};

use crate::process::ChildSignals;
use crate::report::ExitCode;
use crate::session::{Session, TargetSpec};
use trace::{Limits, Scans};

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
        Ok(code) => code,
        Err(e) => {
            eprintln!("leaktrace: error: {e:#}");
            ExitCode::TracerError as i32
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<i32> {
    let secs = |s: Option<f64>| s.map(Duration::from_secs_f64);
    // The command starts with the signal state leaktrace was given, taken
    // before leaktrace's own handlers go in.
    let signals = ChildSignals::current();
    let mut perf_map_files = None;
    let mut scans = Scans::default();
    let (spec, opts, limits) = match cli.command {
        Command::Run { opts, kill_after, node_perf_map, no_scan, mut command } => {
            if node_perf_map {
                (command, perf_map_files) = node::with_perf_map(command)?;
            }
            scans.at_exit = !no_scan;
            (TargetSpec::Run { argv: command, signals }, opts, Limits { duration: None, kill_after: secs(kill_after) })
        }
        Command::Attach { pid, duration, scan_at_end, scan_every, opts } => {
            // Classes decide the gate only after a scan.
            scans.at_end = scan_at_end || opts.ci;
            scans.every = secs(scan_every);
            (TargetSpec::Attach { pid }, opts, Limits { duration: secs(duration), kill_after: None })
        }
    };
    let mut inputs = inputs::prepare(&opts)?;
    inputs.config.scan_at_exit = scans.at_exit;
    let mut observers = observers::Observers::prepare(&opts)?;
    let interrupts = signals::Interrupts::install()?;
    let session = Session::start(spec, inputs.config)?;
    if session.is_run() {
        interrupts.forward_to(session.pid());
    }
    let report = trace::trace(session, &opts, &interrupts, (&limits, &scans), &mut observers)?;
    if let Some(files) = &perf_map_files {
        files.remove(report.target.pid);
    }
    output::emit(&report, &opts)?;
    Ok(output::judge(&report, &opts, inputs.expected.as_ref()))
}
