//! The dynamic linker's announcement of new objects (`_dl_debug_state`, see
//! tracer-ebpf's loaded.rs): the hook program (load/hook_program.rs) on
//! each traced process's dynamic linker, and the table of threads stopped
//! until the new objects' unwind tables are in (under `run`).
//!
//! The probe is a uprobe_multi link: opening a perf-event uprobe on a file
//! every process on the machine maps (the linker) makes the kernel walk them
//! all, which `--follow-forks` would pay for every child.
//! Perf-event uprobes remain the fallback where the kernel refuses the link.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint};
use aya::Ebpf;

use super::uprobe::{multi_link, perf_links};
use crate::probes::discovery::mapped_objects::mapped_objects;
use crate::probes::discovery::symbols::defined_symbol;
use crate::probes::errors::ProbeError;
use crate::probes::load::bpf_sys::ATTACH_UPROBE_MULTI;
use crate::probes::load::hook_program::{HookProgram, HOOK};
use crate::probes::load::link_mode::LinkMode;
use crate::probes::load::object;
use crate::probes::load::programs::Program;
use crate::probes::teardown::HeldLink;
use crate::symbolize::MappedFile;

/// The signal the kernel side stops a thread with (it is never delivered).
pub const PAUSE_SIGNAL: i32 = nix::sys::signal::Signal::SIGURG as i32;

/// The hook on traced processes' dynamic linkers.
pub struct DynamicLinkerHook {
    paused: BpfHashMap<MapData, u32, u32>,
    program: HookProgram,
    /// The hook's file offset by linker file (device, inode).
    offsets: HashMap<(u64, u64), u64>,
}

impl DynamicLinkerHook {
    /// With the program loaded by [`HookProgram::load`].
    pub fn new(ebpf: &mut Ebpf, program: HookProgram) -> Result<Self, ProbeError> {
        Ok(Self { paused: object::map(ebpf, "PAUSED")?, program, offsets: HashMap::new() })
    }

    /// Puts the probe on `pid`'s dynamic linker: its link, none for a
    /// process without one (a static binary). The link detaches when dropped.
    pub fn attach(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
        let Some(linker) = dynamic_linker(pid) else { return Ok(Vec::new()) };
        let what = || format!("uprobe {HOOK} on {}", linker.display());
        match &self.program {
            HookProgram::Multi(prog) => {
                let offset = hook_offset(&mut self.offsets, &linker)?;
                Ok(vec![multi_link(prog, (LinkMode::Multi, ATTACH_UPROBE_MULTI), &linker, &[(offset, 0)], (pid, 0), what)?])
            }
            HookProgram::Perf => {
                let at = UProbeAttachPoint { location: UProbeAttachLocation::Symbol(HOOK), cookie: None };
                perf_links(ebpf, Program::DlLoaded, &linker, pid, [at], what)
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
    let unreadable = |source| ProbeError::Unreadable { path: linker.to_path_buf(), source };
    let meta = std::fs::metadata(linker).map_err(unreadable)?;
    if let Some(&off) = known.get(&(meta.dev(), meta.ino())) {
        return Ok(off);
    }
    let data = MappedFile::open(linker).map_err(unreadable)?;
    let off = defined_symbol(data.bytes(), HOOK).ok_or_else(|| ProbeError::NoSymbol { path: linker.to_path_buf(), symbol: HOOK })?;
    known.insert((meta.dev(), meta.ino()), off);
    Ok(off)
}
