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

/// Where a writer's record goes.
pub struct Reservation {
    pub pos: u64,
    pub payload: *mut u8,
    tag: *const AtomicU64,
}

impl Reservation {
    /// Publishes the record: the reader may take it from now on.
    #[inline(always)]
    pub fn commit(self) {
        // SAFETY: the prefix of our own reservation, inside the ring.
        unsafe { (*self.tag).store(self.pos << 2 | COMMITTED, Ordering::Release) };
    }
}

/// What the reader finds at its position.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    Empty,
    Record(&'a [u8]),
    Pad,
    /// Reserved by thread `tid` of `tgid`, not yet committed.
    Writing {
        tgid: u32,
        tid: u32,
    },
    /// Reserved, prefix not yet written.
    Unwritten,
}

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

    /// Reserves a record of `payload` bytes and writes its prefix (and the
    /// event header's tgid and tid, so a reader can tell a dead writer).
    /// `wait(n)` is called while the ring is full (n: times so far); false gives up.
    #[inline(always)]
    pub fn reserve(&self, payload: u64, tgid: u32, tid: u32, mut wait: impl FnMut(u64) -> bool) -> Option<Reservation> {
        let size = self.mask + 1;
        let total = (PREFIX_BYTES + payload + ALIGN - 1) & !(ALIGN - 1);
        if total > size / 4 {
            return None;
        }
        let h = self.header();
        loop {
            let pos = h.head.0.fetch_add(total, Ordering::Relaxed);
            let mut waited = 0;
            while pos + total - h.tail.0.load(Ordering::Acquire) > size {
                if !wait(waited) {
                    h.dropped.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                waited += 1;
            }
            if waited > 0 {
                h.waits.0.fetch_add(1, Ordering::Relaxed);
            }
            let off = pos & self.mask;
            // SAFETY: offsets are masked into the ring; the bytes are ours.
            unsafe {
                if off + total > size {
                    // It does not fit before the end: both pieces become padding.
                    self.prefix(off, pos, size - off, PAD);
                    self.prefix(0, pos + size - off, off + total - size, PAD);
                    continue;
                }
                let payload = self.ring.add((off + PREFIX_BYTES) as usize);
                (payload.add(4) as *mut u32).write(tgid);
                (payload.add(8) as *mut u32).write(tid);
                let tag = self.prefix(off, pos, total, RESERVED);
                return Some(Reservation { pos, payload, tag });
            }
        }
    }

    /// # Safety
    /// `off` is in the ring, 16-aligned, with `len` bytes of it reserved by the caller.
    #[inline(always)]
    unsafe fn prefix(&self, off: u64, pos: u64, len: u64, state: u64) -> *const AtomicU64 {
        // SAFETY: per the contract.
        unsafe {
            let p = self.ring.add(off as usize);
            (p.add(8) as *mut u64).write(len);
            let tag = p as *const AtomicU64;
            (*tag).store(pos << 2 | state, Ordering::Release);
            tag
        }
    }

    /// What is at the reader's position `pos` (leaktrace only; the reader
    /// keeps its own position and hands back space with [`Self::release`]).
    /// The head is read only when no record is there: it is the writers' line.
    pub fn read_at(&self, pos: u64) -> (Next<'_>, u64) {
        let off = pos & self.mask;
        // SAFETY: the prefix is inside the ring (16-aligned offsets, 16-byte prefix).
        let (tag, len) = unsafe {
            let p = self.ring.add(off as usize);
            ((*(p as *const AtomicU64)).load(Ordering::Acquire), core::ptr::read_volatile(p.add(8) as *const u64))
        };
        if tag >> 2 != pos & (u64::MAX >> 2) || len < PREFIX_BYTES || len % ALIGN != 0 || off + len > self.mask + 1 {
            let empty = self.header().head.0.load(Ordering::Acquire) == pos;
            return (if empty { Next::Empty } else { Next::Unwritten }, 0);
        }
        // SAFETY: the record's bytes, inside the ring (checked above).
        let payload = unsafe { core::slice::from_raw_parts(self.ring.add((off + PREFIX_BYTES) as usize), (len - PREFIX_BYTES) as usize) };
        match tag & 3 {
            COMMITTED => (Next::Record(payload), len),
            PAD => (Next::Pad, len),
            _ => {
                let word = |at: usize| payload.get(at..at + 4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                (Next::Writing { tgid: word(4), tid: word(8) }, len)
            }
        }
    }

    /// The reader's position when it starts.
    pub fn reader_start(&self) -> u64 {
        self.header().tail.0.load(Ordering::Relaxed)
    }

    /// Everything before `pos` is read: writers may reuse it.
    pub fn release(&self, pos: u64) {
        self.header().tail.0.store(pos, Ordering::Release);
    }

    /// The reader's view of the tail's record, read and released one at a time (tests).
    pub fn next(&self) -> (Next<'_>, u64) {
        self.read_at(self.reader_start())
    }

    /// Done with the `len` bytes at the tail: writers may reuse them (tests).
    pub fn advance(&self, len: u64) {
        self.release(self.reader_start() + len);
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A page, as a mapping is aligned.
    #[repr(C, align(4096))]
    #[derive(Clone, Copy)]
    struct Page([u8; 4096]);

    fn file(ring_bytes: u64) -> (Vec<Page>, Shared) {
        let layout = Layout { ring_bytes, dir_slots: 16, rows_capacity: 64, pages_capacity: 16 };
        let mut mem = vec![Page([0; 4096]); layout.total().div_ceil(4096) as usize];
        let base = mem.as_mut_ptr() as *mut u8;
        // SAFETY: a zeroed buffer of the layout's size, alive while the view is used.
        let shared = unsafe {
            Shared::init(base, &layout, 0, 32, 1);
            Shared::new(base, layout.total()).unwrap()
        };
        (mem, shared)
    }

    fn write(s: &Shared, value: u64) -> bool {
        let Some(r) = s.reserve(48, 7, 8, |_| false) else { return false };
        // SAFETY: 48 bytes of payload are ours.
        unsafe { (r.payload.add(24) as *mut u64).write(value) };
        r.commit();
        true
    }

    fn read(s: &Shared) -> Option<u64> {
        loop {
            match s.next() {
                (Next::Record(b), len) => {
                    let v = u64::from_ne_bytes(b[24..32].try_into().unwrap());
                    s.advance(len);
                    return Some(v);
                }
                (Next::Pad, len) => s.advance(len),
                _ => return None,
            }
        }
    }

    #[test]
    fn records_come_out_in_order_across_the_end_of_the_ring() {
        let (_mem, s) = file(1024);
        for v in 0..1000 {
            assert!(write(&s, v));
            if v % 3 == 2 {
                // Fall behind by a record or two, then catch up.
                while let Some(got) = read(&s) {
                    assert!(got <= v);
                }
            }
        }
        assert_eq!(s.header().waits.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_ring_makes_the_writer_wait_and_says_so() {
        let (_mem, s) = file(256);
        // 64 bytes a record: four fill the ring.
        for v in 0..4 {
            assert!(write(&s, v));
        }
        assert!(!write(&s, 4), "no room and the wait gave up: not written");
        assert_eq!(s.header().dropped.load(Ordering::Relaxed), 1);
        assert_eq!(read(&s), Some(0));
    }

    #[test]
    fn an_unfinished_record_holds_the_reader_and_names_its_writer() {
        let (_mem, s) = file(1024);
        let r = s.reserve(48, 7, 8, |_| false).unwrap();
        assert!(write(&s, 9));
        assert_eq!(s.next().0, Next::Writing { tgid: 7, tid: 8 });
        r.commit();
        assert!(matches!(s.next().0, Next::Record(_)));
    }

    #[test]
    fn the_directory_finds_what_was_published() {
        let (_mem, s) = file(1024);
        let rows = |first| ModuleRows { first, count: 1, pages_first: 0, pages: 0 };
        for ino in 0..15 {
            assert!(s.publish(ModuleKey { dev: 3, ino }, rows(ino as u32)));
        }
        assert!(!s.publish(ModuleKey { dev: 4, ino: 0 }, rows(0)), "one slot stays empty");
        for ino in 0..15 {
            assert_eq!(s.module(&ModuleKey { dev: 3, ino }), Some(rows(ino as u32)));
        }
        assert_eq!(s.module(&ModuleKey { dev: 4, ino: 0 }), None);
    }

    #[test]
    fn many_writers_lose_nothing() {
        let (_mem, s) = file(4096);
        let s = &s;
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                scope.spawn(move || {
                    for i in 0..20_000u64 {
                        let ok = s.reserve(48, 1, t as u32, |_| {
                            std::thread::yield_now();
                            true
                        });
                        let r = ok.unwrap();
                        // SAFETY: our payload.
                        unsafe { (r.payload.add(24) as *mut u64).write(t << 32 | i) };
                        r.commit();
                    }
                });
            }
            let mut next = [0u64; 4];
            let mut seen = 0;
            while seen < 80_000 {
                match s.next() {
                    (Next::Record(b), len) => {
                        let v = u64::from_ne_bytes(b[24..32].try_into().unwrap());
                        let t = (v >> 32) as usize;
                        assert_eq!(v & 0xffff_ffff, next[t], "each writer's records in its order");
                        next[t] += 1;
                        seen += 1;
                        s.advance(len);
                    }
                    (Next::Pad, len) => s.advance(len),
                    _ => std::hint::spin_loop(),
                }
            }
        });
    }
}
