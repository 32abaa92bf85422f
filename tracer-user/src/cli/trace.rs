//! Tracing until the target ends, the user interrupts, or --duration passes;
//! with the live view or quietly (with --interval, the text report periodically).
//!
//! Under `run` leaktrace reports when the command has ended: an interrupt
//! asks the command to stop (see signals.rs) and leaktrace waits for it; a
//! second interrupt, or `--kill-after SECS` after the first, kills it.
//! Under `attach` an interrupt detaches at once.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::observers::Observers;
use super::signals::Interrupts;
use super::Options;
use crate::outputs::text;
use crate::report::Report;
use crate::session::Session;
use crate::tui::{self, TuiConfig};

const TICK: Duration = Duration::from_millis(10);

/// Whether the live view opens.
pub fn live(opts: &Options) -> bool {
    opts.tui || (!opts.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal())
}

/// When to stop.
pub struct Limits {
    /// `attach --duration`.
    pub duration: Option<Duration>,
    /// `run --kill-after`: after the first interrupt, the command has this long to end.
    pub kill_after: Option<Duration>,
}

/// When the target's memory is scanned for what is lost (reach/).
#[derive(Debug, Default)]
pub struct Scans {
    /// `run`: each process at its end.
    pub at_exit: bool,
    /// `attach`: before detaching, and every so often.
    pub at_end: bool,
    pub every: Option<Duration>,
}

/// `attach`: one scan now, said on stderr with what it read and how long the target was stopped.
pub fn scan_now(session: &mut Session) {
    match session.scan() {
        Ok(s) => eprintln!(
            "leaktrace: scanned pid {}: {} blocks, {:.1} MiB in {:.1} ms; stopped {:.1} ms",
            session.pid(),
            s.blocks,
            s.block_bytes as f64 / (1 << 20) as f64,
            s.scan_ms,
            s.stopped_ms
        ),
        Err(e) => eprintln!("leaktrace: no reachability scan: {e}"),
    }
}

/// Traces `session` to its end and returns the final report.
pub fn trace(
    mut session: Session,
    opts: &Options,
    interrupts: &Interrupts,
    (limits, scans): (&Limits, &Scans),
    observers: &mut Observers,
) -> anyhow::Result<Report> {
    let is_run = session.is_run();
    if live(opts) {
        let tui_config = TuiConfig { refresh: Duration::from_millis(500), export_dir: std::env::current_dir()? };
        let before = interrupts.count();
        tui::run(&mut observers.source(&mut session), &tui_config, interrupts.counter())?;
        if is_run && !session.poll_ended() {
            if interrupts.count() == before {
                session.signal(Signal::TERM); // quitting the view ends a target leaktrace started
            }
            eprintln!("leaktrace: waiting for pid {} to end (interrupt again to kill it)", session.pid());
            quiet(&mut session, opts, interrupts, (limits, scans), Some((Instant::now(), interrupts.count())), observers);
        }
    } else {
        // `attach` says when it is attached; under `run` the command's own
        // output is all there is until the report.
        if !is_run {
            eprintln!("leaktrace: tracing pid {}", session.pid());
        }
        // Interrupts before now count too: one may have come while the command started.
        quiet(&mut session, opts, interrupts, (limits, scans), None, observers);
    }
    if is_run {
        session.wait_child();
    } else if !session.poll_ended() {
        session.close_window();
        if scans.at_end {
            scan_now(&mut session);
        }
    }
    Ok(observers.finish(session.finish()))
}

/// Polls until the target ends (or, attached, until interrupted or --duration).
/// `asked`: when the command was asked to stop already, and the interrupts
/// counted by then.
fn quiet(
    session: &mut Session,
    opts: &Options,
    interrupts: &Interrupts,
    (limits, scans): (&Limits, &Scans),
    asked: Option<(Instant, u32)>,
    observers: &mut Observers,
) {
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut last_scan = Instant::now();
    let (mut stopping, mut seen) = (asked.map(|(at, _)| at), asked.map_or(0, |(_, n)| n));
    let mut killed = false;
    while !session.poll_ended() {
        let n = interrupts.count();
        if n > seen {
            if !session.is_run() {
                return; // attach: detach and report
            }
            if stopping.is_some() && !killed {
                session.signal(Signal::KILL); // run: a second interrupt ends the command
                killed = true;
            }
            stopping.get_or_insert_with(Instant::now);
            seen = n;
        }
        if let (Some(since), Some(grace), false) = (stopping, limits.kill_after, killed) {
            if since.elapsed() >= grace {
                eprintln!("leaktrace: pid {} still running {:.1}s after the stop request: killing it", session.pid(), grace.as_secs_f64());
                session.signal(Signal::KILL);
                killed = true;
            }
        }
        if limits.duration.is_some_and(|d| started.elapsed() >= d) {
            return;
        }
        if let Some(every) = opts.interval {
            if last_print.elapsed().as_secs_f64() >= every {
                last_print = Instant::now();
                print!("{}", text::render(&observers.report(session)));
                let _ = std::io::stdout().flush();
            }
        }
        if scans.every.is_some_and(|every| last_scan.elapsed() >= every) && !session.is_run() {
            scan_now(session);
            last_scan = Instant::now();
        }
        observers.tick(session);
        std::thread::sleep(TICK);
    }
}
