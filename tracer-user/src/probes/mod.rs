//! Loading leaktrace's eBPF programs and attaching them to a target.

mod allocator;
mod allocator_probes;
mod bpf_sys;
pub mod btf;
mod detach;
mod dynamic;
mod errors;
mod links;
mod load_order;
mod loader;
mod loader_probe;
mod mapped_objects;
mod preflight;
mod programs;
mod prologue;
mod raw_programs;
pub mod stack_budget;
pub mod syscalls;
mod unwind_settings;
mod unwind_tables;

pub use allocator::{load_order, AllocatorChoice, AllocatorFunction, ImageKey};
pub use errors::ProbeError;
pub use links::{LinkMode, LinkStats};
pub use loader::{AllocatorPrograms, CounterReader, LoadOptions, Outputs, Probes};
pub use loader_probe::PAUSE_SIGNAL;
pub use preflight::preflight;
pub use programs::Program;
pub use syscalls::DescriptorProbes;
pub use unwind_settings::UnwindMode;
pub use unwind_tables::{KernelTables, TableError};
