//! leaktrace's eBPF probes, by job:
//!
//! - `load/`: the embedded object and every program a session uses, loaded
//!   for what the running kernel accepts, attached to nothing; the kernel's
//!   features and `leaktrace check`'s probes of them.
//! - `discovery/`: what the dynamic linker would bind in a target (its
//!   allocator, libuv), read from the target's files: analysis, no probing.
//! - `attach/`: the loaded programs hung on the kernel (syscall and process
//!   tracepoints) and on each traced process (allocator links, the dynamic
//!   linker's hook, libuv's probes): [`Probes`], the session's handle.
//! - `unwind_tables.rs`: the kernel walker's CFI tables, filled as modules appear.
//! - `teardown.rs`: every link taken off at the end without waiting.
//! - `errors.rs`: [`ProbeError`], what each of them fails with.
//!
//! Data flows one way: [`LoadOptions`] into load/, a loaded object into
//! attach/, a discovered [`AllocatorChoice`] or [`EventLoopLibrary`] into
//! attach/, links into teardown. No file here imports from a file that
//! imports it back.

mod attach;
mod check;
mod discovery;
mod errors;
mod load;
mod teardown;
mod unwind_tables;

pub use attach::dynamic_linker::PAUSE_SIGNAL;
pub use attach::links::LinkStats;
pub use attach::probes::Probes;
pub use attach::syscalls::coverage as descriptor_coverage;
pub use attach::syscalls::DescriptorProbes;
pub use check::{check, CheckReport, Use};
pub use discovery::allocator::{load_order, AllocatorChoice, AllocatorFunction, ImageKey};
pub use discovery::libuv::EventLoopLibrary;
pub use discovery::linker_view::LinkerView;
pub use errors::ProbeError;
pub use load::allocator_programs::AllocatorPrograms;
pub use load::link_mode::LinkMode;
pub use load::outputs::{CounterReader, Outputs};
pub use load::preflight::preflight;
pub use load::prepare::{prepare, LoadOptions, Prepared};
pub use load::programs::Program;
pub use load::unwind_settings::{UnwindMode, PAGES_PER_ROW};
pub use load::{features, stack_budget};
pub use unwind_tables::{KernelTables, TableError};
