//! The in-process recorder's shared memory: one file (a memfd leaktrace
//! creates) mapped by leaktrace and by every traced process whose heap the
//! recorder library follows.
//!
//! It holds a ring of records (the same [`crate::record`] layouts the eBPF
//! programs write), the unwind tables leaktrace compiles (rows and page
//! index, as the kernel walker reads them) and a directory of the modules
//! whose tables are in. Many processes write the ring, leaktrace alone reads
//! it; leaktrace alone writes the tables, the processes read them.
//!
//! No locks: a writer reserves its bytes with one atomic add, so a signal or
//! a fork at any point can leave a record unfinished but never a lock held.
//! Each record starts with a tag word holding its own position and state,
//! written last: the reader trusts a record only when its tag names the
//! position it expects and says committed.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

mod directory;
mod ring;

pub use ring::{Next, Reservation};

use crate::unwind::{ModuleKey, ModuleRows, UnwindRow};

pub const MAGIC: u64 = u64::from_le_bytes(*b"LKTRACE1");
pub const VERSION: u32 = 1;

/// `Header::flags`: children forked without exec go on recording.
pub const FOLLOW_FORKS: u32 = 1;

/// Bytes before the first table: the header and its cache lines.
pub const HEADER_BYTES: u64 = 4096;
/// Every record's prefix.
pub const PREFIX_BYTES: u64 = 16;
/// Records are padded to this.
pub const ALIGN: u64 = 16;

/// A record's state, the low two bits of its tag.
pub const RESERVED: u64 = 1;
pub const COMMITTED: u64 = 2;
/// Bytes no record uses (the end of the ring before a record that did not fit).
pub const PAD: u64 = 3;

/// A word on a cache line of its own: writers and the reader touch different ones.
#[repr(C, align(64))]
pub struct Line<T>(pub T);

#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub version: u32,
    pub flags: u32,
    pub ring_offset: u64,
    /// A power of two.
    pub ring_bytes: u64,
    pub dir_offset: u64,
    /// A power of two.
    pub dir_slots: u64,
    pub rows_offset: u64,
    pub rows_capacity: u64,
    pub pages_offset: u64,
    pub pages_capacity: u64,
    /// Frames per stack (`--stack-depth`).
    pub max_frames: u32,
    /// leaktrace's pid: a writer waiting for room gives up if it is gone.
    pub consumer_pid: u32,
    /// 0: the recorder records nothing (detached, or leaktrace is ending).
    pub enabled: Line<AtomicU32>,
    /// The next byte a writer reserves.
    pub head: Line<AtomicU64>,
    /// The next byte the reader reads.
    pub tail: Line<AtomicU64>,
    /// Times a writer found the ring full and waited.
    pub waits: Line<AtomicU64>,
    /// Records a writer could not write (leaktrace gone while it waited).
    pub dropped: AtomicU64,
    /// Processes that connected.
    pub connected: AtomicU64,
    /// Directory slots in use (leaktrace's count).
    pub dir_used: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Header>() as u64 <= HEADER_BYTES);

/// A module whose rows are in: written once, published by `ready`.
#[repr(C)]
pub struct DirSlot {
    pub ready: AtomicU32,
    pub _pad: u32,
    pub key: ModuleKey,
    pub rows: ModuleRows,
}

pub const DIR_SLOT_BYTES: u64 = core::mem::size_of::<DirSlot>() as u64;

/// Where each part lies in a file of the given sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ring_bytes: u64,
    pub dir_slots: u64,
    pub rows_capacity: u64,
    pub pages_capacity: u64,
}

impl Layout {
    pub const fn dir_offset(&self) -> u64 {
        HEADER_BYTES
    }
    pub const fn rows_offset(&self) -> u64 {
        page_up(self.dir_offset() + self.dir_slots * DIR_SLOT_BYTES)
    }
    pub const fn pages_offset(&self) -> u64 {
        page_up(self.rows_offset() + self.rows_capacity * core::mem::size_of::<UnwindRow>() as u64)
    }
    pub const fn ring_offset(&self) -> u64 {
        page_up(self.pages_offset() + self.pages_capacity * 4)
    }
    pub const fn total(&self) -> u64 {
        self.ring_offset() + self.ring_bytes
    }
}

const fn page_up(v: u64) -> u64 {
    (v + 4095) & !4095
}

/// The directory slot where the search for `key` starts.
#[inline(always)]
pub fn dir_hash(key: &ModuleKey, slots: u64) -> u64 {
    (key.ino.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.dev.rotate_left(29)).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 20 & (slots - 1)
}

/// A view of the shared file, mapped at `base`. Every access is bounds-checked
/// against the header's sizes, read once at `new`.
pub struct Shared {
    base: *mut u8,
    ring: *mut u8,
    mask: u64,
    dir: *const DirSlot,
    dir_slots: u64,
    rows: *const UnwindRow,
    rows_capacity: u64,
    pages: *const u32,
    pages_capacity: u64,
}

// SAFETY: every shared word is accessed through atomics or written before an
// atomic release that publishes it; the pointers are into one mapping that
// outlives the view.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `base` maps a whole file laid out by [`Shared::init`], `len` bytes long,
    /// for as long as the view lives.
    pub unsafe fn new(base: *mut u8, len: u64) -> Option<Self> {
        // SAFETY: the caller's mapping holds at least the header (checked first).
        unsafe {
            if len < HEADER_BYTES {
                return None;
            }
            let h = &*(base as *const Header);
            if h.magic != MAGIC || h.version != VERSION || !h.ring_bytes.is_power_of_two() || !h.dir_slots.is_power_of_two() {
                return None;
            }
            let fits = |off: u64, bytes: u64| off.checked_add(bytes).is_some_and(|end| end <= len);
            if !fits(h.ring_offset, h.ring_bytes)
                || !fits(h.dir_offset, h.dir_slots * DIR_SLOT_BYTES)
                || !fits(h.rows_offset, h.rows_capacity * 8)
                || !fits(h.pages_offset, h.pages_capacity * 4)
            {
                return None;
            }
            Some(Self {
                base,
                ring: base.add(h.ring_offset as usize),
                mask: h.ring_bytes - 1,
                dir: base.add(h.dir_offset as usize) as *const DirSlot,
                dir_slots: h.dir_slots,
                rows: base.add(h.rows_offset as usize) as *const UnwindRow,
                rows_capacity: h.rows_capacity,
                pages: base.add(h.pages_offset as usize) as *const u32,
                pages_capacity: h.pages_capacity,
            })
        }
    }

    /// Lays out a zeroed file of `layout.total()` bytes at `base`.
    ///
    /// # Safety
    /// `base` maps `layout.total()` writable zeroed bytes no one else uses yet.
    pub unsafe fn init(base: *mut u8, layout: &Layout, flags: u32, max_frames: u32, consumer_pid: u32) {
        // SAFETY: the caller's mapping starts with room for the header.
        let h = unsafe { &mut *(base as *mut Header) };
        h.version = VERSION;
        h.flags = flags;
        h.ring_offset = layout.ring_offset();
        h.ring_bytes = layout.ring_bytes;
        h.dir_offset = layout.dir_offset();
        h.dir_slots = layout.dir_slots;
        h.rows_offset = layout.rows_offset();
        h.rows_capacity = layout.rows_capacity;
        h.pages_offset = layout.pages_offset();
        h.pages_capacity = layout.pages_capacity;
        h.max_frames = max_frames;
        h.consumer_pid = consumer_pid;
        h.enabled.0.store(1, Ordering::Relaxed);
        // Last: a view refuses the file until the magic is there.
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&mut h.magic, MAGIC) };
    }

    pub fn header(&self) -> &Header {
        // SAFETY: checked at `new`.
        unsafe { &*(self.base as *const Header) }
    }

    pub fn enabled(&self) -> bool {
        self.header().enabled.0.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests;
