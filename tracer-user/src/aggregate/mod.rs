//! What is still outstanding, and where it came from.
//!
//! One [`Aggregator`] serves every front end (text report, JSON, TUI): it
//! applies decoded events whose stacks have already been interned, and
//! summarizes per stack on demand. [`State`] adds the process images the
//! stacks belong to; reports read it through a [`Snapshot`].

mod blocks;
mod details;
mod ended_threads;
mod kind;
mod outstanding;
mod process_heap;
mod stacks;
mod state;

pub use details::FdDetail;
pub use kind::ResourceKind;
pub use outstanding::{creation_kind, Aggregator, Anomalies, ProcessTotals, StackSummary};
pub use stacks::{Origin, StackCounters, StackEnd, StackId, StackTable};
pub use state::{Image, Snapshot, StackInfo, State};
