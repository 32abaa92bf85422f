//! Tracing until the target ends, the user interrupts, or --duration passes;
//! with the live view or quietly (with --interval, the text report periodically).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::signals::Interrupts;
use super::Options;
use crate::report::{text, Report};
use crate::session::Session;
use crate::tui::{self, TuiConfig};

const TICK: Duration = Duration::from_millis(50);

/// Whether the live view opens.
pub fn live(opts: &Options) -> bool {
    opts.tui || (!opts.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal())
}

/// Traces `session` to its end and returns the final report.
pub fn trace(mut session: Session, opts: &Options, is_run: bool, duration: Option<Duration>) -> anyhow::Result<Report> {
    let interrupted = Interrupts::install()?;
    if live(opts) {
        let tui_config = TuiConfig { refresh: Duration::from_millis(500), export_dir: std::env::current_dir()? };
        tui::run(&mut session, &tui_config, interrupted.counter())?;
        if is_run && !session.poll_ended() {
            session.signal(Signal::TERM); // quitting the view ends a target leaktrace started
        }
    } else {
        eprintln!("leaktrace: tracing pid {}", session.pid());
        quiet(&mut session, opts, is_run, duration, &interrupted);
    }
    if is_run {
        session.wait_child();
    }
    Ok(session.finish())
}

fn quiet(session: &mut Session, opts: &Options, is_run: bool, duration: Option<Duration>, interrupted: &Interrupts) {
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut interrupts_seen = 0;
    while !session.poll_ended() {
        let n = interrupted.count();
        if n > interrupts_seen {
            interrupts_seen = n;
            if !is_run {
                return; // attach: detach and report
            }
            if n >= 2 {
                session.signal(Signal::KILL); // run: a second Ctrl-C ends the target
            }
        }
        if duration.is_some_and(|d| started.elapsed() >= d) {
            return;
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
}
