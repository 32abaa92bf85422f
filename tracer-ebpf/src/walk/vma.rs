//! Which module's code is at an address: the mapping, found with
//! `bpf_find_vma`, gives the file (device and inode, the key of the module
//! table) and the file offset. Mappings met are cached for the walk, and
//! kept per thread between walks for as long as the process's memory map
//! does not change (its mmap lock sequence says so).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, generated::bpf_find_vma},
    macros::map,
    maps::HashMap,
};
use tracer_common::{ModuleKey, ModuleRows, StopReason};

use super::rows::MODULES;
use crate::maps::setting_u32;

// Kernel structure member offsets, from the kernel's BTF at load.
#[unsafe(no_mangle)]
static VMA_START: u32 = 0;
#[unsafe(no_mangle)]
static VMA_END: u32 = 8;
#[unsafe(no_mangle)]
static VMA_PGOFF: u32 = 0;
#[unsafe(no_mangle)]
static VMA_FILE: u32 = 0;
#[unsafe(no_mangle)]
static FILE_INODE: u32 = 0;
#[unsafe(no_mangle)]
static INODE_INO: u32 = 0;
#[unsafe(no_mangle)]
static INODE_SB: u32 = 0;
#[unsafe(no_mangle)]
static SB_DEV: u32 = 0;
#[unsafe(no_mangle)]
static TASK_MM: u32 = 0;
/// 0 when the kernel has no mm_lock_seq: nothing is kept between walks.
#[unsafe(no_mangle)]
static MM_LOCK_SEQ: u32 = 0;

/// What a mapping holds.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    Empty = 0,
    /// A module with rows.
    Table = 1,
    /// Anonymous executable memory, or a module without unwind information.
    FramePointers = 2,
    /// A file whose table is not loaded (never kept between walks: it may be loaded soon).
    Missing = 3,
}

/// One mapping.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// file offset = address + base
    pub base: u64,
    pub rows: ModuleRows,
    pub code: Code,
    pub _pad: u32,
}

pub const EMPTY: Mapping =
    Mapping { start: 0, end: 0, base: 0, rows: ModuleRows { first: 0, count: 0, pages_first: 0, pages: 0 }, code: Code::Empty, _pad: 0 };

/// The mappings a walk has met: stacks mostly alternate between a program and its C library.
pub type Cache = [Mapping; 2];

/// A thread's cache between walks, valid while its memory map is `mm` (an
/// exec gives it another) and that map's sequence is `seq`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Kept {
    pub mm: u64,
    pub seq: u64,
    pub cache: Cache,
}

/// A memory map and its sequence: what a kept cache is valid for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MapVersion {
    pub mm: u64,
    pub seq: u64,
}

/// Per thread (removed at the thread's exit); allocated as threads walk.
#[map]
pub static KEPT: HashMap<u32, Kept> = HashMap::with_max_entries(65536, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// What bpf_find_vma's callback found.
#[repr(C)]
struct Found {
    mapping: Mapping,
    key: ModuleKey,
}

#[inline(always)]
fn off(v: &'static u32) -> usize {
    setting_u32(v) as usize
}

#[inline(always)]
unsafe fn kread<T>(base: *const c_void, offset: usize) -> Option<T> {
    // SAFETY: a fault-safe read of kernel memory at a BTF-given member offset.
    unsafe { bpf_probe_read_kernel((base as *const u8).add(offset) as *const T).ok() }
}

/// bpf_find_vma's callback: the mapping's range, file offset and file identity.
unsafe extern "C" fn on_vma(_task: *mut c_void, vma: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the caller's Found; vma is the kernel's vm_area_struct, read fault-safe.
    unsafe {
        let out = ctx as *mut Found;
        let vma = vma as *const c_void;
        let (Some(start), Some(end), Some(pgoff)) =
            (kread::<u64>(vma, off(&VMA_START)), kread::<u64>(vma, off(&VMA_END)), kread::<u64>(vma, off(&VMA_PGOFF)))
        else {
            return 0;
        };
        let mut m = Mapping { start, end, base: (pgoff << 12).wrapping_sub(start), ..EMPTY };
        let file: u64 = kread(vma, off(&VMA_FILE)).unwrap_or(0);
        if file == 0 {
            m.code = Code::FramePointers;
        } else {
            let inode: u64 = kread(file as *const c_void, off(&FILE_INODE)).unwrap_or(0);
            let sb: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_SB)).unwrap_or(0) } else { 0 };
            let ino: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_INO)).unwrap_or(0) } else { 0 };
            let dev: u32 = if sb != 0 { kread(sb as *const c_void, off(&SB_DEV)).unwrap_or(0) } else { 0 };
            (*out).key = ModuleKey { dev: dev as u64, ino };
            match MODULES.get((*out).key) {
                Some(rows) if rows.count > 0 => {
                    m.code = Code::Table;
                    m.rows = *rows;
                }
                Some(_) => m.code = Code::FramePointers,
                None => m.code = Code::Missing,
            }
        }
        (*out).mapping = m;
    }
    0
}

/// The mapping of `addr`, from `cache` or from the kernel (then cached);
/// with a missing table, its module's key in `missing`.
#[inline(always)]
pub fn mapping(cache: &mut Cache, addr: u64, missing: &mut ModuleKey) -> Result<Mapping, StopReason> {
    for c in cache.iter() {
        if c.code as u32 != Code::Empty as u32 && addr >= c.start && addr < c.end {
            return Ok(*c);
        }
    }
    let mut found = Found { mapping: EMPTY, key: ModuleKey { dev: 0, ino: 0 } };
    // SAFETY: the current task, an address, our callback and its output on our stack.
    let r = unsafe {
        let task = bpf_get_current_task_btf();
        bpf_find_vma(task as *mut _, addr, on_vma as *mut c_void, &mut found as *mut Found as *mut c_void, 0)
    };
    if r == -16 {
        return Err(StopReason::MapBusy); // -EBUSY: the mmap lock is contended
    }
    let m = found.mapping;
    if r != 0 || m.code as u32 == Code::Empty as u32 {
        return Err(StopReason::NoMapping);
    }
    if m.code as u32 == Code::Missing as u32 {
        *missing = found.key;
        return Ok(m);
    }
    // Replace the slot that did not serve the last lookup.
    cache[1] = cache[0];
    cache[0] = m;
    Ok(m)
}

/// The current process's memory map and its sequence (which changes with
/// every mmap, munmap, mprotect), or None where the kernel keeps none.
#[inline(always)]
pub fn map_version() -> Option<MapVersion> {
    if setting_u32(&MM_LOCK_SEQ) == 0 {
        return None;
    }
    // SAFETY: fault-safe reads of the current task's mm and its sequence count.
    unsafe {
        let task = bpf_get_current_task_btf() as *const c_void;
        let mm: u64 = kread(task, off(&TASK_MM))?;
        if mm == 0 {
            return None;
        }
        let seq = kread::<u32>(mm as *const c_void, off(&MM_LOCK_SEQ))?;
        Some(MapVersion { mm, seq: u64::from(seq) })
    }
}
