//! A tracing session: probes loaded, a target traced, records consumed.
//! The text report, JSON and the TUI all read the same session.

mod consumer;
mod ingest;
pub mod spawn;
mod target;

pub use consumer::{Consumer, Shared};
pub use ingest::{Image, Tracer};
pub use target::{Session, SessionConfig, SessionError, TargetSpec};
