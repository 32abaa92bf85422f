//! The current task's descriptor table, read at a system call's exit: the
//! file behind a number, and what that file is (its filesystem's magic, its
//! inode's mode, its dentry's name), classified by [`tracer_common::fdkind`].
//! Structure member offsets come from the kernel's BTF at load.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, generated::bpf_probe_read_kernel_str};
use tracer_common::fdkind::{classify, FdKind, Name};

use crate::maps::setting_u32;

// Offsets set by the loader (tracer-user probes/syscalls.rs, from BTF).
/// task_struct.files
#[unsafe(no_mangle)]
static FD_TASK_FILES: u32 = 0;
/// files_struct.fdt
#[unsafe(no_mangle)]
static FD_FILES_FDT: u32 = 0;
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

/// The current task's fdtable.
#[inline(always)]
fn fdtable() -> u64 {
    // SAFETY: a helper without arguments; the task is only read fault-safe.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let files: u64 = read(task, off(&FD_TASK_FILES));
    read(files, off(&FD_FILES_FDT))
}

/// The `struct file` at number `fd` of the current task (0 when none).
#[inline(always)]
pub fn file_at(fd: u64) -> u64 {
    let fdt = fdtable();
    let max: u32 = read(fdt, off(&FD_FDT_MAX));
    if fd >= u64::from(max) {
        return 0;
    }
    let array: u64 = read(fdt, off(&FD_FDT_ARRAY));
    read(array, fd * 8)
}

/// Whether any number in `first..=last` is open in the current task: a bounded
/// scan of the open-descriptor bitmap (the first [`SCAN_WORDS`] words past `first`).
#[inline(always)]
pub fn any_open(first: u64, last: u64) -> bool {
    let fdt = fdtable();
    let max = u64::from(read::<u32>(fdt, off(&FD_FDT_MAX)));
    let bitmap: u64 = read(fdt, off(&FD_FDT_OPEN));
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

/// What a file is, and its dentry name.
#[inline(always)]
fn describe(file: u64) -> (FdKind, Name) {
    let mut name: Name = [0; 2];
    let dentry: u64 = read(file, off(&FD_FILE_DENTRY));
    let name_ptr: u64 = read(dentry, off(&FD_DENTRY_NAME));
    if name_ptr != 0 {
        // SAFETY: a fault-safe string read into our 16-byte buffer (NUL-terminated, rest stays 0).
        unsafe { bpf_probe_read_kernel_str((&raw mut name).cast::<c_void>(), 16, name_ptr as *const c_void) };
    }
    let inode: u64 = read(file, off(&FD_FILE_INODE));
    let mode: u16 = read(inode, off(&FD_INODE_MODE));
    let sb: u64 = read(inode, off(&FD_INODE_SB));
    let magic: u64 = read(sb, off(&FD_SB_MAGIC));
    (classify(magic, u32::from(mode), name), name)
}
