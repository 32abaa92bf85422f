//! The `leaktrace` command: arguments, inputs checked before tracing, the
//! trace loop, then the report written in its format (`outputs/`) and the
//! exit code (`judge.rs`, from `verdict/`).

mod args;
mod check;
pub mod docs;
mod inputs;
mod judge;
mod node;
mod observers;
mod signals;
mod trace;
mod values;

use std::time::Duration;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::Parser;

pub use args::{Cli, Command, Format, HeapProbesArg, Options};

use crate::outputs;
use crate::process::ChildSignals;
use crate::session::{Session, TargetSpec};
use crate::verdict::ExitCode;
use check::print_verifier_log;
use trace::{Limits, Scans};

/// Parses arguments, runs, and returns the process exit code. Errors are one
/// line on stderr and exit code 2.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return 0;
        }
        Err(e) => {
            eprintln!("leaktrace: error: {}", one_line(&e));
            return ExitCode::TracerError as i32;
        }
    };
    let verbose = cli.verbose;
    match execute(cli.command, verbose) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leaktrace: error: {e:#}");
            if let Some((program, log)) = check::refused(&e).filter(|_| verbose) {
                print_verifier_log(program, log);
            }
            ExitCode::TracerError as i32
        }
    }
}

/// A clap error as one line: its message and tip, without the usage and help
/// pointers clap adds on lines of their own.
fn one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "a subcommand is required: `leaktrace run [OPTIONS] -- COMMAND`, `leaktrace attach --pid PID` or `leaktrace check` (see leaktrace --help)"
            .into();
    }
    let text = e.render().to_string();
    let mut line = String::new();
    for part in text.lines().map(str::trim).take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information")) {
        if !part.is_empty() {
            let sep = if line.is_empty() {
                ""
            } else if part.starts_with("tip:") {
                "; "
            } else {
                " "
            };
            line.push_str(sep);
            line.push_str(part);
        }
    }
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

fn execute(command: Command, verbose: bool) -> anyhow::Result<i32> {
    // values::seconds bounds --duration and --kill-after, so the conversion cannot overflow.
    let secs = |s: Option<f64>| s.map(Duration::from_secs_f64);
    // The command starts with the signal state leaktrace was given, taken
    // before leaktrace's own handlers go in.
    let signals = ChildSignals::current();
    let mut node_files = None;
    let mut scans = Scans::default();
    let (spec, mut opts, limits) = match command {
        Command::Run { opts, kill_after, node_perf_map, node_jitdump, no_scan, mut command } => {
            // Arguments after the options start the command: an unknown option lands there.
            if let Some(first) = command.first().map(|c| c.to_string_lossy()).filter(|c| c.starts_with('-')) {
                bail!("unexpected argument '{first}' found (leaktrace's options go before `--`, the command after it; see leaktrace run --help)");
            }
            let names = [(node_perf_map, node::NodeNames::PerfMap), (node_jitdump, node::NodeNames::Jitdump)];
            if let Some((_, names)) = names.into_iter().find(|(asked, _)| *asked) {
                (command, node_files) = node::with_node_flags(command, names)?;
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
        Command::Check { json } => return check::run(json, verbose),
    };
    // --interval prints reports between the live view's frames: it means no live view.
    opts.no_tui |= opts.interval.is_some();
    let mut observers = observers::Observers::prepare(&opts)?;
    // Last of the checks: it may create --output's directory.
    let mut inputs = inputs::prepare(&opts)?;
    inputs.config.scan_at_exit = scans.at_exit;
    let interrupts = signals::Interrupts::install()?;
    let session = Session::start(spec, inputs.config)?;
    if session.is_run() {
        interrupts.forward_to(session.pid());
    }
    let report = trace::trace(session, &opts, &interrupts, (&limits, &scans), &mut observers)?;
    if let Some(files) = &node_files {
        files.remove(report.target.pid);
    }
    outputs::emit(opts.format.output(), &report, inputs.output, inputs.handles_output)?;
    Ok(judge::judge(&report, &opts, inputs.expected.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::ProbeError;
    use crate::session::SessionError;

    #[test]
    fn a_refused_program_is_found_behind_the_session_error() {
        let refusal = ProbeError::Refused { program: "fd_new".into(), reason: "too big".into(), log: "combined stack size".into() };
        let e = anyhow::Error::from(SessionError::Probe(refusal)).context("starting");
        assert_eq!(check::refused(&e), Some(("fd_new", "combined stack size")));
        assert_eq!(format!("{:#}", anyhow::Error::from(SessionError::Probe(ProbeError::NotPermitted))).lines().count(), 1);
        assert_eq!(check::refused(&anyhow::Error::from(SessionError::NoSuchProcess(7))), None);
    }

    #[test]
    fn the_format_list_and_the_outputs_name_the_same_formats() {
        use clap::ValueEnum;
        let listed: Vec<&str> = Format::value_variants().iter().map(|f| f.output().name()).collect();
        let outputs: Vec<&str> = outputs::FORMATS.iter().map(|f| f.name()).collect();
        assert_eq!(listed, outputs);
    }
}
