//! The report: the model every output reads (`model.rs` and the files of
//! its parts: `site.rs`, `target.rs`, `processes.rs`, `reachability.rs`,
//! `profile.rs`), and `build.rs`, which makes one from an aggregate
//! snapshot through `attribution/` (which frame of a stack is the call
//! site). Built from a snapshot, never from the session; the formats are
//! in `outputs/`, the exit code in `verdict/`.

pub mod attribution;
pub mod build;
#[cfg(test)]
pub mod fixtures;
pub mod labels;
pub mod model;
mod processes;
pub mod profile;
pub mod reachability;
mod site;
mod target;

pub use build::{build, ReportInput};
pub use model::Report;
pub use reachability::LeakKinds;
