//! The traced processes themselves: starting a command under ptrace,
//! watching an attached process, signals, and what /proc says about them.

pub mod attach;
mod exits;
mod images;
pub mod inject;
pub mod pause;
mod remote;
pub mod spawn;
mod supervise;

pub use attach::{command_line, monotonic_ns, proc_alive, Watched};
pub use inject::{InjectError, Injection, TargetFile};
pub use remote::CallError;
pub use spawn::{resolve_program, ChildSignals, Command, Supervised};
pub use supervise::{Ended, Hooks, SpawnError};

/// A supervisor waits for any child of the process (`waitpid(-1)`), so unit
/// tests that start children take turns.
#[cfg(test)]
pub(crate) static CHILDREN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A /proc text file, read whole. It may hold the process's name (`stat`,
/// `status`), which is bytes in any encoding: read lossily, never refused.
pub(crate) fn proc_text(path: &str) -> Option<String> {
    std::fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}
