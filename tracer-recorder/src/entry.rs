//! The malloc family's entry points. Each is a two-instruction trampoline
//! that hands its implementation the stack pointer and frame pointer at
//! entry (the return address is at the stack pointer), so the stack is
//! walked from the caller as the eBPF probes walk it at the allocator's return.
//!
//! Order matters for leaktrace's reading of the ring: a free is recorded
//! before the block is released (another thread may be handed the same
//! address right after), an allocation after it is made.
//!
//! A new block's bytes up to its usable size, and the bytes a realloc adds,
//! are cleared before the program gets them (see [`clear`]): what an allocator hands out from
//! reused memory still holds what the blocks before it left there, and a
//! stale pointer among it would hold a lost block for leaktrace's scan,
//! where valgrind never takes bytes the program did not write (undefined)
//! for pointers.

use core::ffi::{c_int, c_void};

use tracer_common::unwind::Regs;
use tracer_common::AllocFn;

use crate::real::{self, Slot};
use crate::{connect, emit};

/// The caller's frame from the stack pointer and frame pointer at entry.
#[inline(always)]
fn caller(sp: u64, bp: u64) -> Regs {
    // SAFETY: at an entry point, the return address is at the stack pointer.
    let ra = unsafe { (sp as *const u64).read() };
    Regs { pc: ra, sp: sp + 8, bp }
}

/// Makes sure the allocator is known; the recorder connected if it can.
#[inline(always)]
fn ready() {
    if real::get(Slot::Free).is_none() {
        set_up();
    }
}

/// Looks the allocator up and connects. What the lookup allocates is
/// served by the arena (the allocator is not known yet) and not recorded.
#[cold]
pub fn set_up() {
    real::resolve(&ours());
    crate::thread::learn_layout();
    connect::from_env();
}

/// Our own entry points, in `real::Slot` order (a lookup that finds them
/// found no allocator; the GOT redirection writes them). The local ones: the
/// address of an exported name is looked up like any other, and in a
/// recorder loaded locally that lookup finds the allocator's.
pub fn ours() -> [*const c_void; 10] {
    [
        malloc_entry as *const c_void,
        calloc_entry as *const c_void,
        realloc_entry as *const c_void,
        reallocarray_entry as *const c_void,
        posix_memalign_entry as *const c_void,
        aligned_alloc_entry as *const c_void,
        memalign_entry as *const c_void,
        valloc_entry as *const c_void,
        pvalloc_entry as *const c_void,
        free_entry as *const c_void,
    ]
}

macro_rules! trampoline {
    ($name:ident, $local:ident ($($arg:ident: $ty:ty),*) -> $ret:ty, $imp:ident, $sp:literal, $bp:literal) => {
        #[unsafe(naked)]
        extern "C" fn $local($($arg: $ty),*) -> $ret {
            core::arch::naked_asm!(concat!("mov ", $sp, ", rsp"), concat!("mov ", $bp, ", rbp"), "jmp {imp}", imp = sym $imp)
        }

        /// The exported name; a jump leaves the stack as the caller made it.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            core::arch::naked_asm!("jmp {local}", local = sym $local)
        }
    };
}

trampoline!(malloc, malloc_entry(size: usize) -> *mut c_void, malloc_at, "rsi", "rdx");
trampoline!(calloc, calloc_entry(n: usize, size: usize) -> *mut c_void, calloc_at, "rdx", "rcx");
trampoline!(realloc, realloc_entry(p: *mut c_void, size: usize) -> *mut c_void, realloc_at, "rdx", "rcx");
trampoline!(reallocarray, reallocarray_entry(p: *mut c_void, n: usize, size: usize) -> *mut c_void, reallocarray_at, "rcx", "r8");
trampoline!(posix_memalign, posix_memalign_entry(out: *mut *mut c_void, align: usize, size: usize) -> c_int, posix_memalign_at, "rcx", "r8");
trampoline!(aligned_alloc, aligned_alloc_entry(align: usize, size: usize) -> *mut c_void, aligned_alloc_at, "rdx", "rcx");
trampoline!(memalign, memalign_entry(align: usize, size: usize) -> *mut c_void, memalign_at, "rdx", "rcx");
trampoline!(valloc, valloc_entry(size: usize) -> *mut c_void, valloc_at, "rsi", "rdx");
trampoline!(pvalloc, pvalloc_entry(size: usize) -> *mut c_void, pvalloc_at, "rsi", "rdx");
trampoline!(free, free_entry(p: *mut c_void) -> (), free_at, "rsi", "rdx");

/// Blocks larger than this are left as they are: allocators serve them
/// from fresh mappings (zeros, nothing stale), and reading one through
/// would fault in each of its pages.
const CLEAR_MAX: usize = 1 << 20;

/// Zeroes the bytes `[from, to)` of the block at `p` that are not zero
/// already: only what reused memory left there is written, and untouched
/// fresh pages (a large block's new mapping, the heap's new top) are read
/// (as the kernel's zero page), never made resident. malloc may hand out
/// any bytes; zeros are what fresh memory holds.
#[inline(always)]
fn clear(p: *mut c_void, from: usize, to: usize) {
    if to > CLEAR_MAX {
        return;
    }
    let base = p as usize;
    let (mut at, end) = (base + from, base + to);
    // SAFETY: [from, to) lies in the block the allocator just returned,
    // which no one else uses yet; words are read and written aligned.
    unsafe {
        while at < end && !at.is_multiple_of(8) {
            (at as *mut u8).write(0);
            at += 1;
        }
        while at + 8 <= end {
            let w = at as *mut u64;
            if w.read() != 0 {
                w.write(0);
            }
            at += 8;
        }
        while at < end {
            (at as *mut u8).write(0);
            at += 1;
        }
    }
}

/// What the allocator's block at `p` can hold (`size` when it does not say).
#[inline(always)]
fn usable_size(p: *mut c_void, size: usize) -> usize {
    // SAFETY: a live block of the allocator's.
    real::usable().map_or(size, |usable| unsafe { usable(p) }.max(size))
}

/// Runs the allocator call `call`, and records what it returned (not a
/// block of the set-up arena: those are never freed), cleared ([`clear`])
/// up to what it can hold (calloc's past its size only: the allocator
/// zeroed the rest).
#[inline(always)]
fn allocate(func: AllocFn, size: u64, sp: u64, bp: u64, call: impl FnOnce() -> *mut c_void) -> *mut c_void {
    let p = call();
    if let Some(shared) = connect::shared() {
        if p.is_null() {
            emit::failed(shared, func, size);
        } else if !real::in_arena(p) {
            // Up to what the block can hold: a realloc that grows it in
            // place hands the slack past `size` to the program as it is.
            let from = if matches!(func, AllocFn::Calloc) { size as usize } else { 0 };
            clear(p, from, usable_size(p, size as usize));
            emit::allocated(shared, func, p as u64, size, caller(sp, bp));
        }
    }
    p
}

/// Calls the allocator function in `slot`, as type `F`; during set-up, the arena.
macro_rules! forward {
    ($slot:expr, $ty:ty, |$f:ident| $call:expr, $early:expr) => {
        match real::get($slot) {
            // SAFETY: the slot holds the allocator's function of this type.
            Some(p) => unsafe {
                let $f: $ty = core::mem::transmute::<*mut c_void, $ty>(p);
                $call
            },
            None => $early,
        }
    };
}

extern "C" fn malloc_at(size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    allocate(AllocFn::Malloc, size as u64, sp, bp, || forward!(Slot::Malloc, real::Malloc, |f| f(size), real::arena(size, 16)))
}

extern "C" fn calloc_at(n: usize, size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    let total = n.saturating_mul(size) as u64;
    allocate(AllocFn::Calloc, total, sp, bp, || {
        forward!(Slot::Calloc, real::Calloc, |f| f(n, size), n.checked_mul(size).map_or(core::ptr::null_mut(), |t| real::arena(t, 16)))
    })
}

extern "C" fn valloc_at(size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    allocate(AllocFn::Valloc, size as u64, sp, bp, || forward!(Slot::Valloc, real::Malloc, |f| f(size), real::arena(size, 4096)))
}

extern "C" fn pvalloc_at(size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    allocate(AllocFn::Pvalloc, size as u64, sp, bp, || forward!(Slot::Pvalloc, real::Malloc, |f| f(size), real::arena(size, 4096)))
}

extern "C" fn aligned_alloc_at(align: usize, size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    allocate(AllocFn::AlignedAlloc, size as u64, sp, bp, || {
        forward!(Slot::AlignedAlloc, real::Aligned, |f| f(align, size), real::arena(size, align))
    })
}

extern "C" fn memalign_at(align: usize, size: usize, sp: u64, bp: u64) -> *mut c_void {
    ready();
    allocate(AllocFn::Memalign, size as u64, sp, bp, || {
        forward!(Slot::Memalign, real::Aligned, |f| f(align, size), real::arena(size, align))
    })
}

extern "C" fn posix_memalign_at(out: *mut *mut c_void, align: usize, size: usize, sp: u64, bp: u64) -> c_int {
    ready();
    let mut rc = 0;
    let call = || {
        rc = forward!(Slot::PosixMemalign, real::PosixMemalign, |f| f(out, align, size), {
            // SAFETY: the caller's result slot.
            unsafe { *out = real::arena(size, align) };
            0
        });
        // SAFETY: the caller's result slot, written on success only.
        if rc == 0 {
            unsafe { *out }
        } else {
            core::ptr::null_mut()
        }
    };
    allocate(AllocFn::PosixMemalign, size as u64, sp, bp, call);
    rc
}

extern "C" fn realloc_at(p: *mut c_void, size: usize, sp: u64, bp: u64) -> *mut c_void {
    resize(p, size as u64, AllocFn::Realloc, sp, bp, |old| forward!(Slot::Realloc, real::Realloc, |f| f(old, size), core::ptr::null_mut()))
}

extern "C" fn reallocarray_at(p: *mut c_void, n: usize, size: usize, sp: u64, bp: u64) -> *mut c_void {
    // glibc's reallocarray calls realloc through its PLT (that is, the
    // recorder's): checked here, and handed to the allocator's realloc, so
    // the call is recorded once.
    let Some(total) = n.checked_mul(size) else {
        // SAFETY: the thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        ready();
        if let Some(shared) = connect::shared() {
            emit::failed(shared, AllocFn::Reallocarray, u64::MAX);
        }
        return core::ptr::null_mut();
    };
    resize(p, total as u64, AllocFn::Reallocarray, sp, bp, |old| {
        forward!(Slot::Realloc, real::Realloc, |f| f(old, total), core::ptr::null_mut())
    })
}

/// realloc and reallocarray: a new block for the old one. realloc(p, 0)
/// that returns NULL freed p. A block from the set-up arena moves to the
/// allocator (its size is unknown: what fits of the arena is copied).
fn resize(p: *mut c_void, size: u64, func: AllocFn, sp: u64, bp: u64, call: impl Fn(*mut c_void) -> *mut c_void) -> *mut c_void {
    ready();
    if real::in_arena(p) {
        let fresh = malloc_at(size as usize, sp, bp);
        if !fresh.is_null() {
            let room = real::arena_room(p).min(size as usize);
            // SAFETY: `room` bytes lie in both blocks.
            unsafe { core::ptr::copy_nonoverlapping(p as *const u8, fresh as *mut u8, room) };
        }
        return fresh;
    }
    // What the block could hold before: the bytes past it are the new ones.
    // (Not traced, nothing is cleared.)
    let kept = match (connect::shared(), p.is_null(), real::usable()) {
        (None, ..) => None,
        (Some(_), true, _) => Some(0),
        // SAFETY: a live block of the allocator's.
        (Some(_), false, Some(usable)) => Some(unsafe { usable(p) }),
        (Some(_), false, None) => None,
    };
    let q = call(p);
    if let (false, Some(kept)) = (q.is_null(), kept) {
        let usable = usable_size(q, size as usize);
        clear(q, kept.min(usable), usable);
    }
    if let Some(shared) = connect::shared() {
        match (p.is_null(), q.is_null()) {
            // realloc(NULL, n) too: recorded as the eBPF probes record it.
            (_, false) => emit::reallocated(shared, p as u64, q as u64, size, caller(sp, bp)),
            (false, true) if size == 0 => emit::freed(shared, p as u64),
            _ => emit::failed(shared, func, size),
        }
    }
    q
}

extern "C" fn free_at(p: *mut c_void, _sp: u64, _bp: u64) {
    if p.is_null() || real::in_arena(p) {
        return;
    }
    ready();
    if let Some(shared) = connect::shared() {
        emit::freed(shared, p as u64);
    }
    forward!(Slot::Free, real::Free, |f| f(p), ());
}
