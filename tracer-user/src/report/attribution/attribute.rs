//! Choosing a stack's call site: the innermost frame inside `--focus`, else
//! the first frame that is neither runtime, nor an allocation wrapper, nor
//! in a system shared library.
//! Frames and locations are interned: a resolved stack is a list of ids, so
//! tens of thousands of stacks cost a few hundred bytes each.

use std::collections::HashMap;

use crate::aggregate::{Origin, ResourceKind, Snapshot, StackId};
use crate::symbolize::jit::is_javascript;
use crate::symbolize::{symbolize_stack, Frame, StackCalls, Symbolizer};

use super::focus::Focus;
use super::javascript::{js_site, JsNotes};
use super::provenance::reaches_user;
use super::system::is_passed_over;
use super::wrappers::is_wrapper;
use super::Attribution;
use crate::report::model::{FocusReport, Location, SiteFrom, StackFrame};

/// One stack, resolved: interned frame ids, innermost first.
#[derive(Debug, Clone)]
pub struct Resolved {
    frames: Box<[u32]>,
    /// The site's frame id; None when the stack is empty.
    site: Option<u32>,
    /// A frame matched `--focus` (always true without one).
    pub in_focus: bool,
    /// Why the stack ends before its outermost frame, when it does.
    pub truncated: Option<String>,
    /// It reaches the user's code (see [`reaches_user`]).
    user: bool,
    /// A descriptor of a libuv handle: where the handle (and an accepted
    /// connection's server) was created, and which stack named the site.
    pub origin: Option<Origin>,
    pub from: SiteFrom,
}

/// The site of a stack without frames.
fn no_stack() -> Location {
    Location { module: "[unknown]".into(), label: "[no stack]".into(), ..Location::default() }
}

/// Sites are resolved once per stack: the stack table only grows and stack
/// ids are dense, so the cache is a vector indexed by id.
#[derive(Default)]
pub struct SiteCache {
    sym: Symbolizer,
    calls: StackCalls,
    /// Interned frames with their location id.
    frames: Vec<(Frame, u32)>,
    frame_ids: HashMap<Frame, u32>,
    locations: Vec<Location>,
    location_ids: HashMap<Location, u32>,
    resolved: Vec<Resolved>,
    focus: Option<Focus>,
    /// Images whose program's compilation directory anchors the focus.
    anchored: Vec<bool>,
    /// Stacks through V8 whose JavaScript could not be named.
    js_notes: JsNotes,
}

/// The location of a frame: `function (file:line)`; `function+0xOFF` when
/// no line is known (each call site its own); `module+0xOFF` without a name.
fn location_of(f: &Frame) -> Location {
    let label = match (&f.function, f.line, f.symbol_offset) {
        (Some(func), None, Some(off)) => format!("{func}+{off:#x}"),
        (Some(func), _, _) => func.to_string(),
        (None, _, _) => f.unresolved_label(),
    };
    Location {
        function: f.function.as_deref().map(str::to_owned),
        file: f.file.as_deref().map(str::to_owned),
        line: f.line,
        column: f.column.filter(|_| is_javascript(f)),
        line_is_function_start: f.line_is_function_start,
        module: f.module.to_string(),
        label,
    }
}

impl SiteCache {
    /// Stacks resolved so far: a snapshot need only carry the ones after.
    pub fn len(&self) -> usize {
        self.resolved.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resolved.is_empty()
    }

    fn intern(&mut self, f: Frame) -> u32 {
        if let Some(&id) = self.frame_ids.get(&f) {
            return id;
        }
        let loc = location_of(&f);
        let loc_id = match self.location_ids.get(&loc) {
            Some(&id) => id,
            None => {
                let id = self.locations.len() as u32;
                self.locations.push(loc.clone());
                self.location_ids.insert(loc, id);
                id
            }
        };
        let id = self.frames.len() as u32;
        self.frames.push((f.clone(), loc_id));
        self.frame_ids.insert(f, id);
        id
    }

    /// Resolves the snapshot's new stacks (in id order, following those cached).
    pub fn update(&mut self, snap: &Snapshot, attribution: &Attribution) {
        if let (None, Some(given)) = (&self.focus, &attribution.focus) {
            self.focus = Some(Focus::new(given, std::env::current_dir().ok().as_deref()));
        }
        self.anchor_focus(snap);
        for s in &snap.new_stacks {
            if s.id.0 as usize != self.resolved.len() {
                continue; // already resolved (or a gap, which a snapshot never leaves)
            }
            let maps = &snap.images[s.image as usize];
            let symbolized = symbolize_stack(&mut self.sym, &mut self.calls, maps, &s.frames, s.end.exact, s.kind == ResourceKind::Heap);
            let truncated = s.end.is_truncated().then(|| {
                let last = symbolized.last().map(|f| f.function.as_deref().map_or_else(|| f.unresolved_label(), str::to_owned));
                format!("{} (after {})", s.end.stop.describe(), last.as_deref().unwrap_or("no frame"))
            });
            self.js_notes.note(&symbolized, s.end.stop == tracer_common::StopReason::NoRule);
            let (site, in_focus) = choose_site(&symbolized, attribution, self.focus.as_mut());
            let user = reaches_user(&symbolized, attribution, self.focus.as_mut());
            let ids: Box<[u32]> = symbolized.into_iter().map(|f| self.intern(f)).collect();
            let site = site.map(|i| ids[i]);
            let own = Resolved { frames: ids, site, in_focus, truncated, user, origin: s.origin, from: SiteFrom::Opened };
            let resolved = self.named_by_origin(own);
            self.resolved.push(resolved);
        }
    }

    /// A descriptor of a handle whose own stack does not reach the user's
    /// code takes its site from where the handle, or its server, was created.
    fn named_by_origin(&self, mut r: Resolved) -> Resolved {
        let Some(origin) = r.origin.filter(|_| !r.user) else { return r };
        let candidates = [(Some(origin.created), SiteFrom::Created), (origin.server, SiteFrom::Server)];
        let by = candidates.into_iter().find_map(|(id, from)| Some((self.get(id?).filter(|c| c.user)?, from)));
        if let Some((c, from)) = by {
            (r.site, r.in_focus, r.user, r.from) = (c.site, c.in_focus, true, from);
        }
        r
    }

    /// A relative focus is also anchored at each program's compilation directory.
    fn anchor_focus(&mut self, snap: &Snapshot) {
        let Some(focus) = self.focus.as_mut() else { return };
        self.anchored.resize(snap.images.len(), false);
        for (i, maps) in snap.images.iter().enumerate() {
            if !self.anchored[i] {
                if let Some(dir) = self.sym.main_comp_dir(maps) {
                    focus.add_comp_dir(&dir);
                    self.anchored[i] = true;
                }
            }
        }
    }

    pub fn get(&self, id: StackId) -> Option<&Resolved> {
        self.resolved.get(id.0 as usize)
    }

    /// The site's location id: stacks with the same one are one site.
    pub fn site_key(&self, r: &Resolved) -> Option<u32> {
        r.site.map(|f| self.frames[f as usize].1)
    }

    pub fn location(&self, r: &Resolved) -> Location {
        self.site_key(r).map_or_else(no_stack, |l| self.locations[l as usize].clone())
    }

    /// The stack's frames, innermost first.
    pub fn frames<'a>(&'a self, r: &'a Resolved) -> impl Iterator<Item = &'a Frame> + Clone + 'a {
        r.frames.iter().map(|&i| &self.frames[i as usize].0)
    }

    pub fn stack(&self, r: &Resolved) -> Vec<StackFrame> {
        self.frames(r)
            .map(|f| StackFrame {
                function: f.function.as_deref().map(str::to_owned),
                file: f.file.as_deref().map(str::to_owned),
                line: f.line,
                column: f.column,
                line_is_function_start: f.line_is_function_start,
                module: f.module.to_string(),
                address: f.address,
                module_offset: f.module_offset,
                inlined: f.inlined,
                inferred: f.inferred,
            })
            .collect()
    }

    /// What the focus resolved to and matched (None without `--focus`).
    pub fn focus_report(&self) -> Option<FocusReport> {
        self.focus.as_ref().map(Focus::report)
    }

    /// Modules and JIT symbol files that could not be read, JavaScript
    /// frames that could not be named: the report's warnings.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.sym.warnings().into_iter().chain(self.js_notes.warnings())
    }
}

/// The index of the site's frame, and whether it is inside the focus.
pub fn choose_site(frames: &[Frame], attribution: &Attribution, focus: Option<&mut Focus>) -> (Option<usize>, bool) {
    let outside = || {
        let alloc = attribution.allocator.as_deref();
        let wrapper = |f: &Frame| is_wrapper(f, alloc, &attribution.wrappers);
        let skipped = |f: &Frame| wrapper(f) || is_passed_over(f);
        js_site(frames, skipped)
            .or_else(|| frames.iter().position(|f| !skipped(f)))
            // All in the system's libraries (a thread of libcurl's own, a
            // library's constructor): the first of them.
            .or_else(|| frames.iter().position(|f| !wrapper(f)))
    };
    match focus {
        Some(focus) => match frames.iter().position(|f| focus.matches(f)) {
            Some(i) => (Some(i), true),
            None => (outside().or((!frames.is_empty()).then_some(0)), false),
        },
        None => (outside().or((!frames.is_empty()).then_some(0)), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::attribution::is_user_frame;

    fn frame(function: &str, file: &str, module: &str) -> Frame {
        Frame {
            address: 0x1000,
            module: module.into(),
            module_offset: 0x10,
            function: (!function.is_empty()).then(|| function.into()),
            file: (!file.is_empty()).then(|| file.into()),
            line: Some(7),
            ..Frame::default()
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
    fn without_focus_the_first_frame_outside_the_runtime_is_the_site() {
        assert_eq!(choose_site(&stack(), &Attribution::default(), None), (Some(1), true));
    }

    #[test]
    fn focus_picks_the_innermost_frame_inside_it() {
        let mut focus = Focus::new("fixtures/net/", Some(std::path::Path::new("/src")));
        assert_eq!(choose_site(&stack(), &Attribution::default(), Some(&mut focus)), (Some(2), true));
        let mut nowhere = Focus::new("nowhere/", Some(std::path::Path::new("/src")));
        assert_eq!(choose_site(&stack(), &Attribution::default(), Some(&mut nowhere)), (Some(1), false));
    }

    #[test]
    fn the_allocator_and_named_wrappers_are_never_the_site() {
        let mut s = stack();
        s.insert(0, frame("je_malloc", "", "/usr/lib/libjemalloc.so.2"));
        let a = Attribution { allocator: Some("/usr/lib/libjemalloc.so.2".into()), ..Attribution::default() };
        assert_eq!(choose_site(&s, &a, None).0, Some(2));
        let a = Attribution { wrappers: vec!["helper".into()], ..a };
        assert_eq!(choose_site(&s, &a, None).0, Some(3));
        assert_eq!(choose_site(&[], &a, None).0, None);
    }

    /// A C program on a distribution's stripped libuv, installed under /usr/lib.
    fn on_libuv(callback: &str) -> Vec<Frame> {
        let libuv =
            |offset| Frame { function: None, line: None, module_offset: offset, ..frame("", "", "/usr/lib/x86_64-linux-gnu/libuv.so.1") };
        let exe = |function| Frame { executable: true, ..frame(function, "/src/uv_sites.c", "/usr/lib/app/uv_sites") };
        let mut s = vec![frame("socket", "", "/usr/lib/x86_64-linux-gnu/libc.so.6"), libuv(0xfe6f), libuv(0x10200)];
        if callback != "main" {
            s.extend([exe(callback), libuv(0x9000), libuv(0x9400)]);
        }
        s.push(exe("main"));
        s
    }

    #[test]
    fn without_focus_the_system_s_libraries_are_not_sites() {
        let a = Attribution::default();
        let (dial, listen) = (on_libuv("dial_later"), on_libuv("main"));
        assert_eq!(choose_site(&dial, &a, None), (Some(3), true));
        assert_eq!(choose_site(&listen, &a, None), (Some(3), true));
        assert_ne!(location_of(&dial[3]), location_of(&listen[3]), "two call sites, not libuv.so.1+0xfe6f");
        let mut not_the_exe = listen.clone();
        not_the_exe[3].executable = false;
        assert_eq!(choose_site(&not_the_exe, &a, None).0, Some(1), "only system libraries: the first frame outside the runtime");
        let astray = [&listen[..3], &[Frame { module: "[unknown]".into(), ..Frame::default() }]].concat();
        assert_eq!(choose_site(&astray, &a, None).0, Some(1), "a walk gone astray beyond them is not a site either");
        let mut focus = Focus::new("libuv.so.1", None);
        assert_eq!(choose_site(&dial, &a, Some(&mut focus)), (Some(1), true), "--focus still reaches into them");
        assert!(!is_user_frame(&dial[1]) && is_user_frame(&dial[3]));
    }

    #[test]
    fn labels_tell_call_sites_apart() {
        let mut f = frame("zmalloc", "", "/usr/bin/redis-server");
        f.line = None;
        f.symbol_offset = Some(0x1a);
        assert_eq!(location_of(&f).label, "zmalloc+0x1a", "symbols only: the offset names the call site");
        f.function = None;
        assert_eq!(location_of(&f).label, "redis-server+0x10");
        assert_eq!(location_of(&frame("helper", "/src/u.c", "/bin/app")).label, "helper");
    }
}
