//! Reports: the model, building it, and its text and JSON forms; the CI verdict.

mod attribute;
mod build;
pub mod expect;
pub mod model;
mod suppress;
pub mod text;
mod verdict;

pub use attribute::{attribute, Attribution, Resolved, SiteCache};
pub use build::{build, ReportInput};
pub use model::Report;
pub use suppress::{SuppressError, Suppressions};
pub use verdict::{command_status, verdict, ExitCode, Thresholds};

#[cfg(test)]
mod tests;
