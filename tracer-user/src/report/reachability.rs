//! valgrind's leak classes in reports: per site and in totals, from the
//! last reachability scan of each process (reach/), and which of them fail
//! the gate (`--leak-kinds`, valgrind's `--errors-for-leak-kinds`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::aggregate::{ResourceKind, StackCounters, StackId};
use crate::reach::{ByClass, Class, ScanResult};

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

/// The snapshot's scans, by stack.
#[derive(Default)]
pub struct ScanTable {
    per_stack: HashMap<StackId, ByClass>,
    owned: HashMap<StackId, u64>,
    pub infos: Vec<ScanInfo>,
}

impl ScanTable {
    pub fn new(scans: &[Arc<ScanResult>]) -> Self {
        let mut t = Self::default();
        for s in scans {
            t.per_stack.extend(s.per_stack.iter().map(|(k, v)| (*k, *v)));
            t.owned.extend(s.owned_by_lost.iter().map(|(k, v)| (*k, *v)));
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
        let by = self.per_stack.get(&stack).copied().unwrap_or_default();
        let amount = |(n, b): (u64, u64)| Amount { count: n * scale, bytes: b * scale };
        r.definite = amount(by[Class::Definite as usize]);
        r.indirect = amount(by[Class::Indirect as usize]);
        r.possible = amount(by[Class::Possible as usize]);
        r.reachable = amount(by[Class::Reachable as usize]);
        let seen = by.iter().fold((0, 0), |a, x| (a.0 + x.0 * scale, a.1 + x.1 * scale));
        r.unscanned = Amount { count: c.outstanding.saturating_sub(seen.0), bytes: c.outstanding_bytes.saturating_sub(seen.1) };
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
