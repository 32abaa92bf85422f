//! valgrind's leak classes in reports: per site and in totals, from the
//! last reachability scan of each process (reach/), and which of them fail
//! the gate (`--leak-kinds`, valgrind's `--errors-for-leak-kinds`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::aggregate::{ResourceKind, StackCounters, StackId};
use crate::reach::{Class, ScanResult, StackClass};

/// Blocks (or descriptors) and their bytes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Amount {
    pub count: u64,
    pub bytes: u64,
}

impl Amount {
    fn add(&mut self, o: Amount) {
        self.count += o.count;
        self.bytes += o.bytes;
    }
}

/// What the outstanding blocks are, in valgrind's terms (README, "Lost or still reachable").
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Reachability {
    pub definite: Amount,
    pub indirect: Amount,
    pub possible: Amount,
    pub reachable: Amount,
    /// Outstanding beyond what the scan saw (acquired after it).
    pub unscanned: Amount,
    /// Descriptors whose number is found in a lost block and in no live one.
    pub owned_by_lost: u64,
}

impl Reachability {
    pub fn of(&self, c: Class) -> Amount {
        match c {
            Class::Definite => self.definite,
            Class::Indirect => self.indirect,
            Class::Possible => self.possible,
            Class::Reachable => self.reachable,
        }
    }

    pub fn add(&mut self, o: &Reachability) {
        self.definite.add(o.definite);
        self.indirect.add(o.indirect);
        self.possible.add(o.possible);
        self.reachable.add(o.reachable);
        self.unscanned.add(o.unscanned);
        self.owned_by_lost += o.owned_by_lost;
    }

    /// One process's blocks in its last scan's classes; `held`: what it
    /// holds now (unscanned: beyond what the scan saw).
    pub fn of_scan(scan: &ScanResult, held: Amount, scale: u64) -> Self {
        let mut r = Self { owned_by_lost: scan.owned_by_lost.values().sum(), ..Self::default() };
        let mut seen = Amount::default();
        for s in &scan.per_stack {
            let a = Amount { count: s.count * scale, bytes: s.bytes * scale };
            seen.add(a);
            r.class_mut(s.class).add(a);
        }
        r.unscanned = Amount { count: held.count.saturating_sub(seen.count), bytes: held.bytes.saturating_sub(seen.bytes) };
        r
    }

    fn class_mut(&mut self, c: Class) -> &mut Amount {
        match c {
            Class::Definite => &mut self.definite,
            Class::Indirect => &mut self.indirect,
            Class::Possible => &mut self.possible,
            Class::Reachable => &mut self.reachable,
        }
    }

    /// The non-zero classes in one line (the text report, the live view's detail).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [
            ("definitely lost", self.definite),
            ("indirectly lost", self.indirect),
            ("possibly lost", self.possible),
            ("still reachable", self.reachable),
            ("not scanned", self.unscanned),
        ]
        .iter()
        .filter(|(_, a)| a.count > 0)
        .map(|(name, a)| format!("{name} {} bytes in {}", a.bytes, a.count))
        .collect();
        if self.owned_by_lost > 0 {
            parts.push(format!("{} held by lost blocks (their number is in one)", self.owned_by_lost));
        }
        parts.join("; ")
    }

    /// What `kinds` selects, with what no scan saw (it counts until one does).
    pub fn selected(&self, kinds: LeakKinds) -> Amount {
        let mut a = self.unscanned;
        for c in Class::ALL.into_iter().filter(|&c| kinds.has(c)) {
            a.add(self.of(c));
        }
        a
    }
}

/// Adds `o` into an optional total.
pub fn add_into(total: &mut Option<Reachability>, o: &Option<Reachability>) {
    if let Some(o) = o {
        total.get_or_insert_with(Reachability::default).add(o);
    }
}

/// One scan, for the report: when and what it cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScanInfo {
    pub pid: u32,
    pub threads: u32,
    pub blocks: u64,
    /// Traced since its exec, every block known; else (attach, a fork) all
    /// its writable memory but the known blocks was a root.
    pub heap_known: bool,
    /// Bytes of roots and of blocks read, and those that could not be read.
    pub root_bytes: u64,
    pub block_bytes: u64,
    pub unreadable_bytes: u64,
    /// The scan's own memory (index, stacks, state, buffers).
    pub memory_bytes: u64,
    pub scan_ms: f64,
    /// How long the target was held stopped for it (`attach`; under `run` it is at its exit stop).
    pub stopped_ms: Option<f64>,
}

/// The snapshot's scans, by stack (the processes' scans added together:
/// a stack may allocate in several).
#[derive(Default)]
pub struct ScanTable {
    per_stack: Vec<StackClass>,
    owned: HashMap<StackId, u64>,
    pub infos: Vec<ScanInfo>,
}

impl ScanTable {
    pub fn new(scans: &[Arc<ScanResult>]) -> Self {
        let mut t = Self::default();
        for s in scans {
            t.per_stack.extend_from_slice(&s.per_stack);
            for (k, v) in &s.owned_by_lost {
                *t.owned.entry(*k).or_default() += v;
            }
            t.infos.push(ScanInfo {
                pid: s.pid,
                threads: s.threads,
                heap_known: s.heap_known,
                blocks: s.blocks,
                root_bytes: s.work.root_bytes,
                block_bytes: s.work.block_bytes,
                unreadable_bytes: s.work.unreadable_bytes,
                memory_bytes: s.work.memory_bytes,
                scan_ms: s.scan_ms,
                stopped_ms: s.stopped_ms,
            });
        }
        t.infos.sort_by_key(|i| i.pid);
        t.per_stack.sort_by_key(|s| s.stack);
        t
    }

    /// A stack's classes (counts and bytes scaled by `scale`), `None` without any scan.
    pub fn for_stack(&self, stack: StackId, kind: ResourceKind, c: &StackCounters, scale: u64) -> Option<Reachability> {
        if self.infos.is_empty() {
            return None;
        }
        let mut r = Reachability::default();
        if kind != ResourceKind::Heap {
            r.owned_by_lost = self.owned.get(&stack).copied().unwrap_or(0);
            return Some(r);
        }
        let first = self.per_stack.partition_point(|s| s.stack < stack);
        let mut seen = Amount::default();
        for s in self.per_stack[first..].iter().take_while(|s| s.stack == stack) {
            let a = Amount { count: s.count * scale, bytes: s.bytes * scale };
            seen.add(a);
            r.class_mut(s.class).add(a);
        }
        r.unscanned = Amount { count: c.outstanding.saturating_sub(seen.count), bytes: c.outstanding_bytes.saturating_sub(seen.bytes) };
        Some(r)
    }
}

/// Which classes of heap block fail the gate: valgrind's
/// `--errors-for-leak-kinds` names; by default definite and indirect, as
/// valgrind's and LeakSanitizer's. Blocks no scan saw always count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakKinds([bool; 4]);

impl Default for LeakKinds {
    fn default() -> Self {
        Self([true, true, false, false])
    }
}

impl LeakKinds {
    pub fn has(self, c: Class) -> bool {
        self.0[c as usize]
    }

    /// `definite,indirect`, `all` (the four classes) or `none`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut k = [false; 4];
        for word in s.split(',').map(str::trim) {
            match word {
                "all" => k = [true; 4],
                "none" => {}
                w => match Class::ALL.iter().find(|c| c.name() == w) {
                    Some(&c) => k[c as usize] = true,
                    None => return Err(format!("`{w}` is not a leak kind (definite, indirect, possible, reachable, all, none)")),
                },
            }
        }
        Ok(Self(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_kinds_parse_valgrinds_names() {
        let k = LeakKinds::parse("definite, indirect").unwrap();
        assert!(k.has(Class::Definite) && k.has(Class::Indirect) && !k.has(Class::Possible) && !k.has(Class::Reachable));
        assert!(LeakKinds::parse("all").unwrap().has(Class::Reachable));
        assert!(!LeakKinds::parse("none").unwrap().has(Class::Definite));
        assert!(LeakKinds::parse("definite,lost").unwrap_err().contains("`lost`"));
        assert_eq!(LeakKinds::default(), k, "valgrind's default for errors");
    }

    #[test]
    fn the_selection_counts_what_no_scan_saw() {
        let r = Reachability {
            definite: Amount { count: 1, bytes: 10 },
            reachable: Amount { count: 2, bytes: 20 },
            unscanned: Amount { count: 3, bytes: 30 },
            ..Reachability::default()
        };
        assert_eq!(r.selected(LeakKinds::parse("definite").unwrap()), Amount { count: 4, bytes: 40 });
        assert_eq!(r.selected(LeakKinds::parse("none").unwrap()), Amount { count: 3, bytes: 30 });
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn a_stack_that_allocated_in_two_processes_adds_both_scans() {
        let (s, other) = (StackId(7), StackId(8));
        let scan = |pid, class, count, bytes| {
            Arc::new(ScanResult {
                pid,
                per_stack: vec![StackClass { stack: s, class, count, bytes }, StackClass { stack: other, class, count: 1, bytes: 1 }],
                ..ScanResult::default()
            })
        };
        let t = ScanTable::new(&[scan(1, Class::Definite, 1, 10), scan(2, Class::Reachable, 2, 20)]);
        let c = StackCounters { outstanding: 4, outstanding_bytes: 40, ..StackCounters::default() };
        let r = t.for_stack(s, ResourceKind::Heap, &c, 1).unwrap();
        assert_eq!((r.definite, r.reachable), (Amount { count: 1, bytes: 10 }, Amount { count: 2, bytes: 20 }));
        assert_eq!(r.unscanned, Amount { count: 1, bytes: 10 }, "one block acquired after the scans");
        assert!(ScanTable::new(&[]).for_stack(s, ResourceKind::Heap, &c, 1).is_none());
    }
}
