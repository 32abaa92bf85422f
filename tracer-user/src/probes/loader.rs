//! The embedded eBPF object: loading, settings, attaching.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aya::{
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{RawTracePoint, TracePoint},
    Ebpf,
};
use tracer_common::Counter;

use super::allocator_probes::{self, AllocatorPrograms, Loaded};
use super::errors::attach_err;
use super::event_loop::{self, EventLoopLibrary};
use super::links::{LinkMode, LinkStats, ProcessLinks};
use super::loader_probe::LoaderProbe;
use super::prepare::{self, LoadOptions, Prepared};
use super::programs::program;
use super::syscalls::{self, DescriptorProbes, SyscallProbes};
use super::teardown::{self, HeldLink};
use super::unwind_settings::UnwindMode;
use super::unwind_tables::KernelTables;
use super::{allocator::AllocatorChoice, ProbeError, Program};

/// Loaded programs and each traced process's allocator probes. Dropping it
/// detaches everything, every link at once (see teardown.rs).
pub struct Probes {
    descriptors: SyscallProbes,
    /// The process tracepoints' links.
    process: Vec<Box<dyn HeldLink>>,
    ebpf: Ebpf,
    targets: BpfHashMap<MapData, u32, u32>,
    allocator: Loaded,
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
    loader_probe: Option<LoaderProbe>,
    event_loop: event_loop::Loaded,
    /// Each traced process's libuv probes (`allocator`: libuv's file).
    event_loops: HashMap<u32, ProcessLinks>,
}

/// Reads the kernel side's loss counters; movable to the consumer thread.
pub struct CounterReader(PerCpuArray<MapData, u64>);

/// The rings and counters the pipeline reads.
pub struct Outputs {
    pub events: RingBuf<MapData>,
    pub counters: CounterReader,
    /// `attach`: forks, execs and exits of traced processes (see process.rs on the kernel side).
    pub notices: RingBuf<MapData>,
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
        let loader_probe = hook.map(|h| LoaderProbe::new(&mut ebpf, h)).transpose()?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name).ok_or_else(|| ProbeError::Load(format!("map {name} missing from the object")))
        };
        let load_err = |e: aya::maps::MapError| ProbeError::Load(e.to_string());
        let events = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(load_err)?;
        let notices = RingBuf::try_from(take(&mut ebpf, "NOTICES")?).map_err(load_err)?;
        let counters = CounterReader(PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?).map_err(load_err)?);
        let targets = BpfHashMap::try_from(take(&mut ebpf, "TARGETS")?).map_err(load_err)?;
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
            loader_probe,
            event_loop,
            event_loops: HashMap::new(),
        };
        Ok((probes, Outputs { events, counters, notices }))
    }

    /// The kernel walker's tables, to be filled as modules appear (once; None in `--unwind fp` mode).
    pub fn unwind_tables(&mut self, opts: &LoadOptions) -> Result<Option<KernelTables>, ProbeError> {
        if opts.unwind == UnwindMode::FramePointers {
            return Ok(None);
        }
        let missing = |name: &str| ProbeError::Load(format!("map {name} missing from the object"));
        let mut array = |name: &'static str| match self.ebpf.take_map(name) {
            Some(aya::maps::Map::Array(a)) => Ok(a),
            _ => Err(missing(name)),
        };
        let (rows, pages) = (array("UNWIND_ROWS")?, array("UNWIND_PAGES")?);
        let modules = self.ebpf.take_map("MODULES").ok_or_else(|| missing("MODULES"))?;
        let modules = BpfHashMap::try_from(modules).map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok(Some(KernelTables::new(rows, pages, opts.unwind_rows, modules)))
    }

    /// How descriptors are traced, for the report.
    pub fn descriptor_probes(&self) -> DescriptorProbes {
        self.descriptors.info.clone()
    }

    /// Traces `pid` (all its threads) from now on.
    pub fn add_target(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.targets.insert(pid, 1, 0).map_err(|e| ProbeError::Load(format!("adding pid {pid} to the target table: {e}")))
    }

    /// Puts the allocator probes on `pid` (all its threads, across exec),
    /// replacing any it had. They fire in that process alone: the kernel
    /// filters uprobes by process, so no other process on the machine pays
    /// for a trap (with `--follow-forks`, each child gets its own).
    pub fn attach_allocator(&mut self, alloc: &AllocatorChoice, pid: u32) -> Result<(), ProbeError> {
        self.detach_process(pid);
        let started = Instant::now();
        let links = match allocator_probes::attach(&mut self.ebpf, &mut self.allocator, alloc, pid) {
            Ok(links) => links,
            Err(e) if self.requested.is_none() && self.allocator.mode() != LinkMode::PerfEvent => {
                // The kernel loaded the programs but refuses the link: perf-event uprobes from now on.
                self.warnings.push(allocator_probes::fallback_warning(
                    &[format!("{} links ({e})", self.allocator.mode().name())],
                    LinkMode::PerfEvent,
                ));
                let (entry, exit) = allocator_probes::programs_for(LinkMode::PerfEvent, self.programs);
                self.allocator = Loaded::Perf { entry, exit, loaded: false };
                allocator_probes::attach(&mut self.ebpf, &mut self.allocator, alloc, pid)?
            }
            Err(e) => return Err(e),
        };
        let mut links = links;
        // The dynamic linker's announcements go with the image's probes.
        if let Some(lp) = &mut self.loader_probe {
            match lp.attach(&mut self.ebpf, pid) {
                Ok(link) => links.extend(link),
                Err(e) => {
                    self.warnings.push(format!("new objects of pid {pid} are walked from stack copies until their tables are in ({e})"))
                }
            }
        }
        self.stats.record_attach(started.elapsed());
        self.links.insert(pid, ProcessLinks { allocator: alloc.identity, links, stats: self.stats.clone() });
        Ok(())
    }

    /// An image whose heap the recorder in it records: only the dynamic
    /// linker's announcements (the tables of what it maps, before its code runs).
    pub fn attach_loader_only(&mut self, pid: u32) {
        self.detach_process(pid);
        let Some(lp) = &mut self.loader_probe else { return };
        match lp.attach(&mut self.ebpf, pid) {
            Ok(link) => {
                let links = link.into_iter().collect();
                self.links.insert(pid, ProcessLinks { allocator: NO_ALLOCATOR, links, stats: self.stats.clone() });
            }
            Err(e) => self.warnings.push(format!("new objects of pid {pid} are walked from stack copies until their tables are in ({e})")),
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
        self.loader_probe.as_mut()?.take_paused(tid)
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

impl CounterReader {
    /// Totals over all CPUs, indexed by [`Counter`].
    pub fn read(&self) -> [u64; Counter::COUNT as usize] {
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            if let Ok(values) = self.0.get(&(c as u32), 0) {
                out[c as usize] = values.iter().sum();
            }
        }
        out
    }
}
