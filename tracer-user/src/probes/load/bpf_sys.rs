//! The bpf() commands aya 0.14 cannot issue the way leaktrace needs them:
//! loading the object's BTF (for the programs loaded here), loading a
//! program with the uprobe_multi or uprobe-session attach type (or a small
//! hand-written one, for `leaktrace check`), creating one uprobe_multi link
//! over many offsets, pinning a link for the teardown, and the feature
//! probes' map and tracepoint. No maintained crate (rustix, nix) wraps
//! bpf(): this module is leaktrace's only direct system call (libc's
//! `syscall` with `SYS_bpf`), and its `unsafe` is that call and the
//! descriptor it returns.
//!
//! Each attribute block is the prefix of `union bpf_attr` that its command
//! reads (include/uapi/linux/bpf.h); the kernel zero-fills the rest. The
//! layouts are checked against aya-obj's generated bindings in the tests;
//! every field is spelled out, so no padding byte of unknown value reaches the kernel.

use std::ffi::{c_long, CStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use aya_obj::generated::bpf_insn;

use super::refusal::{LoadedFor, Refused};

const BPF_MAP_CREATE: c_long = 0;
const BPF_PROG_LOAD: c_long = 5;
const BPF_OBJ_PIN: c_long = 6;
const BPF_RAW_TRACEPOINT_OPEN: c_long = 17;
const BPF_BTF_LOAD: c_long = 18;
const BPF_LINK_CREATE: c_long = 28;
/// BPF_TRACE_UPROBE_MULTI: a program for uprobe_multi links.
pub const ATTACH_UPROBE_MULTI: u32 = 48;
/// BPF_TRACE_UPROBE_SESSION: a program for uprobe sessions (Linux 6.13).
pub const ATTACH_UPROBE_SESSION: u32 = 57;
/// BPF_PROG_TYPE_KPROBE: uprobe programs are kprobe programs to the kernel.
pub const PROG_TYPE_KPROBE: u32 = 2;
/// Verifier log buffer for the message of a refused program or BTF.
const LOG_BYTES: usize = 1 << 20;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    /// Unused here; spelled out so the block has no padding bytes.
    attach_btf_id: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct RawTracepointAttr {
    /// No name: a tp_btf program's tracepoint is the one it was loaded for.
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    btf_log_true_size: u32,
}

#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    link_flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    flags: u32,
    pid: u32,
    /// No padding bytes of undefined value.
    _pad: u32,
}

/// BTF func_info or line_info records of one program, as the kernel reads them.
pub struct BtfRecords<'a> {
    pub bytes: &'a [u8],
    pub rec_size: u32,
    pub count: u32,
}

impl BtfRecords<'_> {
    pub const NONE: BtfRecords<'static> = BtfRecords { bytes: &[], rec_size: 0, count: 0 };
}

/// A program to load.
pub struct ProgLoad<'a> {
    pub prog_type: u32,
    pub name: &'a str,
    pub expected_attach_type: u32,
    /// The kernel function or tracepoint (BTF id in vmlinux) a tracing program is for.
    pub attach_btf_id: u32,
    pub insns: &'a [bpf_insn],
    pub license: &'a CStr,
    /// The object's BTF, which func_info and line_info refer to.
    pub btf: Option<BorrowedFd<'a>>,
    pub func_info: BtfRecords<'a>,
    pub line_info: BtfRecords<'a>,
}

/// bpf(cmd, attr): what the kernel returned.
fn bpf_call<T>(cmd: c_long, attr: &mut T) -> io::Result<c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of union
    // bpf_attr for `cmd`, and its size is passed with it; every pointer it
    // holds refers to memory the caller keeps alive across this call.
    let ret = unsafe { nix::libc::syscall(nix::libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// bpf(cmd, attr) for commands that return a new file descriptor.
fn sys_bpf<T>(cmd: c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let ret = bpf_call(cmd, attr)?;
    // SAFETY: on success these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// A log buffer's text, up to the kernel's terminating NUL.
fn log_text(log: &[u8]) -> String {
    String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(log.len())]).into_owned()
}

/// BPF_BTF_LOAD.
pub fn load_btf(btf: &[u8]) -> Result<OwnedFd, Refused> {
    let mut attr = BtfLoadAttr { btf: btf.as_ptr() as u64, btf_size: btf.len() as u32, ..Default::default() };
    with_log(BPF_BTF_LOAD, &mut attr, |a, log| {
        (a.btf_log_buf, a.btf_log_size, a.btf_log_level) = (log.as_mut_ptr() as u64, log.len() as u32, 1);
    })
}

/// Runs `cmd`; when refused, runs it again with a log (`set_log` points the
/// attributes at it) to say why.
fn with_log<T>(cmd: c_long, attr: &mut T, set_log: impl FnOnce(&mut T, &mut [u8])) -> Result<OwnedFd, Refused> {
    sys_bpf(cmd, attr).or_else(|error| {
        let mut log = vec![0u8; LOG_BYTES];
        set_log(attr, &mut log);
        sys_bpf(cmd, attr).map_err(|_| Refused { error, log: log_text(&log), loaded_for: LoadedFor::Plain })
    })
}

/// BPF_PROG_LOAD.
pub fn load_program(p: &ProgLoad) -> Result<OwnedFd, Refused> {
    let mut prog_name = [0u8; 16];
    let name = p.name.as_bytes();
    prog_name[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
    let mut attr = ProgLoadAttr {
        prog_type: p.prog_type,
        insn_cnt: p.insns.len() as u32,
        insns: p.insns.as_ptr() as u64,
        license: p.license.as_ptr() as u64,
        prog_name,
        expected_attach_type: p.expected_attach_type,
        prog_btf_fd: p.btf.map_or(0, |fd| fd.as_raw_fd() as u32),
        func_info_rec_size: p.func_info.rec_size,
        func_info: p.func_info.bytes.as_ptr() as u64,
        func_info_cnt: p.func_info.count,
        line_info_rec_size: p.line_info.rec_size,
        line_info: p.line_info.bytes.as_ptr() as u64,
        line_info_cnt: p.line_info.count,
        attach_btf_id: p.attach_btf_id,
        ..Default::default()
    };
    with_log(BPF_PROG_LOAD, &mut attr, |a, log| {
        (a.log_buf, a.log_size, a.log_level) = (log.as_mut_ptr() as u64, log.len() as u32, 1);
    })
}

/// One uprobe_multi link: `prog` on every offset of `path` in process `pid`,
/// each offset with its cookie. `flags` is BPF_F_UPROBE_MULTI_RETURN or 0.
pub fn uprobe_multi_link(
    prog: BorrowedFd,
    attach_type: u32,
    path: &CStr,
    offsets: &[u64],
    cookies: &[u64],
    pid: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    assert_eq!(offsets.len(), cookies.len(), "one cookie per offset");
    let mut attr = UprobeMultiLinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        cookies: cookies.as_ptr() as u64,
        cnt: offsets.len() as u32,
        flags,
        pid,
        ..Default::default()
    };
    sys_bpf(BPF_LINK_CREATE, &mut attr)
}

/// BPF_OBJ_PIN: the file at `path` (on a bpffs) holds the object too.
pub fn pin(object: BorrowedFd, path: &CStr) -> io::Result<()> {
    let mut attr = ObjPinAttr { pathname: path.as_ptr() as u64, bpf_fd: object.as_raw_fd() as u32, file_flags: 0 };
    bpf_call(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// BPF_MAP_CREATE of a map without BTF.
pub fn create_map(map_type: u32, key_size: u32, value_size: u32, max_entries: u32, map_flags: u32) -> io::Result<OwnedFd> {
    sys_bpf(BPF_MAP_CREATE, &mut MapCreateAttr { map_type, key_size, value_size, max_entries, map_flags })
}

/// BPF_RAW_TRACEPOINT_OPEN of a tp_btf program on the tracepoint it was loaded for.
pub fn attach_tp_btf(prog: BorrowedFd) -> io::Result<OwnedFd> {
    sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &mut RawTracepointAttr { prog_fd: prog.as_raw_fd() as u32, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use aya_obj::generated::{
        bpf_attr__bindgen_ty_1 as MapCreate, bpf_attr__bindgen_ty_11 as RawTracepoint, bpf_attr__bindgen_ty_12 as BtfLoad,
        bpf_attr__bindgen_ty_14 as LinkCreate, bpf_attr__bindgen_ty_14__bindgen_ty_3__bindgen_ty_7 as UprobeMulti,
        bpf_attr__bindgen_ty_4 as ProgLoad, bpf_attr__bindgen_ty_5 as ObjPin,
    };

    use super::*;

    #[test]
    fn attribute_layouts_match_the_kernel_headers() {
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), offset_of!(ProgLoad, expected_attach_type));
        assert_eq!(offset_of!(ProgLoadAttr, prog_btf_fd), offset_of!(ProgLoad, prog_btf_fd));
        assert_eq!(offset_of!(ProgLoadAttr, func_info), offset_of!(ProgLoad, func_info));
        assert_eq!(offset_of!(ProgLoadAttr, line_info_cnt), offset_of!(ProgLoad, line_info_cnt));
        assert_eq!(offset_of!(ProgLoadAttr, attach_btf_id), offset_of!(ProgLoad, attach_btf_id));
        assert_eq!(size_of::<ProgLoadAttr>(), offset_of!(ProgLoad, attach_btf_id) + 4);
        assert_eq!(offset_of!(BtfLoadAttr, btf_log_level), offset_of!(BtfLoad, btf_log_level));
        assert_eq!(offset_of!(MapCreateAttr, map_flags), offset_of!(MapCreate, map_flags));
        assert_eq!(offset_of!(RawTracepointAttr, prog_fd), offset_of!(RawTracepoint, prog_fd));
        assert_eq!(size_of::<RawTracepointAttr>(), offset_of!(RawTracepoint, cookie));
        assert_eq!(offset_of!(ObjPinAttr, bpf_fd), offset_of!(ObjPin, bpf_fd));
        assert_eq!(size_of::<ObjPinAttr>(), offset_of!(ObjPin, path_fd));
        assert_eq!(offset_of!(UprobeMultiLinkAttr, attach_type), offset_of!(LinkCreate, attach_type));
        assert_eq!(offset_of!(UprobeMultiLinkAttr, path), offset_of!(LinkCreate, __bindgen_anon_3));
        let multi = offset_of!(LinkCreate, __bindgen_anon_3);
        assert_eq!(offset_of!(UprobeMultiLinkAttr, cookies), multi + offset_of!(UprobeMulti, cookies));
        assert_eq!(offset_of!(UprobeMultiLinkAttr, pid), multi + offset_of!(UprobeMulti, pid));
    }

    #[test]
    fn the_log_ends_at_the_kernels_nul() {
        let log = b"0: r1 = 0\n1: call 5\ninvalid func unknown#5\n\0garbage";
        assert_eq!(log_text(log), "0: r1 = 0\n1: call 5\ninvalid func unknown#5\n");
    }
}
