//! Loading leaktrace's eBPF programs and attaching them to a target.

mod allocator;
pub mod btf;
mod errors;
mod loader;
mod preflight;
mod programs;
mod prologue;
mod unwind_settings;
mod unwind_tables;

pub use allocator::{load_order, AllocatorChoice, AllocatorFunction};
pub use errors::ProbeError;
pub use loader::{AllocatorPrograms, CounterReader, LoadOptions, Probes};
pub use preflight::preflight;
pub use programs::Program;
pub use unwind_settings::UnwindMode;
pub use unwind_tables::{KernelTables, TableError};
