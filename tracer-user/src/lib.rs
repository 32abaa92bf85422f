//! leaktrace: attributes leaked handles and heap bytes to call sites.
pub mod aggregate;
pub mod cli;
pub mod growth;
pub mod inprocess;
pub mod metrics;
pub mod pipeline;
pub mod probes;
pub mod process;
pub mod reach;
pub mod report;
pub mod session;
pub mod symbolize;
pub mod tui;
