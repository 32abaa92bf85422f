//! What the running kernel offers leaktrace, each probed for real: a tiny
//! hand-written program loaded (and attached where that is the question), a
//! map created and mapped, a link tried. `leaktrace check` prints them; the
//! loader asks the link probes before choosing how to hang uprobes.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{is_helper_supported, is_map_supported, BpfHelper};
use aya_obj::btf::BtfKind;
use aya_obj::generated::bpf_insn;
use rustix::io::Errno;
use serde::Serialize;

use super::bpf_sys::{self, BtfRecords, ProgLoad, ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION};
use super::link_mode::LinkMode;
use super::refusal::Refused;

const PROG_TYPE_TRACING: u32 = 26;
const ATTACH_TRACE_RAW_TP: u32 = 23;
const MAP_TYPE_ARRAY: u32 = 2;
const F_MMAPABLE: u32 = 1 << 10;
/// A tracepoint every kernel leaktrace runs on has.
const TP_BTF_TARGET: &str = "btf_trace_sched_process_exit";

/// Whether the kernel has a feature; `None` when the probe itself failed
/// (the reason is in the feature's detail).
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub key: &'static str,
    pub name: &'static str,
    /// The upstream release that brought it.
    pub since: &'static str,
    pub available: Option<bool>,
    pub detail: String,
}

/// Every feature leaktrace cares about, probed now.
pub fn probe_all() -> Vec<Feature> {
    let feature = |key, name, since, (available, detail): (Option<bool>, String)| Feature { key, name, since, available, detail };
    let helper = |h| both_types(|t| is_helper_supported(t, h).map_err(|e| e.to_string()));
    vec![
        feature("btf", "BTF", "5.4", btf()),
        feature("tp_btf", "tp_btf programs", "5.5", tp_btf()),
        feature("bpf_loop", "bpf_loop", "5.17", helper(BpfHelper::BPF_FUNC_loop)),
        feature("bpf_find_vma", "bpf_find_vma", "5.17", helper(BpfHelper::BPF_FUNC_find_vma)),
        feature("ring_buffer", "ring buffer", "5.8", said(is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()))),
        feature("mmapable_arrays", "mmapable arrays (BPF_F_MMAPABLE)", "5.5", mmapable_array()),
        feature("uprobe_multi", "uprobe_multi links", "6.6", said(link_probe(ATTACH_UPROBE_MULTI))),
        feature("uprobe_session", "uprobe sessions", "6.13", said(link_probe(ATTACH_UPROBE_SESSION))),
        feature("private_stacks", "private BPF stacks", "6.13, x86-64", private_stacks()),
    ]
}

/// Whether the kernel makes links of this kind (probed once).
pub(crate) fn has_links(mode: LinkMode) -> bool {
    static MULTI: OnceLock<bool> = OnceLock::new();
    static SESSION: OnceLock<bool> = OnceLock::new();
    match mode {
        LinkMode::PerfEvent => true,
        LinkMode::Multi => *MULTI.get_or_init(|| link_probe(ATTACH_UPROBE_MULTI).unwrap_or(false)),
        LinkMode::Session => *SESSION.get_or_init(|| link_probe(ATTACH_UPROBE_SESSION).unwrap_or(false)),
    }
}

fn said(r: Result<bool, String>) -> (Option<bool>, String) {
    match r {
        Ok(b) => (Some(b), String::new()),
        Err(e) => (None, e),
    }
}

/// A helper for both kinds of program leaktrace loads (uprobes are kprobe
/// programs; the descriptor programs are tracepoint programs).
fn both_types(probe: impl Fn(ProgramType) -> Result<bool, String>) -> (Option<bool>, String) {
    let r = probe(ProgramType::KProbe).and_then(|k| Ok((k, probe(ProgramType::TracePoint)?)));
    match r {
        Ok((true, true)) => (Some(true), String::new()),
        Ok((k, _)) => (Some(false), format!("not for {} programs", if k { "tracepoint" } else { "uprobe" })),
        Err(e) => (None, e),
    }
}

fn btf() -> (Option<bool>, String) {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    if !Path::new(VMLINUX).exists() {
        return (Some(false), format!("{VMLINUX} is missing (CONFIG_DEBUG_INFO_BTF)"));
    }
    match aya::features().btf() {
        Some(_) => (Some(true), VMLINUX.into()),
        None => (Some(false), "the kernel refuses to load BTF".into()),
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
    bpf_insn { code, _bitfield_align_1: [], _bitfield_1: bpf_insn::new_bitfield_1(dst, src), off, imm }
}

const R0: u8 = 0;
const R10: u8 = 10;
/// r0 = 0; exit.
fn return_zero() -> [bpf_insn; 2] {
    [insn(0xb7, R0, 0, 0, 0), insn(0x95, 0, 0, 0, 0)]
}

fn load(prog_type: u32, expected_attach_type: u32, attach_btf_id: u32, insns: &[bpf_insn]) -> Result<OwnedFd, Refused> {
    bpf_sys::load_program(&ProgLoad {
        prog_type,
        name: "lt_check",
        expected_attach_type,
        attach_btf_id,
        insns,
        license: c"GPL",
        btf: None,
        func_info: BtfRecords::NONE,
        line_info: BtfRecords::NONE,
    })
}

/// A tp_btf program on sched_process_exit, loaded and attached.
fn tp_btf() -> (Option<bool>, String) {
    let id = match aya::Btf::from_sys_fs().and_then(|b| b.id_by_type_name_kind(TP_BTF_TARGET, BtfKind::Typedef)) {
        Ok(id) => id,
        Err(e) => return (None, format!("{TP_BTF_TARGET} in the kernel's BTF: {e}")),
    };
    let prog = match load(PROG_TYPE_TRACING, ATTACH_TRACE_RAW_TP, id, &return_zero()) {
        Ok(fd) => fd,
        Err(e) => return (Some(false), e.to_string()),
    };
    match bpf_sys::attach_tp_btf(prog.as_fd()) {
        Ok(_link) => (Some(true), String::new()),
        Err(e) => (Some(false), format!("loads, but does not attach: {e}")),
    }
}

/// An array map with BPF_F_MMAPABLE, mapped into leaktrace.
fn mmapable_array() -> (Option<bool>, String) {
    let page = rustix::param::page_size();
    let map = match bpf_sys::create_map(MAP_TYPE_ARRAY, 4, 8, (page / 8) as u32, F_MMAPABLE) {
        Ok(fd) => fd,
        Err(e) if Errno::from_io_error(&e) == Some(Errno::INVAL) => return (Some(false), String::new()),
        Err(e) => return (None, e.to_string()),
    };
    // SAFETY: the mapping is of a map only this function holds; nothing else
    // writes it while it lives, and it is dropped before the map.
    let mapped = unsafe { memmap2::MmapOptions::new().len(page).map_mut(&map) };
    match mapped {
        Ok(_) => (Some(true), String::new()),
        Err(e) => (Some(false), format!("created, but not mapped: {e}")),
    }
}

/// A link of `attach_type` on "/": a kernel that knows the link gets as
/// far as finding "/" is no regular file (EBADF), one that does not refuses
/// the attach type (EINVAL). libbpf probes uprobe_multi the same way.
fn link_probe(attach_type: u32) -> Result<bool, String> {
    let prog = match load(bpf_sys::PROG_TYPE_KPROBE, attach_type, 0, &return_zero()) {
        Ok(fd) => fd,
        Err(e) if Errno::from_io_error(&e.error) == Some(Errno::INVAL) => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    match bpf_sys::uprobe_multi_link(prog.as_fd(), attach_type, c"/", &[0], &[0], 0, 0) {
        Err(e) if Errno::from_io_error(&e) == Some(Errno::BADF) => Ok(true),
        Err(e) if Errno::from_io_error(&e) == Some(Errno::INVAL) => Ok(false),
        Err(e) => Err(format!("unexpected answer: {e}")),
        Ok(_) => Err("the kernel linked a probe on \"/\"".into()),
    }
}

/// Bytes each of the probe's two functions keeps on its stack: together
/// over the kernel's 512, each well under it.
const PRIVATE_STACK_FRAME: i16 = 304;

/// A uprobe-type program whose call chain (main → f → g, f and g with
/// 304-byte frames) needs 672 bytes of stack: it loads only where the
/// kernel gives the program a private stack.
fn private_stacks() -> (Option<bool>, String) {
    const CALL: u8 = 0x85;
    const PSEUDO_CALL: u8 = 1;
    const STORE_DW_IMM: u8 = 0x7a;
    let [zero, exit] = return_zero();
    let frame = insn(STORE_DW_IMM, R10, 0, -PRIVATE_STACK_FRAME, 0);
    let insns = [
        insn(CALL, 0, PSEUDO_CALL, 0, 2), // main: f()
        zero,
        exit,
        frame, // f: its frame, then g()
        insn(CALL, 0, PSEUDO_CALL, 0, 2),
        zero,
        exit,
        frame, // g: its frame
        zero,
        exit,
    ];
    match load(bpf_sys::PROG_TYPE_KPROBE, 0, 0, &insns) {
        Ok(_) => (Some(true), String::new()),
        Err(e) if e.log.contains("combined stack size") => (Some(false), String::new()),
        Err(e) => (None, e.to_string()),
    }
}
