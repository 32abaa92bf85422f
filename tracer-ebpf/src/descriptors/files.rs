//! The current task's descriptor table, read at a system call's exit: the
//! file behind a number, and what that file is (its filesystem's magic, its
//! inode's mode, its dentry's name), classified by [`tracer_common::fdkind`].
//! Structure member offsets come from the kernel's BTF at load.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, generated::bpf_probe_read_kernel as bpf_probe_read_kernel_raw};
use tracer_common::fdkind::{classify, kind_by_mode, needs_name, until_nul, FdKind, Name};

use crate::maps::setting_u32;

// Offsets set by the loader (tracer-user probes/syscalls.rs, from BTF).
/// task_struct.files
#[unsafe(no_mangle)]
static FD_TASK_FILES: u32 = 0;
/// files_struct.fdt
#[unsafe(no_mangle)]
static FD_FILES_FDT: u32 = 0;
/// files_struct.count
#[unsafe(no_mangle)]
static FD_FILES_COUNT: u32 = 0;
/// fdtable.max_fds
#[unsafe(no_mangle)]
static FD_FDT_MAX: u32 = 0;
/// fdtable.fd
#[unsafe(no_mangle)]
static FD_FDT_ARRAY: u32 = 0;
/// fdtable.open_fds
#[unsafe(no_mangle)]
static FD_FDT_OPEN: u32 = 0;
/// file.f_path + path.dentry
#[unsafe(no_mangle)]
static FD_FILE_DENTRY: u32 = 0;
/// file.f_inode
#[unsafe(no_mangle)]
static FD_FILE_INODE: u32 = 0;
/// dentry.d_name + qstr.name
#[unsafe(no_mangle)]
static FD_DENTRY_NAME: u32 = 0;
/// inode.i_mode
#[unsafe(no_mangle)]
static FD_INODE_MODE: u32 = 0;
/// inode.i_sb
#[unsafe(no_mangle)]
static FD_INODE_SB: u32 = 0;
/// super_block.s_magic
#[unsafe(no_mangle)]
static FD_SB_MAGIC: u32 = 0;

#[inline(always)]
fn off(v: &'static u32) -> u64 {
    u64::from(setting_u32(v))
}

/// A fault-safe read of kernel memory at `base + offset` (0 on failure or a null base).
#[inline(always)]
fn read<T: Default>(base: u64, offset: u64) -> T {
    if base == 0 {
        return T::default();
    }
    // SAFETY: a fault-safe read of kernel memory.
    unsafe { bpf_probe_read_kernel((base + offset) as *const T) }.unwrap_or_default()
}

/// A load through a kernel pointer the verifier types from the kernel's BTF
/// (the current task and the pointers read from it): a plain load, checked
/// against the kernel's own structure, that reads 0 if it faults. `offset` is
/// a load-time constant, which the verifier knows.
#[inline(always)]
unsafe fn btf_load<T: Copy>(base: *const u8, offset: u64) -> T {
    // SAFETY: the caller's pointer is a BTF-typed kernel pointer and the
    // offset a member's; the verifier rejects anything else.
    unsafe { core::ptr::read(base.add(offset as usize).cast::<T>()) }
}

/// The current task's fdtable.
struct Fdt {
    /// Tasks sharing the table (threads, CLONE_FILES).
    sharers: u32,
    max: u64,
    /// The array of `struct file *`, and the bitmap of open numbers.
    files: u64,
    open: u64,
}

#[inline(always)]
fn fdtable() -> Fdt {
    // SAFETY: BTF loads from the current task (see btf_load).
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let files: *const u8 = btf_load(task, off(&FD_TASK_FILES));
        let fdt: *const u8 = btf_load(files, off(&FD_FILES_FDT));
        Fdt {
            sharers: btf_load(files, off(&FD_FILES_COUNT)),
            max: u64::from(btf_load::<u32>(fdt, off(&FD_FDT_MAX))),
            files: btf_load(fdt, off(&FD_FDT_ARRAY)),
            open: btf_load(fdt, off(&FD_FDT_OPEN)),
        }
    }
}

/// The `struct file` at number `fd` of the current task (0 when none).
#[inline(always)]
pub fn file_at(fd: u64) -> u64 {
    let fdt = fdtable();
    if fd >= fdt.max {
        return 0;
    }
    read(fdt.files, fd * 8)
}

/// After a close of `fd`: the file another task sharing the table has put at
/// that number since (0 when none, or when no other task shares the table).
#[inline(always)]
pub fn occupant(fd: u64) -> u64 {
    let fdt = fdtable();
    if fdt.sharers <= 1 || fd >= fdt.max {
        return 0;
    }
    read(fdt.files, fd * 8)
}

/// Whether any number in `first..=last` is open in the current task: a bounded
/// scan of the open-descriptor bitmap (the first [`SCAN_WORDS`] words past `first`).
#[inline(always)]
pub fn any_open(first: u64, last: u64) -> bool {
    let Fdt { max, open: bitmap, .. } = fdtable();
    if bitmap == 0 || first >= max {
        return false;
    }
    let last = if last >= max { max - 1 } else { last };
    let (w0, w1) = (first / 64, last / 64);
    for i in 0..SCAN_WORDS {
        let w = w0 + i;
        if w > w1 {
            break;
        }
        let mut bits: u64 = read(bitmap, w * 8);
        if w == w0 {
            bits &= !0u64 << (first % 64);
        }
        if w == w1 && last % 64 != 63 {
            bits &= (1u64 << (last % 64 + 1)) - 1;
        }
        if bits != 0 {
            return true;
        }
    }
    false
}

/// Words of the open-descriptor bitmap [`any_open`] looks at (4096 numbers).
const SCAN_WORDS: u64 = 64;

/// The file behind a descriptor number, what it is and its name.
#[repr(C)]
pub struct FileInfo {
    /// The `struct file` (0: the number is free).
    pub file: u64,
    /// An [`FdKind`] discriminant.
    pub kind: u32,
    pub _pad: u32,
    pub name: Name,
}

/// Fills `out` for number `fd` of the current task; returns 0 when the number
/// is free. A global function: the verifier checks it once, and its caller
/// sees one unknown kind instead of a path per possible kind.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lt_fd_file(fd: u64, out: *mut FileInfo) -> u32 {
    if out.is_null() {
        return 0;
    }
    let file = file_at(fd);
    let (kind, name) = if file != 0 { describe(file) } else { (FdKind::Other, [0; 2]) };
    // SAFETY: the caller's record, of this type's size.
    unsafe { *out = FileInfo { file, kind: kind as u32, _pad: 0, name } };
    u32::from(file != 0)
}

/// What a file is, and (where the kind has one to give) its dentry name.
#[inline(always)]
fn describe(file: u64) -> (FdKind, Name) {
    let (inode, dentry) = read_pair(file, off(&FD_FILE_INODE), off(&FD_FILE_DENTRY));
    // i_mode is a u16: the low bits of the word at its offset.
    let (mode, sb) = read_pair(inode, off(&FD_INODE_MODE), off(&FD_INODE_SB));
    let mode = u32::from(mode as u16);
    if let Some(kind) = kind_by_mode(mode) {
        return (kind, [0; 2]);
    }
    let magic: u64 = read(sb, off(&FD_SB_MAGIC));
    let mut name: Name = [0; 2];
    if needs_name(magic) {
        let name_ptr: u64 = read(dentry, off(&FD_DENTRY_NAME));
        // 16 bytes: within any dentry name (inline names have 40, longer
        // ones are that long); what follows the NUL is cleared below.
        name = until_nul(read(name_ptr, 0));
    }
    (classify(magic, mode, name), name)
}

/// Two 8-byte fields of a kernel structure: one read when both lie in one
/// 64-byte window at word offsets of each other, else two.
#[inline(always)]
fn read_pair(base: u64, a: u64, b: u64) -> (u64, u64) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let span = hi - lo + 8;
    if base == 0 || span > 64 || (hi - lo) % 8 != 0 {
        return (read(base, a), read(base, b));
    }
    let mut words = [0u64; 8];
    // SAFETY: a fault-safe read of `span` (≤ 64) bytes into our 64-byte buffer.
    unsafe { bpf_probe_read_kernel_raw((&raw mut words).cast::<c_void>(), (span & 127) as u32, (base + lo) as *const c_void) };
    let at = |off: u64| words.get(((off - lo) / 8) as usize).copied().unwrap_or(0);
    (at(a), at(b))
}
