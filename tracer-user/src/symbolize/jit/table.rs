//! JIT code ranges with their names. Code objects never overlap while they
//! live, so a range that overlaps an earlier one means the earlier code is
//! gone: the later entry wins and the earlier one is dropped whole.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::v8;

/// A code name, parsed once however often it is logged.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    pub function: Arc<str>,
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// Distinct names of one process, each parsed once.
#[derive(Default)]
pub struct Names {
    by_text: HashMap<Box<str>, Arc<Named>>,
    files: HashMap<Box<str>, Arc<str>>,
}

impl Names {
    pub fn get(&mut self, text: &str) -> Arc<Named> {
        if let Some(n) = self.by_text.get(text) {
            return n.clone();
        }
        let parsed = v8::parse(text);
        let named = Arc::new(Named {
            function: Arc::from(parsed.function),
            file: parsed.file.map(|f| self.file(&f)),
            line: parsed.line,
            column: parsed.column,
        });
        self.by_text.insert(text.into(), named.clone());
        named
    }

    /// A source file's name, shared.
    pub fn file(&mut self, name: &str) -> Arc<str> {
        if let Some(f) = self.files.get(name) {
            return f.clone();
        }
        let f: Arc<str> = Arc::from(name);
        self.files.insert(name.into(), f.clone());
        f
    }
}

/// A source position inside JIT code (jitdump's debug information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugLine {
    pub pc: u64,
    pub line: u32,
    pub column: u32,
    pub file: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Code {
    pub name: Arc<Named>,
    /// Source positions by address, when the runtime gave them.
    pub lines: Option<Arc<[DebugLine]>>,
}

impl Code {
    /// The source position of the instruction at `pc`: the last one at or before it.
    pub fn line_at(&self, pc: u64) -> Option<&DebugLine> {
        let lines = self.lines.as_deref()?;
        let i = lines.partition_point(|l| l.pc <= pc);
        i.checked_sub(1).map(|i| &lines[i])
    }
}

/// Code ranges by start address; none overlap.
#[derive(Default)]
pub struct CodeRanges {
    ranges: BTreeMap<u64, (u64, Code)>,
}

impl CodeRanges {
    /// Adds `[start, start + size)`, dropping every earlier range it overlaps.
    pub fn insert(&mut self, start: u64, size: u64, code: Code) {
        if size == 0 {
            return;
        }
        let end = start.saturating_add(size);
        let overlapped: Vec<u64> = self.ranges.range(..end).rev().take_while(|(_, (e, _))| *e > start).map(|(s, _)| *s).collect();
        for s in overlapped {
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, (end, code));
    }

    /// The range holding `addr`: its start and code.
    pub fn find(&self, addr: u64) -> Option<(u64, &Code)> {
        let (&start, (end, code)) = self.ranges.range(..=addr).next_back()?;
        (addr < *end).then_some((start, code))
    }

    /// Takes out the range starting at `start` (a code move).
    pub fn take(&mut self, start: u64) -> Option<Code> {
        self.ranges.remove(&start).map(|(_, c)| c)
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(names: &mut Names, text: &str) -> Code {
        Code { name: names.get(text), lines: None }
    }

    fn at(r: &CodeRanges, addr: u64) -> Option<(u64, String)> {
        r.find(addr).map(|(s, c)| (s, c.name.function.to_string()))
    }

    #[test]
    fn later_entries_replace_every_range_they_overlap() {
        let mut n = Names::default();
        let mut r = CodeRanges::default();
        r.insert(0x1000, 0x100, code(&mut n, "JS:~a /x.js:1:1"));
        r.insert(0x1100, 0x100, code(&mut n, "JS:~b /x.js:2:1"));
        r.insert(0x1300, 0x100, code(&mut n, "JS:~c /x.js:3:1"));
        assert_eq!(at(&r, 0x10ff), Some((0x1000, "a".into())));
        assert_eq!(at(&r, 0x1200), None, "between ranges");
        r.insert(0x1080, 0x100, code(&mut n, "JS:*d /x.js:4:1"));
        assert_eq!(at(&r, 0x1000), None, "a is gone whole");
        assert_eq!(at(&r, 0x1150), Some((0x1080, "d".into())));
        assert_eq!(at(&r, 0x1300), Some((0x1300, "c".into())));
        assert_eq!(r.len(), 2);
        r.insert(0x1300, 0x10, code(&mut n, "JS:~e /x.js:5:1"));
        assert_eq!(at(&r, 0x1305), Some((0x1300, "e".into())), "same start: the later wins");
        r.insert(0x2000, 0, code(&mut n, "JS:~empty /x.js:6:1"));
        assert_eq!(at(&r, 0x2000), None);
        assert!(Arc::ptr_eq(&n.get("JS:~a /x.js:1:1"), &n.get("JS:~a /x.js:1:1")), "parsed once");
    }

    #[test]
    fn debug_lines_name_the_instruction() {
        let mut n = Names::default();
        let f = n.file("/x.js");
        let line = |pc, line| DebugLine { pc, line, column: 1, file: f.clone() };
        let c = Code { name: n.get("JS:*f /x.js:1:1"), lines: Some(vec![line(0x10, 3), line(0x20, 5)].into()) };
        assert_eq!(c.line_at(0x8), None);
        assert_eq!(c.line_at(0x10).map(|l| l.line), Some(3));
        assert_eq!(c.line_at(0x2f).map(|l| l.line), Some(5));
    }
}
