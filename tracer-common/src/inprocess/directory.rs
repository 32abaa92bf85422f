//! The module directory and the unwind tables the recorders read:
//! leaktrace writes them (one writer), published slot by slot.

use core::sync::atomic::Ordering;

use super::{dir_hash, DirSlot, Shared};
use crate::unwind::{ModuleKey, ModuleRows, UnwindRow};

impl Shared {
    /// The rows of `key`'s module, if leaktrace has published them.
    #[inline(always)]
    pub fn module(&self, key: &ModuleKey) -> Option<ModuleRows> {
        let mut i = dir_hash(key, self.dir_slots);
        for _ in 0..self.dir_slots {
            // SAFETY: i < dir_slots.
            let slot = unsafe { &*self.dir.add(i as usize) };
            if slot.ready.load(Ordering::Acquire) == 0 {
                return None;
            }
            if slot.key == *key {
                return Some(slot.rows);
            }
            i = (i + 1) & (self.dir_slots - 1);
        }
        None
    }

    /// Publishes a module's rows (leaktrace only, one writer). False when the directory is full.
    pub fn publish(&self, key: ModuleKey, rows: ModuleRows) -> bool {
        let used = &self.header().dir_used;
        let mut i = dir_hash(&key, self.dir_slots);
        for _ in 0..self.dir_slots {
            let slot = self.dir.wrapping_add(i as usize) as *mut DirSlot;
            // SAFETY: i < dir_slots; only this writer writes slots.
            unsafe {
                if (*slot).ready.load(Ordering::Relaxed) == 0 {
                    // Keep one slot empty: a search always ends.
                    if used.load(Ordering::Relaxed) + 1 >= self.dir_slots {
                        return false;
                    }
                    used.fetch_add(1, Ordering::Relaxed);
                    (*slot).key = key;
                    (*slot).rows = rows;
                    (*slot).ready.store(1, Ordering::Release);
                    return true;
                }
                if (*slot).key == key {
                    return true;
                }
            }
            i = (i + 1) & (self.dir_slots - 1);
        }
        false
    }

    /// Row `i` of the shared row table.
    #[inline(always)]
    pub fn row(&self, i: u32) -> Option<UnwindRow> {
        // SAFETY: bounds-checked; rows are written before their module is published.
        (u64::from(i) < self.rows_capacity).then(|| unsafe { self.rows.add(i as usize).read() })
    }

    /// Entry `i` of the shared page index.
    #[inline(always)]
    pub fn page(&self, i: u32) -> Option<u32> {
        // SAFETY: bounds-checked, as above.
        (u64::from(i) < self.pages_capacity).then(|| unsafe { self.pages.add(i as usize).read() })
    }

    /// Writable rows and pages (leaktrace only, before it publishes them).
    ///
    /// # Safety
    /// One writer; the slices' elements are published only afterwards.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn tables_mut(&self) -> (&mut [UnwindRow], &mut [u32]) {
        // SAFETY: per the contract; sizes checked at `new`.
        unsafe {
            (
                core::slice::from_raw_parts_mut(self.rows as *mut UnwindRow, self.rows_capacity as usize),
                core::slice::from_raw_parts_mut(self.pages as *mut u32, self.pages_capacity as usize),
            )
        }
    }
}
