//! The executable segments of the loaded modules, from the dynamic linker's
//! own list (dl_iterate_phdr): where a return address lies, which file it is
//! (the key leaktrace publishes its table under) and its file offset there.
//!
//! Rebuilt when an address falls outside every known segment and the
//! linker's count of loads and unloads has moved. Readers never wait: a
//! seqlock tells them a rebuild overlapped their read, and they treat the
//! address as unknown.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracer_common::ModuleKey;

const MAX_SEGMENTS: usize = 1024;

#[derive(Clone, Copy)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    /// Added to an address: its offset in the file.
    pub base: u64,
    pub key: ModuleKey,
}

const EMPTY: Segment = Segment { start: 0, end: 0, base: 0, key: ModuleKey { dev: 0, ino: 0 } };

struct Table {
    segs: [Segment; MAX_SEGMENTS],
    n: usize,
    /// dl_iterate_phdr's loads + unloads when it was built.
    generation: u64,
}

static TABLE: crate::Global<Table> = crate::Global::new(Table { segs: [EMPTY; MAX_SEGMENTS], n: 0, generation: u64::MAX });
/// Where a rebuild gathers the segments (not on the stack: the caller's may be small).
static SCRATCH: crate::Global<Table> = crate::Global::new(Table { segs: [EMPTY; MAX_SEGMENTS], n: 0, generation: 0 });
/// Odd while a rebuild writes the table.
static SEQ: AtomicU64 = AtomicU64::new(0);
static REBUILDING: AtomicBool = AtomicBool::new(false);

/// The segment holding `pc`.
#[inline(always)]
pub fn find(pc: u64) -> Option<Segment> {
    if let Some(s) = lookup(pc) {
        return Some(s);
    }
    if generation() != current() {
        rebuild();
        return lookup(pc);
    }
    None
}

fn lookup(pc: u64) -> Option<Segment> {
    let before = SEQ.load(Ordering::Acquire);
    if before & 1 == 1 {
        return None;
    }
    // SAFETY: a racy read of plain integers, validated by the seqlock below;
    // a torn segment is discarded, never dereferenced.
    let found = unsafe {
        let t = &*TABLE.get();
        let segs = &t.segs[..t.n.min(MAX_SEGMENTS)];
        let i = segs.partition_point(|s| s.start <= pc);
        (i > 0 && pc < segs[i - 1].end).then(|| segs[i - 1])
    };
    core::sync::atomic::fence(Ordering::Acquire);
    (SEQ.load(Ordering::Relaxed) == before).then_some(found).flatten()
}

fn generation() -> u64 {
    // SAFETY: see `lookup`.
    unsafe { core::ptr::read_volatile(&raw const (*TABLE.get()).generation) }
}

/// The dynamic linker's loads + unloads so far.
fn current() -> u64 {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _size: usize, out: *mut c_void) -> c_int {
        // SAFETY: the linker's record and our counter.
        unsafe { *(out as *mut u64) = (*info).dlpi_adds.wrapping_add((*info).dlpi_subs) };
        1
    }
    let mut g = 0u64;
    // SAFETY: a callback that only reads its record.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut g as *mut u64 as *mut c_void) };
    g
}

/// Rebuilds the table from the linker's list (one thread at a time; the others do without).
fn rebuild() {
    if REBUILDING.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: only the holder of REBUILDING uses the scratch table.
    let fresh = unsafe { &mut *SCRATCH.get() };
    fresh.n = 0;
    fresh.generation = current();
    // SAFETY: the callback fills the scratch table from the linker's records.
    unsafe { libc::dl_iterate_phdr(Some(add_module), fresh as *mut Table as *mut c_void) };
    let n = fresh.n;
    fresh.segs[..n].sort_unstable_by_key(|s| s.start);
    SEQ.fetch_add(1, Ordering::AcqRel);
    // SAFETY: only the holder of REBUILDING writes; readers check SEQ.
    unsafe {
        let t = &mut *TABLE.get();
        t.segs[..n].copy_from_slice(&fresh.segs[..n]);
        t.n = n;
        t.generation = fresh.generation;
    }
    SEQ.fetch_add(1, Ordering::Release);
    REBUILDING.store(false, Ordering::Release);
}

unsafe extern "C" fn add_module(info: *mut libc::dl_phdr_info, _size: usize, out: *mut c_void) -> c_int {
    // SAFETY: the linker's record for one module, valid during the callback.
    unsafe {
        let t = &mut *(out as *mut Table);
        let info = &*info;
        let Some(key) = key_of(info.dlpi_name) else { return 0 };
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_X == 0 || t.n >= MAX_SEGMENTS {
                continue;
            }
            let start = info.dlpi_addr.wrapping_add(ph.p_vaddr);
            t.segs[t.n] = Segment { start, end: start + ph.p_memsz, base: ph.p_offset.wrapping_sub(start), key };
            t.n += 1;
        }
    }
    0
}

/// The file's key as the kernel names it (device in the kernel's encoding, inode).
unsafe fn key_of(name: *const c_char) -> Option<ModuleKey> {
    // SAFETY: the linker's NUL-terminated name; the main program's is empty.
    unsafe {
        let path = if name.is_null() || *name == 0 { c"/proc/self/exe".as_ptr() } else { name };
        let mut st: libc::stat = core::mem::zeroed();
        if libc::stat(path, &mut st) != 0 {
            return None; // the vDSO, a file gone
        }
        Some(ModuleKey { dev: tracer_common::unwind::kernel_dev(libc::major(st.st_dev), libc::minor(st.st_dev)), ino: st.st_ino })
    }
}
