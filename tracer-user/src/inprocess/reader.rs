//! Reading the recorders' ring beside the kernel's: a record waits in the
//! ring until the kernel's ring can no longer hold anything older, then is
//! applied in time order with the kernel's (an exec, an exit, a fork in the
//! kernel's ring must fall between the right heap records).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracer_common::inprocess::Next;
use tracer_common::record::HEADER_SIZE;

use super::shared_file::RING_CHUNK;
use super::SharedFile;

/// A kernel record is stamped at most this long before it is submitted:
/// records of the recorders older than the moment the kernel's ring was seen
/// empty, less this, cannot be overtaken by one still to come.
const KERNEL_LATENESS_NS: u64 = 2_000_000;

/// What the recorders' side of a session counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Times a recorder found the ring full and waited for leaktrace.
    pub waits: u64,
    /// Records lost: written by a thread that died before finishing them, or
    /// given up by a recorder whose leaktrace had gone.
    pub lost: u64,
    /// Processes whose recorder connected.
    pub connected: u64,
}

pub struct InProcessReader {
    file: Arc<SharedFile>,
    /// The next byte to read; the ring's tail (what writers see) follows in steps.
    pos: u64,
    released: u64,
    /// Records skipped: their writer died mid-record.
    skipped: u64,
}

/// The tail is handed back to the writers after this many bytes read (and
/// whenever the reader catches up): the line it is on then changes rarely.
const RELEASE_EVERY: u64 = 256 << 10;

impl InProcessReader {
    pub fn new(file: Arc<SharedFile>) -> Self {
        let pos = file.view().reader_start();
        Self { file, pos, released: pos, skipped: 0 }
    }

    /// Applies, in ring order, the committed records stamped no later than
    /// `until`, read in place (no copy); stops at the first later one.
    pub fn apply_until(&mut self, until: u64, mut apply: impl FnMut(&[u8])) {
        let Self { file, pos, released, skipped } = self;
        let view = file.view();
        loop {
            let (next, len) = view.read_at(*pos);
            match next {
                Next::Record(bytes) if ts_of(bytes) <= until => apply(bytes),
                Next::Pad => {}
                Next::Writing { tgid, tid } if !thread_alive(tgid, tid) => *skipped += 1,
                Next::Record(_) | Next::Writing { .. } | Next::Unwritten | Next::Empty => break,
            }
            *pos += len;
            if *pos - *released >= RELEASE_EVERY {
                release(file, *pos, released);
            }
        }
        release(file, *pos, released);
    }

    /// What is due once the kernel's ring was found empty at `now`.
    pub fn settled(now: u64) -> u64 {
        now.saturating_sub(KERNEL_LATENESS_NS)
    }

    pub fn stats(&self) -> RecorderStats {
        let h = self.file.view().header();
        RecorderStats {
            waits: h.waits.0.load(Ordering::Relaxed),
            lost: h.dropped.load(Ordering::Relaxed) + self.skipped,
            connected: h.connected.load(Ordering::Relaxed),
        }
    }
}

/// A record's timestamp (the header's ts_ns).
pub fn ts_of(bytes: &[u8]) -> u64 {
    bytes.get(16..24).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes)
}

const _: () = assert!(HEADER_SIZE >= 24);

fn thread_alive(tgid: u32, tid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{tgid}/task/{tid}")).exists()
}

/// Hands the bytes before `pos` back to the writers, and leaktrace's mapping
/// of the whole chunks read.
fn release(file: &SharedFile, pos: u64, released: &mut u64) {
    if pos == *released {
        return;
    }
    file.view().release(pos);
    for chunk in *released / RING_CHUNK..pos / RING_CHUNK {
        file.forget_chunk(chunk);
    }
    *released = pos;
}
