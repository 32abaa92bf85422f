//! The ring: writers reserve with one atomic add and commit by their
//! record's tag; the reader (leaktrace) reads in place and hands space back.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{Shared, ALIGN, COMMITTED, PAD, PREFIX_BYTES, RESERVED};

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
}
