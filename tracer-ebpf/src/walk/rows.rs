//! The tables userspace compiles from each module's CFI, and the search for
//! the row in force at a file offset.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use tracer_common::unwind::search_range;
use tracer_common::{ModuleKey, ModuleRows, UnwindRow};

/// Every loaded module's rows, each module's sorted by offset. Userspace sizes
/// it at load and writes rows through a memory mapping (BPF_F_MMAPABLE).
#[map]
pub static UNWIND_ROWS: Array<UnwindRow> = Array::with_max_entries(1, aya_ebpf::bindings::BPF_F_MMAPABLE);

/// Each module's page index (see `tracer_common::unwind::page_index`),
/// written like the rows; u64 elements, as the map lays out every element in 8 bytes.
#[map]
pub static UNWIND_PAGES: Array<u64> = Array::with_max_entries(1, aya_ebpf::bindings::BPF_F_MMAPABLE);

/// Loaded modules: which rows are theirs.
#[map]
pub static MODULES: HashMap<ModuleKey, ModuleRows> = HashMap::with_max_entries(8192, 0);

/// Steps of the binary search: enough for 16M rows (a page's rows take a few).
const SEARCH_STEPS: u32 = 24;

/// No row: [`lt_find_row`]'s answer when none covers the offset.
const NO_ROW: u64 = u64::MAX;

/// The row in force at file offset `target` among a module's rows, packed
/// in a u64 (its in-memory bytes), or [`NO_ROW`]. A global function: the
/// verifier checks it once, on its own, instead of at every frame of every
/// iteration of the walk.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_find_row(first: u32, count: u32, pages_first: u32, pages: u32, target: u64) -> u64 {
    let page = |p: u32| UNWIND_PAGES.get(pages_first.wrapping_add(p)).map(|&i| i as u32);
    let (lo, hi) = search_range(count, pages, target, page);
    let (mut lo, mut hi) = (first.wrapping_add(lo), first.wrapping_add(hi));
    for _ in 0..SEARCH_STEPS {
        if hi.wrapping_sub(lo) <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        let Some(row) = UNWIND_ROWS.get(mid) else { return NO_ROW };
        if u64::from(row.offset) <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    match UNWIND_ROWS.get(lo) {
        Some(row) if u64::from(row.offset) <= target => {
            u64::from(row.offset) | u64::from(row.cfa as u16) << 32 | u64::from(row.rbp as u8) << 48 | u64::from(row.kind) << 56
        }
        _ => NO_ROW,
    }
}

/// The row in force at `target` in the module `m`.
#[inline(always)]
pub fn find_row(m: &ModuleRows, target: u64) -> Option<UnwindRow> {
    let packed = lt_find_row(m.first, m.count, m.pages_first, m.pages, target);
    (packed != NO_ROW).then_some(UnwindRow {
        offset: packed as u32,
        cfa: (packed >> 32) as u16 as i16,
        rbp: (packed >> 48) as u8 as i8,
        kind: (packed >> 56) as u8,
    })
}
