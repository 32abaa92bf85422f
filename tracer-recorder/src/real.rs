//! The allocator the recorder forwards to: the next definition of each
//! function after the recorder's own (preloaded), or the global one (loaded
//! into a running process, where the recorder interposes nothing and the
//! global definition is what the GOT entries it redirects held).
//!
//! Looking them up can itself allocate (dlsym's error state): those calls,
//! made before the functions are known, are served from a small static
//! arena that is never freed.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

pub type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
pub type Calloc = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type Realloc = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
pub type PosixMemalign = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
pub type Aligned = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type Free = unsafe extern "C" fn(*mut c_void);

/// The functions, in [`Slot`] order.
static FUNCS: [AtomicPtr<c_void>; 10] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 10];
pub(crate) const NAMES: [&[u8]; 10] = [
    b"malloc\0",
    b"calloc\0",
    b"realloc\0",
    b"reallocarray\0",
    b"posix_memalign\0",
    b"aligned_alloc\0",
    b"memalign\0",
    b"valloc\0",
    b"pvalloc\0",
    b"free\0",
];

#[derive(Clone, Copy)]
pub enum Slot {
    Malloc = 0,
    Calloc,
    Realloc,
    /// Looked up with the others (the table is in [`NAMES`] order), but the
    /// recorder's reallocarray hands its calls to realloc (see entry.rs).
    #[allow(dead_code)]
    Reallocarray,
    PosixMemalign,
    AlignedAlloc,
    Memalign,
    Valloc,
    Pvalloc,
    Free,
}

/// The allocator's `malloc_usable_size`, when the object that defines its
/// `malloc` defines it too (another's, given a block it did not make, could
/// fault).
static USABLE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

pub type Usable = unsafe extern "C" fn(*mut c_void) -> usize;

/// 0: not looked up, 1: looking up, 2: done.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Looks the functions up once; `ours` are the recorder's own entry points
/// (a lookup that finds them found no allocator).
pub fn resolve(ours: &[*const c_void; 10]) {
    if STATE.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return;
    }
    for (i, name) in NAMES.iter().enumerate() {
        let mut f = lookup(libc::RTLD_NEXT, name);
        if f.is_null() || core::ptr::eq(f, ours[i]) {
            f = lookup(libc::RTLD_DEFAULT, name);
        }
        if !core::ptr::eq(f, ours[i]) {
            FUNCS[i].store(f, Ordering::Release);
        }
    }
    let malloc = FUNCS[Slot::Malloc as usize].load(Ordering::Relaxed);
    let mut usable = lookup(libc::RTLD_NEXT, b"malloc_usable_size\0");
    if usable.is_null() {
        usable = lookup(libc::RTLD_DEFAULT, b"malloc_usable_size\0");
    }
    if !malloc.is_null() && !usable.is_null() && object_of(malloc).is_some_and(|o| object_of(usable) == Some(o)) {
        USABLE.store(usable, Ordering::Release);
    }
    STATE.store(2, Ordering::Release);
}

/// The base of the object that defines the code at `f`.
fn object_of(f: *mut c_void) -> Option<usize> {
    // SAFETY: dladdr fills `info` and reads nothing else.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    (unsafe { libc::dladdr(f, &mut info) } != 0).then_some(info.dli_fbase as usize)
}

/// The allocator's `malloc_usable_size`, when known (see [`USABLE`]).
#[inline(always)]
pub fn usable() -> Option<Usable> {
    let f = USABLE.load(Ordering::Acquire);
    // SAFETY: the allocator's malloc_usable_size.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, Usable>(f) })
}

fn lookup(handle: *mut c_void, name: &[u8]) -> *mut c_void {
    // SAFETY: a NUL-terminated name.
    unsafe { libc::dlsym(handle, name.as_ptr() as *const c_char) }
}

/// The function in `slot`, once known.
#[inline(always)]
pub fn get(slot: Slot) -> Option<*mut c_void> {
    let f = FUNCS[slot as usize].load(Ordering::Acquire);
    (!f.is_null()).then_some(f)
}

/// The arena for allocations made while the lookup runs.
const ARENA_BYTES: usize = 64 << 10;
#[repr(C, align(64))]
struct Arena([u8; ARENA_BYTES]);
static ARENA: crate::Global<Arena> = crate::Global::new(Arena([0; ARENA_BYTES]));
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// `size` zeroed bytes aligned to `align` from the arena (null when it is spent).
pub fn arena(size: usize, align: usize) -> *mut c_void {
    let align = align.max(16);
    let mut used = ARENA_USED.load(Ordering::Relaxed);
    loop {
        let start = used.next_multiple_of(align);
        let Some(end) = start.checked_add(size).filter(|&e| e <= ARENA_BYTES) else { return core::ptr::null_mut() };
        match ARENA_USED.compare_exchange(used, end, Ordering::Relaxed, Ordering::Relaxed) {
            // SAFETY: [start, end) is inside the arena and now ours alone.
            Ok(_) => return unsafe { ARENA.get().cast::<u8>().add(start).cast() },
            Err(now) => used = now,
        }
    }
}

fn arena_base() -> usize {
    ARENA.get() as usize
}

/// Bytes from `p` to the arena's end.
pub fn arena_room(p: *mut c_void) -> usize {
    let base = arena_base();
    (base + ARENA_BYTES).saturating_sub(p as usize)
}

/// Whether `p` came from the arena (its free is a no-op).
pub fn in_arena(p: *mut c_void) -> bool {
    let base = arena_base();
    (p as usize) >= base && (p as usize) < base + ARENA_BYTES
}
