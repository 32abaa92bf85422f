//! Choosing a stack's call site: the innermost frame inside `--focus`, else
//! the first frame outside libc and the allocator.

use crate::aggregate::{ResourceKind, Snapshot, StackId};
use crate::symbolize::{symbolize_stack, Frame, StackCalls, Symbolizer};

use super::model::{Location, StackFrame};

/// What a focus matches: a module path or a source path, by substring, so
/// `fixtures/net/` matches `/src/leaktrace/fixtures/net/net_socket.c`.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    pub focus: Option<String>,
    /// The allocator's module path (frames inside it are never the site).
    pub allocator: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub site: Location,
    /// A frame matched `--focus` (always true without one).
    pub in_focus: bool,
    pub stack: Vec<StackFrame>,
    /// Why the stack ends before its outermost frame, when it does.
    pub truncated: Option<String>,
}

/// Sites are resolved once per stack: the stack table only grows and stack
/// ids are dense, so the cache is a vector indexed by id.
#[derive(Default)]
pub struct SiteCache {
    sym: Symbolizer,
    calls: StackCalls,
    resolved: Vec<Resolved>,
}

impl SiteCache {
    /// Stacks resolved so far: a snapshot need only carry the ones after.
    pub fn len(&self) -> usize {
        self.resolved.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resolved.is_empty()
    }

    /// Resolves the snapshot's new stacks (in id order, following those cached).
    pub fn update(&mut self, snap: &Snapshot, attribution: &Attribution) {
        for s in &snap.new_stacks {
            if s.id.0 as usize != self.resolved.len() {
                continue; // already resolved (or a gap, which a snapshot never leaves)
            }
            let maps = &snap.images[s.image as usize];
            let symbolized = symbolize_stack(&mut self.sym, &mut self.calls, maps, &s.frames, s.end.exact, s.kind == ResourceKind::Heap);
            let truncated = s.end.is_truncated().then(|| {
                let last = symbolized.last().map(|f| f.function.clone().unwrap_or_else(|| f.unresolved_label()));
                format!("{} (after {})", s.end.stop.describe(), last.as_deref().unwrap_or("no frame"))
            });
            self.resolved.push(attribute(&symbolized, attribution, truncated));
        }
    }

    pub fn get(&self, id: StackId) -> Option<&Resolved> {
        self.resolved.get(id.0 as usize)
    }

    /// Modules that could not be read, for the report's warnings.
    pub fn warnings(&self) -> &[String] {
        self.sym.warnings()
    }
}

fn is_runtime(frame: &Frame, attribution: &Attribution) -> bool {
    let base = frame.module.rsplit('/').next().unwrap_or("");
    base.starts_with("libc.so")
        || base.starts_with("libc-")
        || base.starts_with("ld-linux")
        || attribution.allocator.as_deref() == Some(frame.module.as_str())
}

fn matches_focus(frame: &Frame, focus: &str) -> bool {
    frame.module.contains(focus) || frame.file.as_deref().is_some_and(|f| f.contains(focus))
}

pub fn attribute(frames: &[Frame], attribution: &Attribution, truncated: Option<String>) -> Resolved {
    let stack: Vec<StackFrame> = frames
        .iter()
        .map(|f| StackFrame {
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
            module: f.module.clone(),
            address: f.address,
            inlined: f.inlined,
            inferred: f.inferred,
        })
        .collect();
    let (site, in_focus) = match &attribution.focus {
        Some(focus) => match frames.iter().find(|f| matches_focus(f, focus)) {
            Some(f) => (Some(f), true),
            None => (frames.iter().find(|f| !is_runtime(f, attribution)), false),
        },
        None => (frames.iter().find(|f| !is_runtime(f, attribution)).or(frames.first()), true),
    };
    let site =
        site.map(location).unwrap_or_else(|| Location { module: "[unknown]".into(), label: "[no stack]".into(), ..Location::default() });
    Resolved { site, in_focus, stack, truncated }
}

fn location(f: &Frame) -> Location {
    Location {
        function: f.function.clone(),
        file: f.file.clone(),
        line: f.line,
        module: f.module.clone(),
        label: f.function.clone().unwrap_or_else(|| f.unresolved_label()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: &str, module: &str) -> Frame {
        Frame {
            address: 0x1000,
            module: module.into(),
            module_offset: 0x10,
            function: (!function.is_empty()).then(|| function.into()),
            file: (!file.is_empty()).then(|| file.into()),
            line: Some(7),
            column: None,
            inlined: false,
            inferred: false,
        }
    }

    fn stack() -> Vec<Frame> {
        vec![
            frame("strdup", "", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            frame("helper", "/src/lib/util.c", "/opt/app/bin/app"),
            frame("js_socket_connect", "/src/fixtures/net/net_socket.c", "/opt/app/bin/app"),
            frame("main", "/src/fixtures/net/net_driver.c", "/opt/app/bin/app"),
        ]
    }

    #[test]
    fn without_focus_the_first_frame_outside_libc_is_the_site() {
        let r = attribute(&stack(), &Attribution::default(), None);
        assert_eq!(r.site.function.as_deref(), Some("helper"));
        assert!(r.in_focus);
        assert_eq!(r.stack.len(), 4);
    }

    #[test]
    fn focus_picks_the_innermost_frame_inside_it() {
        let a = Attribution { focus: Some("fixtures/net/".into()), allocator: None };
        let r = attribute(&stack(), &a, None);
        assert_eq!(r.site.function.as_deref(), Some("js_socket_connect"));
        assert_eq!(r.site.line, Some(7));
        assert!(r.in_focus);
    }

    #[test]
    fn a_stack_outside_the_focus_is_marked() {
        let a = Attribution { focus: Some("nowhere/".into()), allocator: None };
        let r = attribute(&stack(), &a, None);
        assert!(!r.in_focus);
    }

    #[test]
    fn the_allocator_module_is_never_the_site() {
        let mut s = stack();
        s.insert(0, frame("je_malloc", "", "/usr/lib/libjemalloc.so.2"));
        let a = Attribution { focus: None, allocator: Some("/usr/lib/libjemalloc.so.2".into()) };
        assert_eq!(attribute(&s, &a, None).site.function.as_deref(), Some("helper"));
    }

    #[test]
    fn unresolved_frames_keep_a_label() {
        let s = vec![frame("", "", "/opt/app/bin/app")];
        let r = attribute(&s, &Attribution::default(), Some("stack memory unreadable (after app+0x10)".into()));
        assert_eq!(r.site.function, None);
        assert!(r.site.label.contains("app+0x"), "{}", r.site.label);
        assert!(r.truncated.is_some());
    }
}
