//! The `leaktrace` command: argument handling, the session loop, output and verdict.

mod args;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tracer_common::manifest::Manifest;

pub use args::{Cli, Command, Format, Options};

use crate::probes::LoadOptions;
use crate::report::{self, expect, text, Attribution, ExitCode, Report, Suppressions, Thresholds};
use crate::session::{Session, SessionConfig, TargetSpec};
use crate::tui::{self, TuiConfig};

const TICK: Duration = Duration::from_millis(50);

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
    let (spec, opts, duration) = match cli.command {
        Command::Run { opts, command } => (TargetSpec::Run { argv: command }, opts, None),
        Command::Attach { pid, duration, opts } => (TargetSpec::Attach { pid }, opts, duration.map(Duration::from_secs_f64)),
    };
    // Read every input file before tracing starts: a typo fails at once.
    let expected = match &opts.expect {
        Some(path) => {
            let manifest = Manifest::load(path).with_context(|| format!("--expect {}", path.display()))?;
            let names: Vec<&str> = opts.expect_scenarios.iter().map(String::as_str).collect();
            Some(manifest.expected(&names).with_context(|| format!("--expect {}", path.display()))?)
        }
        None => None,
    };
    let mut suppressions = if opts.no_default_suppressions { Suppressions::default() } else { Suppressions::builtin() };
    if let Some(path) = &opts.suppress {
        suppressions.extend(Suppressions::load(path)?);
    }
    let config = SessionConfig {
        load: LoadOptions {
            ring_bytes: opts.ring_size << 20,
            stack_frames: opts.stack_depth,
            follow_forks: opts.follow_forks,
            sample_every: opts.sample.unwrap_or(0),
        },
        allocator: opts.allocator.clone(),
        attribution: Attribution { focus: opts.focus.clone(), allocator: None },
        suppressions,
        allocator_programs: opts.probe_floor.unwrap_or_default(),
    };
    let is_run = matches!(spec, TargetSpec::Run { .. });
    let live = opts.tui || (!opts.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal());
    let mut session = Session::start(spec, config)?;
    let interrupted = install_signal_flag()?;
    if live {
        let tui_config = TuiConfig { refresh: Duration::from_millis(500), export_dir: std::env::current_dir()? };
        tui::run(&mut session, &tui_config, interrupted)?;
        if is_run && !session.poll_ended() {
            session.signal(libc::SIGTERM); // quitting the view ends a target leaktrace started
        }
        if is_run {
            session.wait_child();
        }
        let report = session.finish();
        emit(&report, &opts)?;
        return Ok(judge(&report, &opts, expected.as_deref()));
    }
    eprintln!("leaktrace: tracing pid {}", session.pid());

    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut interrupts_seen = 0;
    loop {
        if session.poll_ended() {
            break;
        }
        let n = interrupted.load(Ordering::SeqCst);
        if n > interrupts_seen {
            interrupts_seen = n;
            if !is_run {
                break; // attach: detach and report
            }
            if n >= 2 {
                session.signal(libc::SIGKILL); // run: a second Ctrl-C ends the target
            }
        }
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if let Some(every) = opts.interval {
            if last_print.elapsed().as_secs_f64() >= every {
                last_print = Instant::now();
                print!("{}", text::render(&session.report()));
                let _ = std::io::stdout().flush();
            }
        }
        std::thread::sleep(TICK);
    }
    if is_run {
        session.wait_child();
    }
    let report = session.finish();
    emit(&report, &opts)?;
    Ok(judge(&report, &opts, expected.as_deref()))
}

fn emit(report: &Report, opts: &Options) -> anyhow::Result<()> {
    let body = match opts.format {
        Format::Text => text::render(report),
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
    };
    match &opts.output {
        Some(path) => std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{body}"),
    }
    Ok(())
}

fn judge(report: &Report, opts: &Options, expected: Option<&[tracer_common::manifest::ExpectedLeak]>) -> ExitCode {
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

/// Ctrl-C and SIGTERM received so far.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// SIGINT and SIGTERM bump a counter instead of killing leaktrace, so it can
/// detach cleanly and report.
fn install_signal_flag() -> anyhow::Result<&'static AtomicU32> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installing an async-signal-safe handler (an atomic add).
        let prev = unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        if prev == libc::SIG_ERR {
            anyhow::bail!("installing a signal handler failed");
        }
    }
    Ok(&INTERRUPTS)
}
