//! Orchestration for leaktrace: toolchain setup, the fixture and its oracle, CI and benchmarks.
pub mod bench;
pub mod fixture;
pub mod fuzz;
pub mod lint;
pub mod setup;
pub mod size;
pub mod vm;
