//! Every stack behind the sites, for the profile formats (pprof, folded
//! stacks, flame graphs). A report carries one only when asked
//! (`ReportInput::keep_stacks`): each stack's frames cost memory. Without
//! one, the formats make one from the sites (outputs/profile.rs).

use std::sync::Arc;

use crate::aggregate::{ResourceKind, StackCounters};
use crate::symbolize::ProcessMaps;

use super::site::StackFrame;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// What each stack holds (those holding nothing are left out).
    pub stacks: Vec<ProfileStack>,
    /// The executable mappings the frames lie in, with build-ids.
    pub mappings: Vec<ModuleMapping>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileStack {
    pub kind: ResourceKind,
    /// Outstanding items and bytes (bytes are 0 for handles).
    pub count: u64,
    pub bytes: u64,
    /// Innermost first, as in the report.
    pub frames: Vec<StackFrame>,
}

impl ProfileStack {
    /// What a flame graph of this kind weighs: bytes for heap, else handles.
    pub fn weight(&self) -> u64 {
        if self.kind == ResourceKind::Heap {
            self.bytes
        } else {
            self.count
        }
    }
}

/// An executable mapping of a module in the traced process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleMapping {
    /// As frames name the module (`StackFrame::module`).
    pub path: String,
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// GNU build-id, lower-case hex.
    pub build_id: Option<String>,
}

impl ModuleMapping {
    /// Whether a frame of `path` at return address `address` lies here (its call instruction does).
    pub fn contains(&self, path: &str, address: u64) -> bool {
        self.path == path && (self.start..self.end).contains(&address.saturating_sub(1))
    }
}

/// Collects stacks while a report is built.
#[derive(Default)]
pub struct ProfileBuilder {
    stacks: Vec<ProfileStack>,
}

impl ProfileBuilder {
    /// A stack in the sites; `frames` is called only when it holds something.
    pub fn add(&mut self, kind: ResourceKind, c: &StackCounters, frames: impl FnOnce() -> Vec<StackFrame>) {
        if c.outstanding > 0 {
            self.stacks.push(ProfileStack { kind, count: c.outstanding, bytes: c.outstanding_bytes, frames: frames() });
        }
    }

    /// The profile, with the mapping of every frame found in the processes' maps.
    pub fn finish(self, images: &[Arc<ProcessMaps>]) -> Profile {
        let mut mappings: Vec<ModuleMapping> = Vec::new();
        for f in self.stacks.iter().flat_map(|s| &s.frames) {
            if mappings.iter().any(|m| m.contains(&f.module, f.address)) {
                continue;
            }
            let probe = f.address.saturating_sub(1);
            let found = images
                .iter()
                .filter_map(|maps| maps.find(probe))
                .find(|m| m.path.as_deref().is_some_and(|p| p.to_string_lossy() == f.module.as_str()));
            if let Some(m) = found {
                mappings.push(ModuleMapping {
                    path: f.module.clone(),
                    start: m.start,
                    end: m.end,
                    offset: m.offset,
                    build_id: m.build_id.as_deref().map(hex),
                });
            }
        }
        Profile { stacks: self.stacks, mappings }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
