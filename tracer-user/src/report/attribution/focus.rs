//! `--focus PATH`: which frames are "the code you care about". A relative
//! path is resolved against the working directory and against the
//! compilation directory of the program's `main`; a frame is inside when its
//! source file or module path lies under one of those, whole path components
//! compared (`src/` never matches `/rustc/…/library/alloc/src/…`). A bare
//! name (`libleaky.so`, `net_socket.c`) also matches a module or source file
//! of that exact name. The report says what the focus resolved to and matched.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::report::model::FocusReport;
use crate::symbolize::Frame;

/// Distinct matched paths the report lists (the rest are counted).
const MATCHED_LISTED: usize = 16;

#[derive(Debug, Clone)]
pub struct Focus {
    given: String,
    relative: bool,
    anchors: BTreeSet<PathBuf>,
    /// The focus as one file name, when it has no `/`.
    bare: Option<String>,
    matched: BTreeSet<String>,
    matched_more: u64,
}

/// `a/./b/../c` to `a/c`, without touching the filesystem.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl Focus {
    pub fn new(given: &str, cwd: Option<&Path>) -> Self {
        let path = Path::new(given);
        let trimmed = given.trim_end_matches('/');
        let mut anchors = BTreeSet::new();
        if path.is_absolute() {
            anchors.insert(normalize(path));
        } else if let Some(cwd) = cwd {
            anchors.insert(normalize(&cwd.join(path)));
        }
        let bare = (!trimmed.is_empty() && !trimmed.contains('/')).then(|| trimmed.to_owned());
        Self { given: given.to_owned(), relative: !path.is_absolute(), anchors, bare, matched: BTreeSet::new(), matched_more: 0 }
    }

    /// Anchors a relative focus at a program's compilation directory too.
    pub fn add_comp_dir(&mut self, comp_dir: &str) {
        if self.relative && comp_dir.starts_with('/') {
            self.anchors.insert(normalize(&Path::new(comp_dir).join(&self.given)));
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        let p = Path::new(path);
        (p.is_absolute() && self.anchors.iter().any(|a| normalize(p).starts_with(a)))
            || self.bare.as_deref().is_some_and(|b| p.file_name().is_some_and(|n| n == b))
    }

    /// True when the frame's source file or module is inside the focus.
    pub fn matches(&mut self, frame: &Frame) -> bool {
        let hit = frame.file.as_deref().filter(|f| self.path_matches(f)).or_else(|| Some(&*frame.module).filter(|m| self.path_matches(m)));
        let Some(hit) = hit else { return false };
        if !self.matched.contains(hit) {
            if self.matched.len() < MATCHED_LISTED {
                self.matched.insert(hit.to_owned());
            } else {
                self.matched_more += 1;
            }
        }
        true
    }

    pub fn report(&self) -> FocusReport {
        FocusReport {
            given: self.given.clone(),
            resolved: self.anchors.iter().map(|a| a.display().to_string()).collect(),
            matched: self.matched.iter().cloned().collect(),
            matched_more: self.matched_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(file: Option<&str>, module: &str) -> Frame {
        Frame {
            address: 1,
            module: module.into(),
            function: Some("f".into()),
            file: file.map(Into::into),
            line: Some(1),
            ..Frame::default()
        }
    }

    #[test]
    fn a_relative_focus_is_anchored_and_matches_whole_components() {
        let mut f = Focus::new("src/", Some(Path::new("/home/me/app")));
        assert!(f.matches(&frame(Some("/home/me/app/src/main.rs"), "/home/me/app/target/app")));
        assert!(
            !f.matches(&frame(Some("/rustc/abc/library/alloc/src/raw_vec.rs"), "/home/me/app/target/app")),
            "not the standard library's src/"
        );
        assert!(!f.matches(&frame(Some("/home/me/app/srcx/a.rs"), "/x")), "whole components only");
        let mut g = Focus::new("fixtures/net", Some(Path::new("/elsewhere")));
        g.add_comp_dir("/build/tree");
        assert!(g.matches(&frame(Some("/build/tree/fixtures/net/../net/net_socket.c"), "/x")), "anchored at the comp dir, normalized");
        let r = g.report();
        assert_eq!(r.resolved, vec!["/build/tree/fixtures/net", "/elsewhere/fixtures/net"]);
        assert_eq!(r.matched, vec!["/build/tree/fixtures/net/../net/net_socket.c"]);
    }

    #[test]
    fn absolute_and_bare_names() {
        let mut f = Focus::new("/opt/lib/libleaky.so", None);
        assert!(f.matches(&frame(None, "/opt/lib/libleaky.so")));
        assert!(!f.matches(&frame(None, "/opt/lib/libleaky.so.2")));
        let mut b = Focus::new("libleaky.so", Some(Path::new("/nowhere")));
        assert!(b.matches(&frame(None, "/tmp/x/libleaky.so")));
        assert!(!b.matches(&frame(None, "/tmp/x/libleaky.so.1")));
        assert!(!b.matches(&frame(Some("relative/libleaky.c"), "/bin/app")));
    }
}
