//! Redirecting the malloc family through each loaded module's GOT, for a
//! recorder loaded into a running process (where it interposes nothing):
//! every JUMP_SLOT and GLOB_DAT relocation that names an allocator function
//! gets the recorder's entry point instead, and `dlopen`'s get a wrapper
//! that redirects what it loads. Detaching puts back exactly what each slot
//! held, so the program calls its allocator directly again.
//!
//! Every patched slot is remembered in a fixed table (no allocation). One
//! thread walks at a time; the others go on without (their dlopen's modules
//! are caught by the walk in progress or by the next one).

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::{connect, entry, real};

const MAX_PATCHES: usize = 4096;
/// R_X86_64_GLOB_DAT and R_X86_64_JUMP_SLOT.
const GLOB_DAT: u32 = 6;
const JUMP_SLOT: u32 = 7;
const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;

/// The names redirected: the allocator's (in `real::Slot` order), then the loader's.
const DLMOPEN: usize = 11;
const NAMES: [&[u8]; 12] = {
    let a = real::NAMES;
    [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], b"dlopen\0", b"dlmopen\0"]
};

#[derive(Clone, Copy)]
struct Patch {
    addr: usize,
    /// What the slot held (a resolved function, or its PLT stub when bound lazily).
    old: usize,
    /// What the recorder wrote there.
    new: usize,
    /// The page's protection outside the write.
    prot: c_int,
}

static PATCHES: crate::Global<[Patch; MAX_PATCHES]> = crate::Global::new([Patch { addr: 0, old: 0, new: 0, prot: 0 }; MAX_PATCHES]);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Held by the thread walking the modules (a fork's child gets it released).
static WALKING: AtomicBool = AtomicBool::new(false);
/// Redirecting: cleared at detach, so a later dlopen patches nothing.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static REAL_DLOPEN: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static REAL_DLMOPEN: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

type Dlopen = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
type Dlmopen = unsafe extern "C" fn(libc::Lmid_t, *const c_char, c_int) -> *mut c_void;

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    _addend: i64,
}

/// Redirects the malloc family (and dlopen) of every loaded module but the
/// recorder, the dynamic linker and the vDSO. The number of slots
/// redirected so far, or -EBUSY while another thread walks the modules.
#[unsafe(no_mangle)]
pub extern "C" fn leaktrace_recorder_redirect() -> c_int {
    entry::set_up();
    if real::get(real::Slot::Free).is_none() {
        return -libc::ENOSYS;
    }
    for (name, out) in [(&b"dlopen\0"[..], &REAL_DLOPEN), (&b"dlmopen\0"[..], &REAL_DLMOPEN)] {
        // SAFETY: a NUL-terminated name; the recorder is loaded locally, so
        // the global lookup finds the loader's own function.
        out.store(unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr() as *const c_char) }, Ordering::Release);
    }
    ACTIVE.store(true, Ordering::Release);
    match walk(Walk::Redirect) {
        Some(_) => COUNT.load(Ordering::Acquire) as c_int,
        None => -libc::EBUSY,
    }
}

/// Puts back every slot still holding what the recorder wrote, in modules
/// still loaded, and makes the recorder inert. The number of slots put
/// back, or -EBUSY while another thread walks the modules.
#[unsafe(no_mangle)]
pub extern "C" fn leaktrace_recorder_detach() -> c_int {
    ACTIVE.store(false, Ordering::Release);
    let restored = walk(Walk::Restore);
    if restored.is_some() {
        connect::go_inert();
    }
    restored.map_or(-libc::EBUSY, |n| n as c_int)
}

/// In a child just forked: no other thread is walking there.
pub fn forked() {
    WALKING.store(false, Ordering::Release);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Redirect,
    Restore,
}

struct WalkState {
    what: Walk,
    /// The values written into slots, in `NAMES` order.
    ours: [usize; 12],
    /// Slots put back (Restore).
    restored: usize,
}

/// Runs `what` over the loaded modules; None when another thread is at it.
fn walk(what: Walk) -> Option<usize> {
    if WALKING.swap(true, Ordering::Acquire) {
        return None;
    }
    let f = entry::ours();
    let w = [dlopen_wrapper as *const c_void, dlmopen_wrapper as *const c_void];
    let ours = core::array::from_fn(|i| (if i < 10 { f[i] } else { w[i - 10] }) as usize);
    let mut state = WalkState { what, ours, restored: 0 };
    // SAFETY: mprotect's failure sets errno, which the program must not see change.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: the callback reads the linker's records and the modules' own
    // dynamic sections, valid while it runs.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut state as *mut WalkState as *mut c_void) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    WALKING.store(false, Ordering::Release);
    Some(state.restored)
}

/// One module as loaded: its bias, dynamic section and segments.
struct Module<'a> {
    bias: usize,
    phdrs: &'a [libc::Elf64_Phdr],
}

impl Module<'_> {
    fn contains(&self, addr: usize) -> bool {
        self.phdrs.iter().any(|p| p.p_type == libc::PT_LOAD && addr.wrapping_sub(self.bias + p.p_vaddr as usize) < p.p_memsz as usize)
    }

    /// The recorder itself, the dynamic linker, the vDSO: not redirected.
    fn skipped(&self) -> bool {
        // SAFETY: getauxval has no preconditions.
        let (interp, vdso) = unsafe { (libc::getauxval(libc::AT_BASE) as usize, libc::getauxval(libc::AT_SYSINFO_EHDR) as usize) };
        self.contains(leaktrace_recorder_redirect as *const () as usize)
            || (interp != 0 && self.contains(interp))
            || (vdso != 0 && self.contains(vdso))
    }

    /// A d_ptr value as an address: glibc relocates them in place (but not everywhere).
    fn abs(&self, v: u64) -> usize {
        let v = v as usize;
        if v < self.bias {
            v.wrapping_add(self.bias)
        } else {
            v
        }
    }

    /// The protection of the page holding `addr` when the recorder is not writing it.
    fn prot(&self, addr: usize, page: usize) -> c_int {
        let at = addr & !(page - 1);
        for p in self.phdrs.iter().filter(|p| p.p_type == libc::PT_GNU_RELRO) {
            // The linker makes read-only the whole pages of the range only.
            let start = (self.bias + p.p_vaddr as usize) & !(page - 1);
            let end = (self.bias + (p.p_vaddr + p.p_memsz) as usize) & !(page - 1);
            if at >= start && at < end {
                return libc::PROT_READ;
            }
        }
        let load =
            self.phdrs.iter().find(|p| p.p_type == libc::PT_LOAD && addr.wrapping_sub(self.bias + p.p_vaddr as usize) < p.p_memsz as usize);
        load.map_or(libc::PROT_READ, |p| {
            let f = |flag, prot| if p.p_flags & flag != 0 { prot } else { 0 };
            f(libc::PF_R, libc::PROT_READ) | f(libc::PF_W, libc::PROT_WRITE) | f(libc::PF_X, libc::PROT_EXEC)
        })
    }
}

unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: the linker's record for one module and our state, valid during the callback.
    let (info, state) = unsafe { (&*info, &mut *(data as *mut WalkState)) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: the module's program headers, as the linker reports them.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let m = Module { bias: info.dlpi_addr as usize, phdrs };
    if m.skipped() {
        return 0;
    }
    match state.what {
        Walk::Redirect => {
            // SAFETY: a module the linker lists is mapped and relocated.
            unsafe { redirect_module(&m, &state.ours) }
        }
        Walk::Restore => state.restored += restore_module(&m),
    }
    0
}

/// The tables of a module's PT_DYNAMIC the walk needs.
#[derive(Default)]
struct Tables {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    /// (address, bytes) of DT_JMPREL and DT_RELA.
    rels: [(usize, usize); 2],
}

/// # Safety
/// `m` is a loaded module.
unsafe fn tables(m: &Module) -> Option<Tables> {
    let dynamic = m.phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC)?;
    let mut d = (m.bias + dynamic.p_vaddr as usize) as *const Dyn;
    let mut t = Tables::default();
    let mut pltrel_is_rela = true;
    // SAFETY: the dynamic section ends with DT_NULL.
    unsafe {
        while (*d).tag != DT_NULL {
            let v = (*d).val;
            match (*d).tag {
                DT_SYMTAB => t.symtab = m.abs(v),
                DT_STRTAB => t.strtab = m.abs(v),
                DT_STRSZ => t.strsz = v as usize,
                DT_JMPREL => t.rels[0].0 = m.abs(v),
                DT_PLTRELSZ => t.rels[0].1 = v as usize,
                DT_PLTREL => pltrel_is_rela = v == DT_RELA as u64,
                DT_RELA => t.rels[1].0 = m.abs(v),
                DT_RELASZ => t.rels[1].1 = v as usize,
                _ => {}
            }
            d = d.add(1);
        }
    }
    if !pltrel_is_rela {
        t.rels[0] = (0, 0);
    }
    (t.symtab != 0 && t.strtab != 0).then_some(t)
}

/// Which of `NAMES` the relocation's symbol is, for the GOT-word kinds.
///
/// # Safety
/// `t` are a loaded module's tables and `r` one of its relocations.
unsafe fn named(t: &Tables, r: &Rela) -> Option<usize> {
    let kind = r.info as u32;
    if kind != JUMP_SLOT && kind != GLOB_DAT {
        return None;
    }
    // SAFETY: the relocation's symbol index is inside the module's symbol table.
    let sym = unsafe { &*((t.symtab as *const libc::Elf64_Sym).add((r.info >> 32) as usize)) };
    let at = sym.st_name as usize;
    if sym.st_name == 0 || (t.strsz != 0 && at >= t.strsz) {
        return None;
    }
    NAMES.iter().position(|name| {
        // SAFETY: the string table holds NUL-terminated names: a mismatch stops at the first differing byte.
        (0..name.len()).all(|i| unsafe { *((t.strtab + at + i) as *const u8) } == name[i])
    })
}

/// # Safety
/// `m` is a loaded, relocated module.
unsafe fn redirect_module(m: &Module, ours: &[usize; 12]) {
    // SAFETY: per the contract.
    let Some(t) = (unsafe { tables(m) }) else { return };
    // SAFETY: no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    for (start, bytes) in t.rels {
        for i in 0..bytes / core::mem::size_of::<Rela>() {
            // SAFETY: the relocation table lies in the module's mapped segments.
            let r = unsafe { &*(start as *const Rela).add(i) };
            // SAFETY: as above.
            let Some(which) = (unsafe { named(&t, r) }) else { continue };
            let real = if which == DLMOPEN { &REAL_DLMOPEN } else { &REAL_DLOPEN };
            if which >= 10 && real.load(Ordering::Acquire).is_null() {
                continue;
            }
            let addr = m.bias + r.offset as usize;
            // SAFETY: a GOT word of the module, 8-aligned.
            unsafe { patch(addr, ours[which], m.prot(addr, page), page) };
        }
    }
}

/// Writes `new` into the slot at `addr` and remembers what it held; a slot
/// already holding `new` is left (a second walk, a GLOB_DAT sharing the word).
///
/// # Safety
/// `addr` is an 8-aligned GOT word of a loaded module; the caller holds WALKING.
unsafe fn patch(addr: usize, new: usize, prot: c_int, page: usize) {
    // SAFETY: per the contract.
    let slot = unsafe { &*(addr as *const AtomicUsize) };
    let old = slot.load(Ordering::Acquire);
    if old == new || old == 0 {
        return;
    }
    // SAFETY: only the WALKING holder touches the table.
    let patches = unsafe { &mut *PATCHES.get() };
    let n = COUNT.load(Ordering::Acquire);
    // A module loaded where an unloaded one was patched: its entry is reused.
    let at = patches[..n].iter().position(|p| p.addr == addr).unwrap_or(n);
    if at == MAX_PATCHES || !write(addr, new, prot, page) {
        return;
    }
    patches[at] = Patch { addr, old, new, prot };
    if at == n {
        COUNT.store(n + 1, Ordering::Release);
    }
}

/// Stores `value` at `addr`, making its page writable for the moment if it is not.
fn write(addr: usize, value: usize, prot: c_int, page: usize) -> bool {
    let base = (addr & !(page - 1)) as *mut c_void;
    let locked = prot & libc::PROT_WRITE == 0;
    // SAFETY: the page of a loaded module's GOT, given back its own protection after.
    if locked && unsafe { libc::mprotect(base, page, prot | libc::PROT_WRITE) } != 0 {
        return false;
    }
    // SAFETY: an 8-aligned word of a page now writable.
    unsafe { (*(addr as *const AtomicUsize)).store(value, Ordering::Release) };
    if locked {
        // SAFETY: as above.
        unsafe { libc::mprotect(base, page, prot) };
    }
    true
}

/// Puts back the slots of `m` that still hold what the recorder wrote.
fn restore_module(m: &Module) -> usize {
    // SAFETY: no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // SAFETY: only the WALKING holder touches the table.
    let patches = unsafe { &*PATCHES.get() };
    let mut restored = 0;
    for p in patches[..COUNT.load(Ordering::Acquire)].iter().filter(|p| m.contains(p.addr)) {
        // SAFETY: a word inside the loaded module's segments.
        let now = unsafe { (*(p.addr as *const AtomicUsize)).load(Ordering::Acquire) };
        if now == p.new && write(p.addr, p.old, p.prot, page) {
            restored += 1;
        }
    }
    restored
}

/// A dlopen from a redirected module: loads, then redirects what it loaded.
extern "C" fn dlopen_wrapper(file: *const c_char, mode: c_int) -> *mut c_void {
    let real = REAL_DLOPEN.load(Ordering::Acquire);
    // SAFETY: set before any slot pointed here, to the loader's dlopen.
    let handle = unsafe { core::mem::transmute::<*mut c_void, Dlopen>(real)(file, mode) };
    after_load(handle);
    handle
}

extern "C" fn dlmopen_wrapper(lmid: libc::Lmid_t, file: *const c_char, mode: c_int) -> *mut c_void {
    let real = REAL_DLMOPEN.load(Ordering::Acquire);
    // SAFETY: as in `dlopen_wrapper`; slots are redirected here only when it is set.
    let handle = unsafe { core::mem::transmute::<*mut c_void, Dlmopen>(real)(lmid, file, mode) };
    after_load(handle);
    handle
}

fn after_load(handle: *mut c_void) {
    if !handle.is_null() && ACTIVE.load(Ordering::Acquire) {
        walk(Walk::Redirect);
    }
}
