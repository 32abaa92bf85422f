//! The stacks a profile format draws: the report's own profile, else one
//! made from its sites; and a frame's name in profiles.

use std::borrow::Cow;

use crate::report::model::{Report, StackFrame};
use crate::report::profile::{Profile, ProfileStack};

/// The report's own profile, else one made from its sites: each site's
/// largest stack standing for all of its stacks (totals are exact; the
/// callers of a site reached from several places are not).
pub fn of(report: &Report) -> Cow<'_, Profile> {
    if let Some(p) = &report.profile {
        return Cow::Borrowed(p);
    }
    let stacks = report
        .sites
        .iter()
        .filter(|s| s.count > 0)
        .map(|s| ProfileStack { kind: s.kind, count: s.count, bytes: s.bytes, frames: s.stack.clone() })
        .collect();
    Cow::Owned(Profile { stacks, mappings: Vec::new() })
}

/// A frame's name in profiles: its function, else `module+0xOFFSET`.
pub fn frame_name(f: &StackFrame) -> Cow<'_, str> {
    match &f.function {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("{}+{:#x}", f.module.rsplit('/').next().unwrap_or(&f.module), f.module_offset)),
    }
}
