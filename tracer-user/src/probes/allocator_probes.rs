//! The allocator's probes: programs loaded once, hung on each traced process
//! as one uprobe session link (or two uprobe_multi links, or perf-event
//! uprobes when the kernel refuses both), each probe point with a cookie
//! naming its allocator function.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;
use tracer_common::AllocFn;

use super::errors::attach_err;
use super::features;
use super::links::LinkMode;
use super::programs::program;
use super::raw_programs::{RawObject, ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION};
use super::refusal::aya_load_error;
use super::teardown::HeldLink;
use super::{bpf_sys, AllocatorChoice, ProbeError, Program};

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

/// BPF_F_UPROBE_MULTI_RETURN: the link's probes fire at return.
const UPROBE_MULTI_RETURN: u32 = 1;

/// The allocator programs, ready to hang on a process.
pub(super) enum Loaded {
    /// Loaded here, for uprobe session or uprobe_multi links.
    Raw { mode: LinkMode, entry: OwnedFd, exit: Option<OwnedFd> },
    /// aya's perf-event uprobes (loaded at first use).
    Perf { entry: Program, exit: Option<Program>, loaded: bool },
}

impl Loaded {
    pub(super) fn mode(&self) -> LinkMode {
        match self {
            Self::Raw { mode, .. } => *mode,
            Self::Perf { .. } => LinkMode::PerfEvent,
        }
    }
}

/// The programs for a mode: the entry (or session) program and the return program.
pub(super) fn programs_for(mode: LinkMode, programs: AllocatorPrograms) -> (Program, Option<Program>) {
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
pub(super) fn load(
    raw: &RawObject,
    requested: Option<LinkMode>,
    programs: AllocatorPrograms,
) -> Result<(Loaded, Option<String>), ProbeError> {
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
                return Ok((Loaded::Perf { entry, exit, loaded: false }, warning));
            }
        };
        let load = |p: Program| raw.load(p, attach_type).map_err(|e| (p, e));
        match load(entry).and_then(|e| Ok((e, exit.map(load).transpose()?))) {
            Ok((entry, exit)) => {
                let warning = (!refused.is_empty()).then(|| fallback_warning(&refused, mode));
                return Ok((Loaded::Raw { mode, entry, exit }, warning));
            }
            Err((prog, e)) if requested.is_some() => {
                return Err(match e.of_program(prog.name()) {
                    ProbeError::Refused { program, reason, log } => {
                        let reason = format!("{reason} ({} links, as --uprobe-links={} asks)", mode.name(), mode_word(mode));
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

fn mode_word(mode: LinkMode) -> &'static str {
    match mode {
        LinkMode::Session => "session",
        LinkMode::Multi => "multi",
        LinkMode::PerfEvent => "perf",
    }
}

/// What the report says when the allocator probes are not a session link:
/// what was refused, what is used instead and what that costs.
pub(super) fn fallback_warning(refused: &[String], used: LinkMode) -> String {
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

/// Hangs the loaded programs on `pid`'s allocator. Return probes go first: an
/// entry whose return probe is not yet in place would leave a call in flight.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    loaded: &mut Loaded,
    alloc: &AllocatorChoice,
    pid: u32,
) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let entries: Vec<(u64, u64)> = alloc.functions.iter().map(|f| (f.entry_offset, f.func as u64)).collect();
    let returns: Vec<(u64, u64)> =
        alloc.functions.iter().filter(|f| f.func != AllocFn::Free).map(|f| (f.file_offset, f.func as u64)).collect();
    let what = |side: &str| format!("{side} probes on {} (pid {pid})", alloc.path.display());
    match loaded {
        Loaded::Raw { mode, entry, exit } => {
            let path = CString::new(alloc.file.as_os_str().as_bytes()).map_err(|_| ProbeError::Load("a path with a NUL byte".into()))?;
            let attach_type = if *mode == LinkMode::Session { ATTACH_UPROBE_SESSION } else { ATTACH_UPROBE_MULTI };
            let link = |prog: &OwnedFd, points: &[(u64, u64)], flags: u32, side: &str| {
                let (offsets, cookies): (Vec<u64>, Vec<u64>) = points.iter().copied().unzip();
                bpf_sys::uprobe_multi_link(prog.as_fd(), attach_type, &path, &offsets, &cookies, pid, flags)
                    .map(|fd| Box::new(fd) as Box<dyn HeldLink>)
                    .map_err(|e| ProbeError::Attach { what: what(side), detail: format!("{} link: {e}", mode.name()) })
            };
            let mut links = Vec::new();
            if let Some(exit) = exit {
                links.push(link(exit, &returns, UPROBE_MULTI_RETURN, "return")?);
            }
            links.push(link(entry, &entries, 0, "entry")?);
            Ok(links)
        }
        Loaded::Perf { entry, exit, loaded } => {
            if !*loaded {
                for prog in std::iter::once(*entry).chain(*exit) {
                    let p: &mut UProbe = program(ebpf, prog)?;
                    p.load().map_err(aya_load_error(prog.name()))?;
                }
                *loaded = true;
            }
            let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or_else(|| ProbeError::Load("pid 0 is not a process".into()))?);
            let mut links: Vec<Box<dyn HeldLink>> = Vec::new();
            let sides = exit.map(|x| (x, &returns, "return")).into_iter().chain([(*entry, &entries, "entry")]);
            for (prog, points, side) in sides {
                for &(offset, cookie) in points {
                    let p: &mut UProbe = program(ebpf, prog)?;
                    let at = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: Some(cookie) };
                    let id = p.attach(at, &alloc.file, scope).map_err(attach_err(what(side)))?;
                    links.push(Box::new(p.take_link(id).map_err(attach_err(what(side)))?));
                }
            }
            Ok(links)
        }
    }
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
