//! Entering and leaving the terminal's raw, alternate-screen mode — also on
//! panic (ratatui's hook) and when entering fails half-way.

use std::io::stdout;

use ratatui::DefaultTerminal;

pub type Term = DefaultTerminal;

/// Raw mode and the alternate screen, with a panic hook that leaves them; a
/// failure half-way leaves the terminal as it was.
pub fn enter() -> std::io::Result<Term> {
    ratatui::try_init().inspect_err(|_| restore())
}

/// Restores the terminal; safe to call more than once.
pub fn restore() {
    let _ = ratatui::try_restore();
    let _ = crossterm::execute!(stdout(), crossterm::cursor::Show);
}
