//! Loading leaktrace's eBPF programs and attaching them to a target.

mod allocator;
mod allocator_probes;
mod bpf_sys;
pub mod btf;
mod check;
mod detach;
mod errors;
pub mod features;
mod links;
mod loader;
mod loader_probe;
mod preflight;
mod prepare;
mod programs;
mod prologue;
mod raw_programs;
mod refusal;
pub mod stack_budget;
pub mod syscalls;
mod unwind_settings;
mod unwind_tables;

pub use allocator::{load_order, AllocatorChoice, AllocatorFunction, ImageKey};
pub use allocator_probes::AllocatorPrograms;
pub use check::{check, CheckReport, Use};
pub use errors::ProbeError;
pub use links::{LinkMode, LinkStats};
pub use loader::{CounterReader, Outputs, Probes};
pub use loader_probe::PAUSE_SIGNAL;
pub use preflight::preflight;
pub use prepare::{prepare, LoadOptions, Prepared};
pub use programs::Program;
pub use syscalls::coverage as descriptor_coverage;
pub use syscalls::DescriptorProbes;
pub use unwind_settings::UnwindMode;
pub use unwind_tables::{KernelTables, TableError};
