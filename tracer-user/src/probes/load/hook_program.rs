//! The dynamic linker's hook program (`dl_loaded`, on `_dl_debug_state`:
//! objects mapped), loaded for uprobe_multi links, or as aya's perf-event
//! uprobe where the kernel refuses those. attach/dynamic_linker.rs hangs it
//! on each traced process's dynamic linker.

use std::os::fd::OwnedFd;

use aya::programs::UProbe;
use aya::Ebpf;

use super::bpf_sys::ATTACH_UPROBE_MULTI;
use super::features;
use super::link_mode::LinkMode;
use super::object::program;
use super::programs::Program;
use super::raw_programs::RawObject;
use crate::probes::errors::{aya_load_error, ProbeError};

/// The hook's name in the dynamic linker.
pub const HOOK: &str = "_dl_debug_state";

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
