//! The session's probes: the object loaded (load/prepare.rs), the
//! tracepoints attached at once, each traced process's allocator, dynamic
//! linker and libuv probes put on and taken off as the session asks, and
//! everything released to teardown.rs at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::{RawTracePoint, TracePoint};
use aya::Ebpf;

use super::allocator_links;
use super::dynamic_linker::DynamicLinkerHook;
use super::event_loop;
use super::links::{LinkStats, ProcessLinks};
use super::syscalls::{self, DescriptorProbes, SyscallProbes};
use crate::probes::discovery::allocator::AllocatorChoice;
use crate::probes::discovery::libuv::EventLoopLibrary;
use crate::probes::errors::{attach_err, ProbeError};
use crate::probes::load::allocator_programs::{self, AllocatorPrograms, LoadedAllocator};
use crate::probes::load::event_loop_program::UvProgram;
use crate::probes::load::link_mode::LinkMode;
use crate::probes::load::object::{self, program};
use crate::probes::load::outputs::Outputs;
use crate::probes::load::prepare::{self, LoadOptions, Prepared};
use crate::probes::load::programs::Program;
use crate::probes::load::unwind_settings::UnwindMode;
use crate::probes::teardown::{self, HeldLink};
use crate::probes::unwind_tables::KernelTables;

/// Loaded programs and each traced process's allocator probes. Dropping it
/// detaches everything, every link at once (see probes/teardown.rs).
pub struct Probes {
    descriptors: SyscallProbes,
    /// The process tracepoints' links.
    process: Vec<Box<dyn HeldLink>>,
    ebpf: Ebpf,
    targets: BpfHashMap<MapData, u32, u32>,
    allocator: LoadedAllocator,
    programs: AllocatorPrograms,
    /// Whether the mode was forced (no fallback then).
    requested: Option<LinkMode>,
    /// Each traced process's allocator probes.
    links: HashMap<u32, ProcessLinks>,
    /// Probes of processes that are gone, still attached (they match no
    /// process): detached in batches, or handed over at the end.
    retired: Vec<ProcessLinks>,
    stats: Arc<LinkStats>,
    /// Said once each, for the report.
    warnings: Vec<String>,
    /// The dynamic linker's announcements (with the CFI walker).
    linker_hook: Option<DynamicLinkerHook>,
    event_loop: UvProgram,
    /// Each traced process's libuv probes (`allocator`: libuv's file).
    event_loops: HashMap<u32, ProcessLinks>,
}

/// The allocator identity of links that hold no allocator probe.
const NO_ALLOCATOR: (u64, u64) = (0, 0);

impl Probes {
    /// Loads the programs (the allocator's for `programs`) and attaches the
    /// syscall and process tracepoints. Nothing is traced until a target is
    /// added. With `notices` (`attach`), the kernel reports forks, execs and
    /// exits of traced processes on their own ring, so their allocator probes follow.
    pub fn load(opts: &LoadOptions, programs: AllocatorPrograms, notices: bool) -> Result<(Self, Outputs), ProbeError> {
        let Prepared { mut ebpf, allocator, hook, event_loop, requested, warnings } = prepare::prepare(opts, programs, notices)?;
        let descriptors = syscalls::attach(&mut ebpf)?;
        let process = attach_tracepoints(&mut ebpf, opts.follow_forks)?;
        let linker_hook = hook.map(|h| DynamicLinkerHook::new(&mut ebpf, h)).transpose()?;
        let outputs = Outputs::take(&mut ebpf)?;
        let targets = object::map(&mut ebpf, "TARGETS")?;
        let probes = Self {
            descriptors,
            process,
            ebpf,
            targets,
            allocator,
            programs,
            requested,
            links: HashMap::new(),
            retired: Vec::new(),
            stats: Arc::default(),
            warnings,
            linker_hook,
            event_loop,
            event_loops: HashMap::new(),
        };
        Ok((probes, outputs))
    }

    /// The kernel walker's tables, to be filled as modules appear (once; None in `--unwind fp` mode).
    pub fn unwind_tables(&mut self, opts: &LoadOptions) -> Result<Option<KernelTables>, ProbeError> {
        if opts.unwind == UnwindMode::FramePointers {
            return Ok(None);
        }
        KernelTables::take_from(&mut self.ebpf, opts.unwind_rows).map(Some)
    }

    /// How descriptors are traced, for the report.
    pub fn descriptor_probes(&self) -> DescriptorProbes {
        self.descriptors.info.clone()
    }

    /// Traces `pid` (all its threads) from now on.
    pub fn add_target(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.targets.insert(pid, 1, 0).map_err(|source| ProbeError::AddTarget { pid, source })
    }

    /// Puts the allocator probes on `pid` (all its threads, across exec),
    /// replacing any it had. They fire in that process alone: the kernel
    /// filters uprobes by process, so no other process on the machine pays
    /// for a trap (with `--follow-forks`, each child gets its own).
    pub fn attach_allocator(&mut self, alloc: &AllocatorChoice, pid: u32) -> Result<(), ProbeError> {
        self.detach_process(pid);
        let started = Instant::now();
        let links = match allocator_links::attach(&mut self.ebpf, &mut self.allocator, alloc, pid) {
            Ok(links) => links,
            Err(e) if self.requested.is_none() && self.allocator.mode() != LinkMode::PerfEvent => {
                // The kernel loaded the programs but refuses the link: perf-event uprobes from now on.
                self.warnings.push(allocator_programs::fallback_warning(
                    &[format!("{} links ({:#})", self.allocator.mode().name(), anyhow::Error::from(e))],
                    LinkMode::PerfEvent,
                ));
                let (entry, exit) = allocator_programs::programs_for(LinkMode::PerfEvent, self.programs);
                self.allocator = LoadedAllocator::Perf { entry, exit, loaded: false };
                allocator_links::attach(&mut self.ebpf, &mut self.allocator, alloc, pid)?
            }
            Err(e) => return Err(e),
        };
        let mut links = links;
        // The dynamic linker's announcements go with the image's probes.
        if let Some(hook) = &mut self.linker_hook {
            match hook.attach(&mut self.ebpf, pid) {
                Ok(link) => links.extend(link),
                Err(e) => self.warnings.push(format!(
                    "new objects of pid {pid} are walked from stack copies until their tables are in ({:#})",
                    anyhow::Error::from(e)
                )),
            }
        }
        self.stats.record_attach(started.elapsed());
        self.links.insert(pid, ProcessLinks { allocator: alloc.identity, links, stats: self.stats.clone() });
        Ok(())
    }

    /// An image whose heap the recorder in it records: only the dynamic
    /// linker's announcements (the tables of what it maps, before its code runs).
    pub fn attach_linker_hook_only(&mut self, pid: u32) {
        self.detach_process(pid);
        let Some(hook) = &mut self.linker_hook else { return };
        match hook.attach(&mut self.ebpf, pid) {
            Ok(links) => {
                self.links.insert(pid, ProcessLinks { allocator: NO_ALLOCATOR, links, stats: self.stats.clone() });
            }
            Err(e) => self.warnings.push(format!(
                "new objects of pid {pid} are walked from stack copies until their tables are in ({:#})",
                anyhow::Error::from(e)
            )),
        }
    }

    /// Puts the libuv probes on `pid`, unless those on the same file are there.
    pub fn attach_event_loop(&mut self, lib: &EventLoopLibrary, pid: u32) -> Result<(), ProbeError> {
        if self.event_loops.get(&pid).is_some_and(|l| l.allocator == lib.identity) {
            return Ok(());
        }
        if let Some(old) = self.event_loops.remove(&pid) {
            self.retired.push(old);
        }
        let links = event_loop::attach(&mut self.ebpf, &self.event_loop, lib, pid)?;
        self.event_loops.insert(pid, ProcessLinks { allocator: lib.identity, links, stats: self.stats.clone() });
        Ok(())
    }

    /// The allocator file (device, inode) `pid`'s probes sit on, if any.
    pub fn allocator_of(&self, pid: u32) -> Option<(u64, u64)> {
        self.links.get(&pid).map(|l| l.allocator).filter(|&a| a != NO_ALLOCATOR)
    }

    /// Whether the kernel stopped thread `tid` until new objects' tables are in; its process.
    pub fn take_paused(&mut self, tid: u32) -> Option<u32> {
        self.linker_hook.as_mut()?.take_paused(tid)
    }

    /// Takes the allocator probes off a process (gone, or with a new image);
    /// returns at once. Detaching waits for grace periods the kernel runs one
    /// after the other (tens of ms per process), and a process cannot exit
    /// while one of its threads is in one: the probes of gone processes are
    /// kept, matching nothing, and detached in the background by batches of
    /// [`RETIRED_BATCH`], the rest with everything else when leaktrace ends.
    pub fn detach_process(&mut self, pid: u32) {
        if let Some(links) = self.links.remove(&pid) {
            self.retired.push(links);
        }
        if let Some(links) = self.event_loops.remove(&pid) {
            self.retired.push(links);
        }
        if self.retired.len() >= RETIRED_BATCH {
            self.retired.drain(..).for_each(ProcessLinks::detach_in_background);
        }
    }

    /// How the allocator probes are hung on processes.
    pub fn link_mode(&self) -> LinkMode {
        self.allocator.mode()
    }

    /// Attach and detach times of the allocator probes.
    pub fn link_stats(&self) -> Arc<LinkStats> {
        self.stats.clone()
    }

    /// What the report should say about how probes were attached (each once).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// Gone processes' probes kept attached before a batch is detached.
const RETIRED_BATCH: usize = 32;

impl Probes {
    /// Takes every probe off, in one go (see teardown.rs), and returns at
    /// once; the programs and maps, which close without waiting, go with
    /// the object. Called at the session's end, so that no thread still
    /// holding the object (a supervisor finishing) is cut short by the
    /// process's exit, which would then close the links itself, slowly.
    pub fn release(&mut self) {
        let mut links: Vec<Box<dyn HeldLink>> = self.descriptors.take_links().collect();
        links.append(&mut self.process);
        for process in self.links.drain().chain(self.event_loops.drain()).map(|(_, l)| l).chain(self.retired.drain(..)) {
            links.extend(process.links);
        }
        teardown::release(links);
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.release();
    }
}

/// Attaches the process tracepoints' programs (loaded by [`prepare`]); their links.
fn attach_tracepoints(ebpf: &mut Ebpf, follow_forks: bool) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let mut links: Vec<Box<dyn HeldLink>> = Vec::new();
    for (prog, tp) in prepare::RAW_TRACEPOINTS {
        let what = format!("raw tracepoint {tp}");
        let p: &mut RawTracePoint = program(ebpf, prog)?;
        p.attach(tp).map_err(attach_err(what))?;
    }
    if follow_forks {
        let what = "tracepoint sched/sched_process_fork";
        let p: &mut TracePoint = program(ebpf, Program::ProcessFork)?;
        let id = p.attach("sched", "sched_process_fork").map_err(attach_err(what))?;
        links.push(Box::new(p.take_link(id).map_err(attach_err(what))?));
    }
    Ok(links)
}
