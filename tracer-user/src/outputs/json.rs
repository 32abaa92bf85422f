//! `--format json`: the report as one JSON object (README, "JSON report").

use super::{Output, Rendered};
use crate::report::Report;

pub struct Json;

impl Output for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn render(&self, report: &Report) -> anyhow::Result<Rendered> {
        Ok((serde_json::to_string_pretty(report)? + "\n").into())
    }
}
