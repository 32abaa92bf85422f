//! Which module's code is at an address: the mapping, found with
//! `bpf_find_vma`, gives the file (device and inode, the key of the module
//! table) and the file offset. Mappings met are cached in the thread's walk
//! entry (see [`super::state`]).

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, generated::bpf_find_vma};
use tracer_common::{ModuleKey, StopReason};

use super::rows::MODULES;
use super::state::{Code, Walk, CACHED};
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

/// bpf_find_vma's context, on the caller's stack: just where to write.
#[repr(C)]
struct FindCtx {
    walk: *mut Walk,
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
    // SAFETY: ctx is the caller's FindCtx, pointing at its walk entry; vma is the kernel's
    // vm_area_struct, read fault-safe.
    unsafe {
        let out = (*(ctx as *mut FindCtx)).walk;
        if out.is_null() {
            return 1;
        }
        let vma = vma as *const c_void;
        let (Some(start), Some(end), Some(pgoff)) =
            (kread::<u64>(vma, off(&VMA_START)), kread::<u64>(vma, off(&VMA_END)), kread::<u64>(vma, off(&VMA_PGOFF)))
        else {
            return 0;
        };
        let m = &raw mut (*out).found;
        (*m).start = start;
        (*m).end = end;
        (*m).base = (pgoff << 12).wrapping_sub(start);
        let file: u64 = kread(vma, off(&VMA_FILE)).unwrap_or(0);
        if file == 0 {
            (*m).code = Code::FramePointers;
        } else {
            let inode: u64 = kread(file as *const c_void, off(&FILE_INODE)).unwrap_or(0);
            let sb: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_SB)).unwrap_or(0) } else { 0 };
            let ino: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_INO)).unwrap_or(0) } else { 0 };
            let dev: u32 = if sb != 0 { kread(sb as *const c_void, off(&SB_DEV)).unwrap_or(0) } else { 0 };
            (*out).found_key = ModuleKey { dev: dev as u64, ino };
            (*m).code = match MODULES.get((*out).found_key) {
                Some(rows) if rows.count > 0 => {
                    // Field by field: a struct copy between two pointers becomes a call to memmove.
                    (*m).rows.first = rows.first;
                    (*m).rows.count = rows.count;
                    (*m).rows.pages_first = rows.pages_first;
                    (*m).rows.pages = rows.pages;
                    Code::Table
                }
                Some(_) => Code::FramePointers,
                None => Code::Missing,
            };
        }
    }
    0
}

/// Which of the walk's cached mappings holds `addr`, looked up in the
/// kernel on a miss (and then cached). A module without its table yet is
/// [`MISSING`], its key in `missing`.
#[inline(always)]
pub fn mapping(w: &mut Walk, addr: u64) -> Result<usize, StopReason> {
    for (i, c) in w.cache.iter().enumerate() {
        if c.code as u32 != Code::Empty as u32 && addr >= c.start && addr < c.end {
            return Ok(i);
        }
    }
    w.found.code = Code::Empty;
    let mut ctx = FindCtx { walk: w };
    // SAFETY: the current task, an address, our callback and its context on our stack.
    let r = unsafe {
        let task = bpf_get_current_task_btf();
        bpf_find_vma(task as *mut _, addr, on_vma as *mut c_void, &mut ctx as *mut FindCtx as *mut c_void, 0)
    };
    if r == -16 {
        return Err(StopReason::MapBusy); // -EBUSY: the mmap lock is contended
    }
    if r != 0 || w.found.code as u32 == Code::Empty as u32 {
        return Err(StopReason::NoMapping);
    }
    if w.found.code as u32 == Code::Missing as u32 {
        w.missing = w.found_key;
        return Ok(MISSING);
    }
    // Replace the slot that did not serve the last lookup.
    w.cache[1] = w.cache[0];
    w.cache[0] = w.found;
    Ok(0)
}

/// [`mapping`]'s answer for a file whose table is not loaded.
pub const MISSING: usize = CACHED;

/// The current process's memory map and its sequence (which changes with
/// every mmap, munmap, mprotect), or None where the kernel keeps none.
#[inline(always)]
pub fn map_version() -> Option<(u64, u64)> {
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
        Some((mm, u64::from(seq)))
    }
}
