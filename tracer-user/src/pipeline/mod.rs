//! The event pipeline: ring-buffer records decoded, their stacks completed and
//! interned, and applied to the shared [`State`]. One consumer thread runs
//! it; reports take snapshots of the state and build outside its lock.

mod consumer;
mod ingest;

pub use consumer::{Consumer, Shared};
pub use ingest::{Ingestor, TableRequest};
