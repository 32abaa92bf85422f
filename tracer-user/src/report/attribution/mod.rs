//! Attribution: which frame of a stack is its call site. The innermost
//! frame inside `--focus`, else the first that is neither runtime
//! (`system.rs`, `javascript.rs`), nor an allocation wrapper
//! (`wrappers.rs`), nor a suppressed stack (`suppress.rs`); a libuv
//! handle's descriptor may be named where the handle was made
//! (`provenance.rs`). `attribute.rs` resolves and caches each stack once.

mod attribute;
mod focus;
mod javascript;
mod provenance;
mod suppress;
mod system;
mod wrappers;

pub use attribute::{choose_site, Resolved, SiteCache};
pub use focus::Focus;
pub use suppress::{SuppressError, Suppressions};
pub use system::{is_system_library, is_user_frame};

/// What attribution is told: the focus, the allocator, the wrappers.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    /// `--focus PATH` (see [`Focus`]).
    pub focus: Option<String>,
    /// The allocator's module path (frames inside it are never the site).
    pub allocator: Option<String>,
    /// `--alloc-wrapper` names: never the site without `--focus`.
    pub wrappers: Vec<String>,
}
