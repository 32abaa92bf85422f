//! The user-stack walker: the binaries' own CFI, compiled by userspace into
//! compact rows per module (see `tracer_common::unwind`), walked here one
//! frame per `bpf_loop` iteration.
//!
//! Each frame's code is found with `bpf_find_vma`: the mapping gives the file
//! (device and inode, the key of the module table) and the file offset of the
//! address; a binary search in the module's rows gives the rule that finds
//! the frame's CFA, return address and saved rbp. Anonymous executable memory
//! (JIT code) and modules without unwind information are stepped with frame
//! pointers. Where a module's table is not loaded yet, the walk stops and the
//! record carries a copy of the stack for userspace to go on with the same rules.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_find_vma, bpf_loop},
    },
    macros::map,
    maps::{Array, HashMap},
};
use tracer_common::unwind::{step_frame_pointer, step_rule, Regs, StackMemory};
use tracer_common::{ModuleKey, ModuleRows, StackEvent, StopReason, UnwindRow, MAX_FRAMES};

use crate::maps::setting_u32;

/// Every loaded module's rows, each module's sorted by offset. Userspace sizes
/// it at load and writes rows through a memory mapping (BPF_F_MMAPABLE).
#[map]
pub static UNWIND_ROWS: Array<UnwindRow> = Array::with_max_entries(1, aya_ebpf::bindings::BPF_F_MMAPABLE);

/// Loaded modules: which rows are theirs.
#[map]
pub static MODULES: HashMap<ModuleKey, ModuleRows> = HashMap::with_max_entries(8192, 0);

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

/// Steps of the binary search: enough for 16M rows.
const SEARCH_STEPS: u32 = 24;

/// What a cached mapping says about the code in it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Code {
    Empty = 0,
    /// A module with rows.
    Table = 1,
    /// Anonymous executable memory, or a module without unwind information.
    FramePointers = 2,
    /// A file whose table is not loaded.
    Missing = 3,
}

/// One mapping the walk has met.
#[derive(Clone, Copy)]
#[repr(C)]
struct Cached {
    start: u64,
    end: u64,
    /// file offset = address - start + base
    base: u64,
    first: u32,
    count: u32,
    code: Code,
    _pad: u32,
    key: ModuleKey,
}

const EMPTY: Cached =
    Cached { start: 0, end: 0, base: 0, first: 0, count: 0, code: Code::Empty, _pad: 0, key: ModuleKey { dev: 0, ino: 0 } };

/// The walk's state, on [`lt_walk`]'s stack; [`lt_step`] sees it as plain
/// memory (no pointers in it: a global function could not use them).
#[repr(C)]
pub struct Walk {
    pc: u64,
    sp: u64,
    bp: u64,
    n: u32,
    max: u32,
    exact: u32,
    next_exact: u32,
    reason: StopReason,
    missing: ModuleKey,
    /// Two mappings: stacks mostly alternate between a program and its C library.
    cache: [Cached; 2],
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
    // SAFETY: ctx is the caller's Cached; vma is the kernel's vm_area_struct, read fault-safe.
    unsafe {
        let out = ctx as *mut Cached;
        let vma = vma as *const c_void;
        let (Some(start), Some(end), Some(pgoff)) =
            (kread::<u64>(vma, off(&VMA_START)), kread::<u64>(vma, off(&VMA_END)), kread::<u64>(vma, off(&VMA_PGOFF)))
        else {
            return 0;
        };
        let mut found = Cached { start, end, base: (pgoff << 12).wrapping_sub(start), ..EMPTY };
        let file: u64 = kread(vma, off(&VMA_FILE)).unwrap_or(0);
        if file == 0 {
            found.code = Code::FramePointers;
        } else {
            let inode: u64 = kread(file as *const c_void, off(&FILE_INODE)).unwrap_or(0);
            let sb: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_SB)).unwrap_or(0) } else { 0 };
            let ino: u64 = if inode != 0 { kread(inode as *const c_void, off(&INODE_INO)).unwrap_or(0) } else { 0 };
            let dev: u32 = if sb != 0 { kread(sb as *const c_void, off(&SB_DEV)).unwrap_or(0) } else { 0 };
            found.key = ModuleKey { dev: dev as u64, ino };
            match MODULES.get(found.key) {
                Some(m) if m.count > 0 => {
                    found.code = Code::Table;
                    found.first = m.first;
                    found.count = m.count;
                }
                Some(_) => found.code = Code::FramePointers,
                None => found.code = Code::Missing,
            }
        }
        *out = found;
    }
    0
}

/// The mapping of `addr`: from the cache, else from the kernel (and cached).
#[inline(always)]
fn mapping(w: &mut Walk, addr: u64) -> Result<Cached, StopReason> {
    for c in &w.cache {
        if c.code as u32 != Code::Empty as u32 && addr >= c.start && addr < c.end {
            return Ok(*c);
        }
    }
    let mut found = EMPTY;
    // SAFETY: the current task, an address, our callback and its output on our stack.
    let r = unsafe {
        let task = bpf_get_current_task_btf();
        bpf_find_vma(task as *mut _, addr, on_vma as *mut c_void, &mut found as *mut Cached as *mut c_void, 0)
    };
    if r == -16 {
        return Err(StopReason::MapBusy); // -EBUSY: the mmap lock is contended
    }
    if r != 0 || found.code as u32 == Code::Empty as u32 {
        return Err(StopReason::NoMapping);
    }
    // Replace the slot that did not serve the last lookup.
    w.cache[1] = w.cache[0];
    w.cache[0] = found;
    Ok(found)
}

/// No row: [`lt_find_row`]'s answer when none covers the offset.
const NO_ROW: u64 = u64::MAX;

/// The row in force at file offset `target` among a module's rows, packed
/// in a u64 (its in-memory bytes), or [`NO_ROW`]. A global function: the
/// verifier checks it once, on its own, instead of at every frame of every
/// iteration of the walk.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_find_row(first: u32, count: u32, target: u64) -> u64 {
    let (mut lo, mut hi) = (first, first.wrapping_add(count));
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

#[inline(always)]
fn find_row(first: u32, count: u32, target: u64) -> Option<UnwindRow> {
    let packed = lt_find_row(first, count, target);
    (packed != NO_ROW).then_some(UnwindRow {
        offset: packed as u32,
        cfa: (packed >> 32) as u16 as i16,
        rbp: (packed >> 48) as u8 as i8,
        kind: (packed >> 56) as u8,
    })
}

/// The traced process's own stack, read fault-safe.
struct LiveStack;

impl StackMemory for LiveStack {
    #[inline(always)]
    fn word(&self, addr: u64) -> Option<u64> {
        // SAFETY: a fault-safe read of user memory.
        unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
    }

    #[inline(always)]
    fn pair(&self, addr: u64) -> Option<[u64; 2]> {
        // SAFETY: a fault-safe read of user memory.
        unsafe { bpf_probe_read_user(addr as *const [u64; 2]) }.ok()
    }
}

/// bpf_loop's callback: one frame, by [`lt_step`].
unsafe extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is lt_walk's Loop, on its stack.
    unsafe {
        let l = ctx as *mut Loop;
        // bpf_loop's callbacks return 0 (go on) or 1 (stop), nothing else.
        i64::from(lt_step(&raw mut (*l).walk, (*l).ev, index) != 0)
    }
}

/// One frame: record it in `ev` at `index`, then step to its caller.
/// Returns 0 to go on, else 1 + why the walk stops. A global function:
/// verified once, on its own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_step(w: *mut Walk, ev: *mut StackEvent, index: u64) -> i64 {
    if w.is_null() || ev.is_null() {
        return 1 + StopReason::BadFrame as i64;
    }
    // SAFETY: both point at memory the caller owns, of their types' sizes.
    let (w, ev) = unsafe { (&mut *w, &mut *ev) };
    // The slot is the loop's own index (not a count kept in the context): the
    // verifier then sees every iteration alike.
    let n = index as usize;
    if n >= MAX_FRAMES || index >= u64::from(w.max) {
        w.reason = StopReason::MaxDepth;
        return 1 + StopReason::MaxDepth as i64;
    }
    ev.frames[n] = w.pc;
    if w.next_exact != 0 {
        w.exact |= 1 << n;
    }
    w.n = n as u32 + 1;
    let lookup = if w.next_exact != 0 { w.pc } else { w.pc.wrapping_sub(1) };
    let here = Regs { pc: w.pc, sp: w.sp, bp: w.bp };
    let next = match mapping(w, lookup) {
        Err(reason) => Err(reason),
        Ok(m) => match m.code {
            Code::Table => match find_row(m.first, m.count, lookup.wrapping_add(m.base)) {
                Some(row) => step_rule(row, lookup, here, &LiveStack),
                None => Err(StopReason::NoRule),
            },
            Code::Missing => {
                w.missing = m.key;
                Err(StopReason::NoTable)
            }
            _ => step_frame_pointer(here, &LiveStack),
        },
    };
    match next {
        Ok(c) => {
            (w.pc, w.sp, w.bp, w.next_exact) = (c.regs.pc, c.regs.sp, c.regs.bp, c.exact as u32);
            0
        }
        Err(reason) => {
            w.reason = reason;
            1 + reason as i64
        }
    }
}

/// bpf_loop's context: the record (a pointer the callback can pass on) and the state.
#[repr(C)]
struct Loop {
    ev: *mut StackEvent,
    walk: Walk,
}

/// Walks the user stack from (pc, sp, bp) into `ev`: frames, nframes and
/// stop. A global function: verified once, whatever the call site.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_walk(ev: *mut StackEvent, pc: u64, sp: u64, bp: u64, max: u32) -> u32 {
    if ev.is_null() {
        return 0;
    }
    let mut l = Loop {
        ev,
        walk: Walk {
            pc,
            sp,
            bp,
            n: 0,
            max,
            exact: 0,
            next_exact: 0,
            reason: StopReason::MaxDepth,
            missing: ModuleKey { dev: 0, ino: 0 },
            cache: [EMPTY; 2],
        },
    };
    // SAFETY: our callback with our context; one iteration per frame (and one to notice the last).
    unsafe { bpf_loop(max + 1, step as *mut c_void, &mut l as *mut Loop as *mut c_void, 0) };
    let w = &l.walk;
    // SAFETY: the record is ours until submitted.
    unsafe {
        (*ev).hdr.nframes = w.n;
        (*ev).stop.reason = w.reason as u32;
        (*ev).stop.exact = w.exact;
        (*ev).stop.pc = w.pc;
        (*ev).stop.sp = w.sp;
        (*ev).stop.bp = w.bp;
        (*ev).stop.module = w.missing;
        (*ev).stop.copy_words = 0;
        (*ev).stop._pad = 0;
    }
    w.reason as u32
}
