//! Interactive SVG flame graphs (inferno) of what is outstanding: one of
//! heap bytes, and one of handles (each kind its own tower) beside it, as
//! two files: each graph's script addresses its elements by id, so two
//! cannot share one document.

use std::path::{Path, PathBuf};

use inferno::flamegraph::{self, Options};

use super::{folded, Output, Rendered};
use crate::aggregate::ResourceKind;
use crate::report::Report;

pub struct FlameGraph;

impl Output for FlameGraph {
    fn name(&self) -> &'static str {
        "flamegraph"
    }

    fn needs_stacks(&self) -> bool {
        true
    }

    fn needs_file(&self) -> bool {
        true
    }

    fn beside(&self, output: &Path) -> Option<PathBuf> {
        Some(handles_path(output))
    }

    fn render(&self, report: &Report) -> anyhow::Result<Rendered> {
        let graphs = render(report)?;
        Ok(Rendered { body: graphs.bytes, beside: graphs.handles.map(|h| (h, "handles flame graph")) })
    }
}

/// The two graphs: heap bytes, and handles when any are outstanding.
pub struct FlameGraphs {
    pub bytes: Vec<u8>,
    pub handles: Option<Vec<u8>>,
}

pub fn render(report: &Report) -> std::io::Result<FlameGraphs> {
    let t = &report.target;
    let who = format!("pid {} `{}`", t.pid, t.command);
    let heap = folded::stacks(report, |k| k == ResourceKind::Heap);
    let handles = folded::stacks(report, |k| k != ResourceKind::Heap);
    let bytes = graph(&heap, &format!("Outstanding heap bytes: {who}"), "bytes")?;
    let handles = if handles.is_empty() { None } else { Some(graph(&handles, &format!("Outstanding handles: {who}"), "handles")?) };
    Ok(FlameGraphs { bytes, handles })
}

fn graph(stacks: &std::collections::BTreeMap<String, u64>, title: &str, unit: &str) -> std::io::Result<Vec<u8>> {
    if stacks.is_empty() {
        return Ok(empty(title, unit).into_bytes());
    }
    let lines: Vec<String> = stacks.iter().map(|(s, v)| format!("{s} {v}")).collect();
    let mut opts = Options::default();
    opts.title = title.to_owned();
    opts.count_name = unit.to_owned();
    opts.hash = true; // a function keeps its colour from one graph to the next
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)?;
    Ok(svg)
}

/// A graph of nothing says so (inferno refuses empty input).
fn empty(title: &str, unit: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" height=\"60\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"24\" text-anchor=\"middle\">{}</text>\
         <text x=\"600\" y=\"48\" text-anchor=\"middle\">no {unit} outstanding</text></svg>\n",
        esc(title)
    )
}

/// Where the handles graph goes beside `path`: `x.svg` gives `x.handles.svg`.
pub fn handles_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".svg").unwrap_or(&name);
    path.with_file_name(format!("{stem}.handles.svg"))
}
