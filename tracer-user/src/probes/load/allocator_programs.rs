//! The allocator's programs, loaded for the best link the kernel makes: one
//! uprobe session program, or entry and return programs for uprobe_multi
//! links, or aya's perf-event uprobes when the kernel refuses both. In: the
//! raw object and the link mode asked for; out: [`LoadedAllocator`], which
//! attach/allocator_links.rs hangs on each process, and a warning when a
//! better mode was refused.

use std::os::fd::OwnedFd;

use aya::programs::UProbe;
use aya::Ebpf;

use super::bpf_sys::{ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION};
use super::features;
use super::link_mode::LinkMode;
use super::object::program;
use super::programs::Program;
use super::raw_programs::RawObject;
use crate::probes::errors::{aya_load_error, ProbeError};

/// What goes on the allocator's probe points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocatorPrograms {
    /// leaktrace's own programs: every allocation and release is traced.
    #[default]
    Trace,
    /// Benchmarks: empty programs at the same entry and return points (the
    /// cost of the traps before any work).
    Floor,
    /// Benchmarks: empty programs at the entry points only, no return probes
    /// (the cost of bare uprobe hits).
    FloorEntries,
}

/// The allocator programs, ready to hang on a process.
pub enum LoadedAllocator {
    /// Loaded here, for uprobe session or uprobe_multi links.
    Raw { mode: LinkMode, entry: OwnedFd, exit: Option<OwnedFd> },
    /// aya's perf-event uprobes (loaded at first use).
    Perf { entry: Program, exit: Option<Program>, loaded: bool },
}

impl LoadedAllocator {
    pub(crate) fn mode(&self) -> LinkMode {
        match self {
            Self::Raw { mode, .. } => *mode,
            Self::Perf { .. } => LinkMode::PerfEvent,
        }
    }

    /// Perf-event uprobes: loads aya's programs unless they are.
    pub(crate) fn load_perf(&mut self, ebpf: &mut Ebpf) -> Result<(), ProbeError> {
        if let Self::Perf { entry, exit, loaded: loaded @ false } = self {
            for prog in std::iter::once(*entry).chain(*exit) {
                let p: &mut UProbe = program(ebpf, prog)?;
                p.load().map_err(aya_load_error(prog.name()))?;
            }
            *loaded = true;
        }
        Ok(())
    }
}

/// The programs for a mode: the entry (or session) program and the return program.
pub(crate) fn programs_for(mode: LinkMode, programs: AllocatorPrograms) -> (Program, Option<Program>) {
    use AllocatorPrograms::*;
    match (mode, programs) {
        (LinkMode::Session, Trace) => (Program::AllocSession, None),
        (LinkMode::Session, Floor) => (Program::FloorSession, None),
        (LinkMode::Session, FloorEntries) => (Program::FloorSessionEntries, None),
        (_, Trace) => (Program::AllocEnter, Some(Program::AllocExit)),
        (_, Floor) => (Program::FloorEnter, Some(Program::FloorExit)),
        (_, FloorEntries) => (Program::FloorEnter, None),
    }
}

/// Loads the programs for the requested mode, or the best the kernel
/// accepts; the warning says why a better mode was not used.
pub(crate) fn load(
    raw: &RawObject,
    requested: Option<LinkMode>,
    programs: AllocatorPrograms,
) -> Result<(LoadedAllocator, Option<String>), ProbeError> {
    let mut refused = Vec::new();
    let mut candidates = Vec::new();
    for mode in requested.map_or_else(|| vec![LinkMode::Session, LinkMode::Multi, LinkMode::PerfEvent], |m| vec![m]) {
        // A kernel may load a program for a link it cannot make: ask first.
        if requested.is_none() && !features::has_links(mode) {
            refused.push(format!("{} (no such links on this kernel)", mode.name()));
        } else {
            candidates.push(mode);
        }
    }
    for mode in candidates {
        let (entry, exit) = programs_for(mode, programs);
        let attach_type = match mode {
            LinkMode::Session => ATTACH_UPROBE_SESSION,
            LinkMode::Multi => ATTACH_UPROBE_MULTI,
            LinkMode::PerfEvent => {
                let warning = (!refused.is_empty()).then(|| fallback_warning(&refused, mode));
                return Ok((LoadedAllocator::Perf { entry, exit, loaded: false }, warning));
            }
        };
        let load = |p: Program| raw.load(p, attach_type).map_err(|e| (p, e));
        match load(entry).and_then(|e| Ok((e, exit.map(load).transpose()?))) {
            Ok((entry, exit)) => {
                let warning = (!refused.is_empty()).then(|| fallback_warning(&refused, mode));
                return Ok((LoadedAllocator::Raw { mode, entry, exit }, warning));
            }
            Err((prog, e)) if requested.is_some() => {
                return Err(match ProbeError::refused(prog.name(), e) {
                    ProbeError::Refused { program, reason, log } => {
                        let reason = format!("{reason} ({} links, as --uprobe-links={} asks)", mode.name(), mode.option_word());
                        ProbeError::Refused { program, reason, log }
                    }
                    other => other,
                })
            }
            Err((prog, e)) => refused.push(format!("{} ({prog}: {e})", mode.name())),
        }
    }
    unreachable!("perf-event uprobes are always a candidate when no mode is requested")
}

/// What the report says when the allocator probes are not a session link:
/// what was refused, what is used instead and what that costs.
pub(crate) fn fallback_warning(refused: &[String], used: LinkMode) -> String {
    let cost = match used {
        LinkMode::Session => "",
        LinkMode::Multi => {
            "two uprobe_multi links per process (entries, returns): every allocating call pays a return probe, sampled or not"
        }
        LinkMode::PerfEvent => {
            "perf-event uprobes: every allocating call pays a return probe, and each probe waits for RCU grace periods when it is detached"
        }
    };
    format!("the kernel refused {}; the allocator probes use {cost}", refused.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_hangs_the_programs_it_can() {
        use AllocatorPrograms::*;
        assert_eq!(programs_for(LinkMode::Session, Trace), (Program::AllocSession, None), "a session has one program");
        assert_eq!(programs_for(LinkMode::Session, FloorEntries), (Program::FloorSessionEntries, None));
        for mode in [LinkMode::Multi, LinkMode::PerfEvent] {
            assert_eq!(programs_for(mode, Trace), (Program::AllocEnter, Some(Program::AllocExit)));
            assert_eq!(programs_for(mode, Floor), (Program::FloorEnter, Some(Program::FloorExit)));
            assert_eq!(programs_for(mode, FloorEntries), (Program::FloorEnter, None), "bare entries: no return probe");
        }
        let multi = fallback_warning(&["uprobe session: refused".into()], LinkMode::Multi);
        assert!(multi.contains("uprobe session: refused") && multi.contains("uprobe_multi links"), "{multi}");
        assert!(fallback_warning(&[], LinkMode::PerfEvent).contains("perf-event uprobes"));
    }
}
