//! A call site in the report: what it holds, where it is, the stack of its
//! largest contributor and its trend.

use serde::Serialize;

use crate::aggregate::ResourceKind;

use super::reachability::Reachability;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Site {
    pub kind: ResourceKind,
    /// Outstanding items.
    pub count: u64,
    /// Outstanding bytes (heap; 0 for handles).
    pub bytes: u64,
    /// Acquisitions and releases seen at this site since tracing began.
    pub allocations: u64,
    pub releases: u64,
    /// Age of the oldest outstanding item.
    pub oldest_age_secs: f64,
    pub site: Location,
    /// Distinct stacks folded into this site (`stack` shows the largest).
    pub stacks: u64,
    /// The stack of the largest contributor, innermost first.
    pub stack: Vec<StackFrame>,
    /// The unwinder could not recover frames beyond the last one.
    pub truncated: bool,
    /// Why, when it could not: the reason and the frame it stopped after.
    pub stack_end: Option<String>,
    /// The trend of what this site holds over the session (null until there is enough history).
    pub growth: Option<Growth>,
    /// Descriptors: what their files and calls say (a socket's family and
    /// type; a memfd's name; an unknown anonymous inode's name), sorted.
    pub detail: Vec<String>,
    /// Descriptors received from another process (SCM_RIGHTS) by this call.
    pub received: bool,
    /// valgrind's classes of its blocks (heap) or descriptors owned by lost blocks, after a scan.
    pub reachability: Option<Reachability>,
    /// Descriptors of a libuv handle: the stack that named the site
    /// (`opened`: `stack`; `created`: `created_stack`; `server`: `server_stack`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_from: Option<SiteFrom>,
    /// Where the handle was created (`uv_*_init`), and an accepted connection's server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub created_stack: Vec<StackFrame>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_stack: Vec<StackFrame>,
}

/// A site's trend: robust (Theil–Sen) slopes of its outstanding count and
/// bytes over the samples taken while tracing (README, "Growth").
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Growth {
    /// Seconds of history fitted, and the samples in them.
    pub window_secs: f64,
    pub points: u32,
    /// Change per minute of outstanding items and bytes.
    pub count_per_min: f64,
    pub bytes_per_min: f64,
    /// 95% interval of the site's own rate (bytes for heap, handles otherwise), per minute.
    pub low_per_min: f64,
    pub high_per_min: f64,
    /// How much of that measure's variation the line explains (R², 0 to 1).
    pub fit: f64,
}

impl Growth {
    /// `+61440 bytes/min (95%: 60000 to 62000; fit 0.99; 60 samples over 59s)`.
    pub fn describe(&self, kind: ResourceKind) -> String {
        let unit = if kind == ResourceKind::Heap { "bytes" } else { "handles" };
        let n = |v: f64| if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        format!(
            "{}{} {unit}/min (95%: {} to {}; fit {:.2}; {} samples over {:.0}s)",
            if self.rate(kind) > 0.0 { "+" } else { "" },
            n(self.rate(kind)),
            n(self.low_per_min),
            n(self.high_per_min),
            self.fit,
            self.points,
            self.window_secs
        )
    }

    /// The rate of what a site of `kind` holds: bytes for heap, handles otherwise.
    pub fn rate(&self, kind: ResourceKind) -> f64 {
        if kind == ResourceKind::Heap {
            self.bytes_per_min
        } else {
            self.count_per_min
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Location {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// JavaScript sites only: the column (of the function's start, or of the
    /// call when the runtime's jitdump gives positions inside functions).
    pub column: Option<u32>,
    /// `line` is where the function starts, not the call's (JavaScript named
    /// from a perf map alone); serialized only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub line_is_function_start: bool,
    pub module: String,
    /// The function; `function+0xOFFSET` (the return address in its symbol)
    /// when no line is known; `module+0xOFFSET` when no function is. No two
    /// sites of a kind share a label: a repeated one gets ` at FILE:LINE`,
    /// and ` in MODULE` when that is all that differs.
    pub label: String,
}

impl Location {
    /// A site's label with its file and line: `leakyConnect (app.js:12)`; a
    /// line that is only the function's start says so.
    pub fn place(&self) -> String {
        let label = &self.label;
        match (self.file.as_deref(), self.line) {
            (Some(f), Some(l)) => {
                let start = if self.line_is_function_start { ", function start" } else { "" };
                format!("{label} ({}:{l}{start})", base_name(f))
            }
            (Some(f), None) => format!("{label} ({})", base_name(f)),
            _ => label.to_owned(),
        }
    }
}

/// The last component of a path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StackFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// As [`Location::line_is_function_start`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub line_is_function_start: bool,
    pub module: String,
    pub address: u64,
    /// Offset in the module's file of the instruction looked up (the call before `address`).
    pub module_offset: u64,
    pub inlined: bool,
    /// A frame a tail call left out, put back from the call instruction that led to it.
    pub inferred: bool,
}

impl Site {
    /// A site at `site` that holds nothing yet.
    pub fn empty(kind: ResourceKind, site: Location) -> Self {
        Self {
            kind,
            count: 0,
            bytes: 0,
            allocations: 0,
            releases: 0,
            oldest_age_secs: 0.0,
            site,
            stacks: 0,
            stack: Vec::new(),
            truncated: false,
            stack_end: None,
            growth: None,
            detail: Vec::new(),
            received: false,
            reachability: None,
            site_from: None,
            created_stack: Vec::new(),
            server_stack: Vec::new(),
        }
    }

    /// What a descriptor site's files say, in one line (None when nothing).
    pub fn detail_line(&self) -> Option<String> {
        let mut parts = self.detail.clone();
        if self.received {
            parts.push("received from another process (SCM_RIGHTS)".to_owned());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
impl Site {
    /// A site named `function` in /bin/app with no stack, for tests of what consumes reports.
    pub fn named(kind: ResourceKind, function: &str, count: u64, bytes: u64) -> Self {
        let site = Location { function: Some(function.into()), module: "/bin/app".into(), label: function.into(), ..Location::default() };
        Self { count, bytes, allocations: count, stacks: 1, ..Self::empty(kind, site) }
    }
}

/// Which stack a site was named from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteFrom {
    /// The descriptor's own stack ("opened at").
    Opened,
    /// Where its handle was created ("created at").
    Created,
    /// Where the server that accepted it was created.
    Server,
}
