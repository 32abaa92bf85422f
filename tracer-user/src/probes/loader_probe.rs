//! The dynamic linker's announcement of new objects (`_dl_debug_state`, see
//! tracer-ebpf's loaded.rs): a uprobe per traced process on its dynamic
//! linker, and the table of threads stopped until the new objects' unwind
//! tables are in (under `run`).

use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use super::loader::{attach_err, program};
use super::{ProbeError, Program};

/// The signal the kernel side stops a thread with (it is never delivered).
pub const PAUSE_SIGNAL: i32 = libc::SIGURG;

pub struct LoaderProbe {
    paused: BpfHashMap<MapData, u32, u32>,
}

impl LoaderProbe {
    pub fn load(ebpf: &mut Ebpf) -> Result<Self, ProbeError> {
        let p: &mut UProbe = program(ebpf, Program::DlLoaded)?;
        p.load().map_err(attach_err("dl_loaded (load)"))?;
        let map = ebpf.take_map("PAUSED").ok_or_else(|| ProbeError::Load("map PAUSED missing from the object".into()))?;
        let paused = BpfHashMap::try_from(map).map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok(Self { paused })
    }

    /// Puts the probe on `pid`'s dynamic linker; None for a process without
    /// one (a static binary). The link detaches when dropped.
    pub fn attach(&self, ebpf: &mut Ebpf, pid: u32) -> Result<Option<Box<dyn Send>>, ProbeError> {
        let Some(linker) = dynamic_linker(pid) else { return Ok(None) };
        let scope = UProbeScope::OneProcess(std::num::NonZeroU32::new(pid).ok_or_else(|| ProbeError::Load("pid 0".into()))?);
        let p: &mut UProbe = program(ebpf, Program::DlLoaded)?;
        let what = || format!("uprobe _dl_debug_state on {}", linker.display());
        let id = p.attach(UProbeAttachLocation::Symbol("_dl_debug_state"), &linker, scope).map_err(attach_err(what()))?;
        Ok(Some(Box::new(p.take_link(id).map_err(attach_err(what()))?)))
    }

    /// Whether the kernel stopped thread `tid` for tables (and forgets it); its process.
    pub fn take_paused(&mut self, tid: u32) -> Option<u32> {
        let tgid = self.paused.get(&tid, 0).ok()?;
        let _ = self.paused.remove(&tid);
        Some(tgid)
    }
}

/// The dynamic linker `pid` has mapped, as a path leaktrace can open (inside the process's root).
fn dynamic_linker(pid: u32) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let path = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| {
        Path::new(p).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ld-linux") || n.starts_with("ld-musl"))
    })?;
    Some(PathBuf::from(format!("/proc/{pid}/root{path}")))
}
