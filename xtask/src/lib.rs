//! Orchestration for leaktrace: toolchain setup, the fixture and its oracle, CI, benchmarks and the binary to ship.
pub mod bench;
pub mod cycles;
pub mod dist;
pub mod fixture;
pub mod fuzz;
pub mod lint;
pub mod setup;
pub mod size;
pub mod vm;
