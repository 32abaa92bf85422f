//! The live view: a ratatui TUI over the same session the text report reads.
//!
//! One [`app::Action`] enum drives the state; [`render::render`] is a pure
//! function of it; the loop here refreshes data at a fixed pace, maps keys to
//! actions, and never writes logs to the terminal while it is up.

mod app;
mod render;
mod source_line;
mod terminal;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub use app::{Action, App, SortBy};
pub use render::render;
pub use source_line::{SourceReader, MAX_SOURCE_BYTES};

use crate::outputs;
use crate::report::Report;

/// What the TUI reads: the CLI's observed session (`cli/observers.rs`);
/// tests use recorded reports.
pub trait Source {
    fn report(&mut self) -> Report;
    fn events(&self) -> u64;
    fn poll_ended(&mut self) -> bool;
    /// The target's pid, whose credentials and root directory source files are read with.
    fn pid(&self) -> u32;
}

pub struct TuiConfig {
    pub refresh: Duration,
    pub export_dir: PathBuf,
}

/// Maps a key to an action; typing goes to the filter prompt while it is open.
pub fn action_for(key: KeyEvent, editing: bool) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if editing {
        return match key.code {
            KeyCode::Enter => Some(Action::FilterApply),
            KeyCode::Esc => Some(Action::FilterCancel),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) => Some(Action::FilterChar(c)),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('t') => Action::CycleKind,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Esc => Action::FilterCancel,
        KeyCode::Char('b') => Action::MarkBaseline,
        KeyCode::Char('B') => Action::ClearBaseline,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('?') => Action::ToggleHelp,
        _ => return None,
    })
}

/// `e`: the view's report and its profiles, in new files in `dir`; what
/// was written, or why not.
fn export(app: &App, dir: &Path) -> Result<String, String> {
    let report = app.view_report().ok_or("nothing to export yet")?;
    outputs::export::export(&report, dir)
}

/// Runs until the user quits or `interrupts` changes (SIGINT/SIGTERM). When
/// the target ends, the final report stays on screen until the user quits.
pub fn run(source: &mut dyn Source, config: &TuiConfig, interrupts: &AtomicU32) -> anyhow::Result<()> {
    let seen = interrupts.load(Ordering::SeqCst);
    let mut term = terminal::enter()?;
    let started = Instant::now();
    let mut app = App::with_sources(SourceReader::for_process(source.pid()));
    let mut last: Option<Instant> = None;
    let result = (|| -> anyhow::Result<()> {
        while !app.quit && interrupts.load(Ordering::SeqCst) == seen {
            if !app.ended && last.is_none_or(|t| t.elapsed() >= config.refresh) {
                last = Some(Instant::now());
                let ended = source.poll_ended();
                let report = Box::new(source.report());
                app.update(Action::Refresh { report, events: source.events(), elapsed: started.elapsed().as_secs_f64(), ended });
            }
            term.draw(|f| render(&app, f))?;
            if event::poll(Duration::from_millis(50))? {
                if let Event::Key(key) = event::read()? {
                    if key.code == KeyCode::Char('e') && app.editing.is_none() {
                        app.update(Action::Exported(export(&app, &config.export_dir)));
                    } else if let Some(action) = action_for(key, app.editing.is_some()) {
                        app.update(action);
                    }
                }
            }
        }
        Ok(())
    })();
    terminal::restore();
    result
}

#[cfg(test)]
mod tests;
