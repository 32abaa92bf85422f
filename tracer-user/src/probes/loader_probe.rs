//! The dynamic linker's announcement of new objects (`_dl_debug_state`, see
//! tracer-ebpf's loaded.rs): a probe per traced process on its dynamic
//! linker, and the table of threads stopped until the new objects' unwind
//! tables are in (under `run`).
//!
//! The probe is a uprobe_multi link: opening a perf-event uprobe on a file
//! every process on the machine maps (the linker) makes the kernel walk them
//! all, which `--follow-forks` would pay for every child.
//! Perf-event uprobes remain the fallback where the kernel refuses the link.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use super::allocator::defined_symbol;
use super::errors::attach_err;
use super::features;
use super::links::LinkMode;
use super::mapped_objects::mapped_objects;
use super::programs::program;
use super::raw_programs::{RawObject, ATTACH_UPROBE_MULTI};
use super::refusal::aya_load_error;
use super::teardown::HeldLink;
use super::{bpf_sys, ProbeError, Program};
use crate::symbolize::MappedFile;

/// The signal the kernel side stops a thread with (it is never delivered).
pub const PAUSE_SIGNAL: i32 = libc::SIGURG;

/// The hook's name in the dynamic linker.
const HOOK: &str = "_dl_debug_state";

/// How the probe's program is hung on a process.
pub enum HookProgram {
    /// Loaded for uprobe_multi links (one offset per process).
    Multi(OwnedFd),
    /// aya's perf-event uprobe (the kernel refused the first).
    Perf,
}

impl HookProgram {
    /// The program for uprobe_multi links, or the fallback (loaded into
    /// `ebpf`) and why.
    pub fn load(raw: &RawObject, ebpf: &mut Ebpf) -> Result<(Self, Option<String>), ProbeError> {
        let why_not = if features::has_links(LinkMode::Multi) {
            match raw.load(Program::DlLoaded, ATTACH_UPROBE_MULTI) {
                Ok(fd) => return Ok((Self::Multi(fd), None)),
                Err(e) => format!("the kernel refused a uprobe_multi program for {HOOK} ({e})"),
            }
        } else {
            "the kernel has no uprobe_multi links".to_owned()
        };
        let p: &mut UProbe = program(ebpf, Program::DlLoaded)?;
        p.load().map_err(aya_load_error(Program::DlLoaded.name()))?;
        Ok((Self::Perf, Some(format!("{why_not}: the hook on {HOOK} is a perf-event uprobe (slow to attach to each process: the kernel walks every process that maps the linker)"))))
    }

    pub fn mode(&self) -> LinkMode {
        match self {
            Self::Multi(_) => LinkMode::Multi,
            Self::Perf => LinkMode::PerfEvent,
        }
    }
}

pub struct LoaderProbe {
    paused: BpfHashMap<MapData, u32, u32>,
    program: HookProgram,
    /// The hook's file offset by linker file (device, inode).
    offsets: HashMap<(u64, u64), u64>,
}

impl LoaderProbe {
    /// With the program loaded by [`HookProgram::load`].
    pub fn new(ebpf: &mut Ebpf, program: HookProgram) -> Result<Self, ProbeError> {
        let map = ebpf.take_map("PAUSED").ok_or_else(|| ProbeError::Load("map PAUSED missing from the object".into()))?;
        let paused = BpfHashMap::try_from(map).map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok(Self { paused, program, offsets: HashMap::new() })
    }

    /// Puts the probe on `pid`'s dynamic linker; None for a process without
    /// one (a static binary). The link detaches when dropped.
    pub fn attach(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<Option<Box<dyn HeldLink>>, ProbeError> {
        let Some(linker) = dynamic_linker(pid) else { return Ok(None) };
        let what = || format!("uprobe {HOOK} on {}", linker.display());
        match &self.program {
            HookProgram::Multi(prog) => {
                let offset = hook_offset(&mut self.offsets, &linker)?;
                let path = CString::new(linker.as_os_str().as_bytes()).map_err(|_| ProbeError::Load("a path with a NUL byte".into()))?;
                let link = bpf_sys::uprobe_multi_link(prog.as_fd(), ATTACH_UPROBE_MULTI, &path, &[offset], &[0], pid, 0)
                    .map_err(|e| ProbeError::Attach { what: what(), detail: format!("uprobe_multi link: {e}") })?;
                Ok(Some(Box::new(link)))
            }
            HookProgram::Perf => {
                let scope = UProbeScope::OneProcess(std::num::NonZeroU32::new(pid).ok_or_else(|| ProbeError::Load("pid 0".into()))?);
                let p: &mut UProbe = program(ebpf, Program::DlLoaded)?;
                let id = p.attach(UProbeAttachLocation::Symbol(HOOK), &linker, scope).map_err(attach_err(what()))?;
                Ok(Some(Box::new(p.take_link(id).map_err(attach_err(what()))?)))
            }
        }
    }

    /// Whether the kernel stopped thread `tid` for tables (and forgets it); its process.
    pub fn take_paused(&mut self, tid: u32) -> Option<u32> {
        let tgid = self.paused.get(&tid, 0).ok()?;
        let _ = self.paused.remove(&tid);
        Some(tgid)
    }
}

/// The dynamic linker `pid` has mapped, as the file it mapped.
fn dynamic_linker(pid: u32) -> Option<PathBuf> {
    let objects = mapped_objects(pid).ok()?;
    let linker = objects.into_iter().find(|o| {
        o.shown.file_name().map(|n| n.as_encoded_bytes()).is_some_and(|n| n.starts_with(b"ld-linux") || n.starts_with(b"ld-musl"))
    })?;
    Some(linker.open)
}

/// The hook's file offset in `linker` (read once per file).
fn hook_offset(known: &mut HashMap<(u64, u64), u64>, linker: &Path) -> Result<u64, ProbeError> {
    let unreadable = |detail: String| ProbeError::Unreadable { path: linker.to_path_buf(), detail };
    let meta = std::fs::metadata(linker).map_err(|e| unreadable(e.to_string()))?;
    if let Some(&off) = known.get(&(meta.dev(), meta.ino())) {
        return Ok(off);
    }
    let data = MappedFile::open(linker).map_err(|e| unreadable(e.to_string()))?;
    let off = defined_symbol(data.bytes(), HOOK).ok_or_else(|| unreadable(format!("no {HOOK} symbol")))?;
    known.insert((meta.dev(), meta.ino()), off);
    Ok(off)
}
