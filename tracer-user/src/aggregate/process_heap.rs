//! One process's outstanding heap, as a view a fork can share: a frozen
//! table behind an `Arc` (shared by a process and the children it forked
//! without exec) under the process's own changes since (blocks added,
//! frozen blocks released). A child starts with what its parent held, and
//! a server forking hundreds of workers keeps one table of its master's
//! blocks, not one per worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::blocks::{Allocation, BlockTable};
use super::stacks::StackId;

/// A child is handed a copy of its parent's changes since the frozen table
/// while they are at most this part of it (1/SHARE_RATIO); past that the
/// parent freezes its whole view anew. Copying a few changes per child is
/// cheaper than a table; copying many would multiply them by the children.
const SHARE_RATIO: usize = 8;

/// Per stack: (blocks, bytes).
pub type StackTotals = HashMap<StackId, (u64, u64)>;

/// A table nobody changes while it is shared.
struct Frozen {
    table: BlockTable,
    /// What `table` holds per stack, so a child's counters are bumped per
    /// stack, not per block.
    per_stack: StackTotals,
}

impl Frozen {
    fn new(table: BlockTable) -> Self {
        let mut per_stack = StackTotals::new();
        table.iter().for_each(|(_, a)| add(&mut per_stack, a));
        Self { table, per_stack }
    }
}

fn add(t: &mut StackTotals, a: Allocation) {
    let e = t.entry(a.stack).or_default();
    e.0 += 1;
    e.1 += a.size;
}

fn sub(t: &mut StackTotals, a: Allocation) {
    if let Some(e) = t.get_mut(&a.stack) {
        e.0 -= 1;
        e.1 -= a.size;
        if e.0 == 0 {
            t.remove(&a.stack);
        }
    }
}

#[derive(Default)]
pub struct ProcHeap {
    base: Option<Arc<Frozen>>,
    /// Blocks acquired since `base` froze; none is also a block of `base`
    /// this view still holds (`hide` takes that one out first).
    added: BlockTable,
    /// Addresses of `base`'s blocks released since.
    removed: HashSet<u64, RandomState>,
    /// Outstanding (bytes, blocks) in the view.
    totals: (u64, u64),
}

impl ProcHeap {
    /// Room for `n` blocks before the table grows (untouched room costs no memory).
    pub fn with_capacity(n: usize) -> Self {
        Self { added: BlockTable::with_capacity(n), ..Self::default() }
    }

    fn frozen(&self, addr: u64) -> Option<Allocation> {
        let a = self.base.as_ref()?.table.get(addr)?;
        (!self.removed.contains(&addr)).then_some(a)
    }

    /// The block at `addr`.
    pub fn get(&self, addr: u64) -> Option<Allocation> {
        self.added.get(addr).or_else(|| self.frozen(addr))
    }

    /// Adds the block at `addr`; returns the one it replaces (whose free was never seen).
    pub fn insert(&mut self, addr: u64, a: Allocation) -> Option<Allocation> {
        let old = self.added.insert(addr, a).or_else(|| self.hide(addr));
        self.totals.0 += a.size;
        self.totals.1 += 1;
        if let Some(o) = old {
            self.totals.0 -= o.size;
            self.totals.1 -= 1;
        }
        old
    }

    pub fn remove(&mut self, addr: u64) -> Option<Allocation> {
        let old = self.added.remove(addr).or_else(|| self.hide(addr))?;
        self.totals.0 -= old.size;
        self.totals.1 -= 1;
        Some(old)
    }

    /// Takes the frozen block at `addr` out of this view only.
    fn hide(&mut self, addr: u64) -> Option<Allocation> {
        let a = self.frozen(addr)?;
        self.removed.insert(addr);
        Some(a)
    }

    /// Every block of the view, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Allocation)> + '_ {
        let frozen = self.base.iter().flat_map(|b| b.table.iter()).filter(|(addr, _)| !self.removed.contains(addr));
        self.added.iter().chain(frozen)
    }

    /// Outstanding (bytes, blocks).
    pub fn totals(&self) -> (u64, u64) {
        self.totals
    }

    /// What the view holds per stack, in time proportional to the stacks
    /// and the changes since the frozen table, not to the blocks.
    pub fn per_stack(&self) -> StackTotals {
        let Some(base) = &self.base else {
            let mut t = StackTotals::new();
            self.added.iter().for_each(|(_, a)| add(&mut t, a));
            return t;
        };
        let mut t = base.per_stack.clone();
        self.removed.iter().filter_map(|&addr| base.table.get(addr)).for_each(|a| sub(&mut t, a));
        self.added.iter().for_each(|(_, a)| add(&mut t, a));
        t
    }

    /// The view of a child forked now: the frozen table shared, the changes
    /// since copied while they are few.
    pub fn fork(&mut self) -> ProcHeap {
        self.freeze();
        ProcHeap { base: self.base.clone(), added: self.added.clone(), removed: self.removed.clone(), totals: self.totals }
    }

    fn freeze(&mut self) {
        let Some(base) = &mut self.base else {
            self.base = Some(Arc::new(Frozen::new(std::mem::take(&mut self.added))));
            return;
        };
        if self.added.is_empty() && self.removed.is_empty() {
            return;
        }
        let changes = self.added.len() + self.removed.len();
        if let Some(f) = Arc::get_mut(base) {
            // Nobody else holds it (the children it was frozen for have gone): changed in place.
            for addr in self.removed.drain() {
                if let Some(a) = f.table.remove(addr) {
                    sub(&mut f.per_stack, a);
                }
            }
            for (addr, a) in self.added.drain() {
                f.table.insert(addr, a);
                add(&mut f.per_stack, a);
            }
        } else if changes * SHARE_RATIO > base.table.len() {
            let mut table = BlockTable::with_capacity(self.totals.1 as usize);
            self.iter().for_each(|(addr, a)| _ = table.insert(addr, a));
            self.base = Some(Arc::new(Frozen::new(table)));
            (self.added, self.removed) = Default::default();
        }
    }
}

/// Calls `note` with every block some of `views` holds, a frozen table
/// shared by several of them walked once (a block they share, once).
pub fn each_held(views: &[&ProcHeap], mut note: impl FnMut(Allocation)) {
    let mut shared: HashMap<*const Frozen, Vec<&ProcHeap>> = HashMap::new();
    for v in views {
        v.added.iter().for_each(|(_, a)| note(a));
        if let Some(b) = &v.base {
            shared.entry(Arc::as_ptr(b)).or_default().push(v);
        }
    }
    for holders in shared.values() {
        let Some(base) = holders.first().and_then(|h| h.base.as_ref()) else { continue };
        for (addr, a) in base.table.iter() {
            if holders.iter().any(|h| !h.removed.contains(&addr)) {
                note(a);
            }
        }
    }
}

#[cfg(test)]
#[path = "process_heap_tests.rs"]
mod tests;
