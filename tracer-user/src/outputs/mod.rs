//! Every form a report leaves leaktrace in: the `--format`s (text, JSON,
//! pprof, folded stacks, flame graphs), the OpenMetrics exposition the
//! `--metrics` endpoint serves, and the live view's export. Each reads a
//! finished [`Report`] and nothing else.
//!
//! Adding a `--format`: a file here with a type that implements
//! [`Output`], its line in [`FORMATS`], and its value in the CLI's format
//! list (`cli/args.rs`, `Format`), whose names are looked up here.

mod destination;
pub mod export;
pub mod flamegraph;
pub mod folded;
mod format;
pub mod json;
pub mod openmetrics;
pub mod pprof;
mod pprof_proto;
pub mod profile;
pub mod text;

use anyhow::bail;

use crate::report::Report;
pub use destination::{to_stdout, Destination, DestinationError};
pub use format::{Output, Rendered};

/// Every `--format`.
pub const FORMATS: &[&dyn Output] = &[&text::Text, &json::Json, &pprof::Pprof, &folded::Folded, &flamegraph::FlameGraph];

/// The format of this `--format` value.
pub fn by_name(name: &str) -> Option<&'static dyn Output> {
    FORMATS.iter().copied().find(|f| f.name() == name)
}

/// Writes the report to `output` (opened before tracing; on stdout when
/// that write fails) or to stdout; what the format puts beside it, to
/// `beside`.
pub fn emit(format: &dyn Output, report: &Report, output: Option<Destination>, beside: Option<Destination>) -> anyhow::Result<()> {
    if format.needs_file() && output.is_none() {
        bail!("this --format needs --output FILE");
    }
    let rendered = format.render(report)?;
    match output {
        Some(dest) => {
            dest.deliver(&rendered.body);
        }
        None => to_stdout(&rendered.body)?,
    }
    if let (Some((body, what)), Some(beside)) = (rendered.beside, beside) {
        let shown = beside.path().display().to_string();
        if beside.deliver(&body) {
            eprintln!("leaktrace: {what}: {shown}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
