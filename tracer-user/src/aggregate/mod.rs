//! What is still outstanding, and where it came from.
//!
//! One [`Aggregator`] serves every front end (text report, JSON, TUI): it
//! applies decoded events whose stacks have already been interned, and
//! summarizes per stack on demand.

mod kind;
mod outstanding;
mod stacks;

pub use kind::ResourceKind;
pub use outstanding::{Aggregator, Anomalies, StackSummary};
pub use stacks::{StackId, StackTable};
