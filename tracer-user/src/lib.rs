//! leaktrace: attributes leaked handles and heap bytes to call sites.
//!
//! How data flows, from the command line to what leaves leaktrace:
//!
//! ```text
//! cli ──► session ──────────────► pipeline ──► aggregate ──► report ──► outputs
//!         ├ probes   (eBPF)       ring buffer  tables,       model,     text, JSON, pprof,
//!         ├ process  (ptrace,     and the      stacks,       build,     folded, flame graph,
//!         │           pidfd)      recorder's   snapshots     attribution  OpenMetrics, export
//!         └ inprocess (recorder)  ring                          │
//!                                                               ├──► verdict (exit code, --expect)
//!                                                               ├──► tui (the live view)
//!                                                               └──► metrics (serves outputs' OpenMetrics)
//! ```
//!
//! - `cli` parses arguments, checks inputs, starts a `session`, runs the
//!   trace loop, writes the report through `outputs` and exits with the
//!   `verdict`.
//! - `session` ties the kernel side (`probes`), the target (`process`) and
//!   the in-process recorder (`inprocess`) to the `pipeline`, which ingests
//!   their events into `aggregate`'s tables.
//! - A report is built from an aggregate snapshot (`report`, its
//!   `attribution` naming each stack's call site), with `symbolize` for
//!   frames, `reach` for valgrind's leak classes and `growth` for trends.
//! - Everything after that reads only the report: `outputs`, `verdict`,
//!   `tui`, `metrics`.
//!
//! No file of this crate depends on another that depends back on it
//! (`cargo xtask lint` checks; xtask/src/cycles/).

pub mod aggregate;
pub mod cli;
pub mod growth;
pub mod inprocess;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod probes;
pub mod process;
pub mod reach;
pub mod report;
pub mod session;
pub mod symbolize;
pub mod tui;
pub mod verdict;
