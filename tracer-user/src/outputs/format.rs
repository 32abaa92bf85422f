//! What a format is to the rest of leaktrace: a name, what it needs, and
//! the bytes it makes of a report.

use std::path::{Path, PathBuf};

use crate::report::Report;

/// A report format.
pub trait Output: Sync {
    /// Its `--format` value.
    fn name(&self) -> &'static str;
    /// It draws every stack of a site, not only the largest: the report
    /// keeps them (`ReportInput::keep_stacks`).
    fn needs_stacks(&self) -> bool {
        false
    }
    /// It cannot go to a terminal (binary, SVG): `--output` is required.
    fn needs_file(&self) -> bool {
        false
    }
    /// A second file it writes beside `--output`, opened before tracing like it.
    fn beside(&self, _output: &Path) -> Option<PathBuf> {
        None
    }
    fn render(&self, report: &Report) -> anyhow::Result<Rendered>;
}

/// A rendered report: its bytes, and what goes to the file beside them
/// (with what it is, for the line that names it).
pub struct Rendered {
    pub body: Vec<u8>,
    pub beside: Option<(Vec<u8>, &'static str)>,
}

impl From<String> for Rendered {
    fn from(body: String) -> Self {
        Self { body: body.into_bytes(), beside: None }
    }
}
