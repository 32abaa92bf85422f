//! Reports: the model, building it, and its text and JSON forms; the CI verdict.

mod attribute;
mod build;
pub mod expect;
mod export;
pub mod flamegraph;
mod focus;
pub mod folded;
mod javascript;
pub mod labels;
pub mod model;
pub mod pprof;
mod pprof_proto;
mod processes;
pub mod profile;
mod provenance;
pub mod reachability;
mod suppress;
mod system;
mod target;
pub mod text;
mod verdict;
mod wrappers;

pub use attribute::{choose_site, Attribution, Resolved, SiteCache};
pub use build::{build, ReportInput};
pub use export::profiles;
pub use focus::Focus;
pub use model::Report;
pub use reachability::LeakKinds;
pub use suppress::{SuppressError, Suppressions};
pub use system::{is_system_library, is_user_frame};
pub use verdict::{command_status, verdict, ExitCode, Thresholds};

#[cfg(test)]
mod tests;
