//! The embedded eBPF object: loading, settings, attaching.

use std::collections::HashMap;
use std::num::NonZeroU32;

use aya::{
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    programs::{RawTracePoint, TracePoint, UProbe},
    Ebpf, EbpfLoader,
};
use tracer_common::{AllocFn, Counter};

use super::unwind_settings::{UnwindMode, UnwindSettings, DEFAULT_UNWIND_ROWS};
use super::unwind_tables::KernelTables;
use super::{allocator::AllocatorChoice, preflight, ProbeError, Program};

pub(super) static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("LEAKTRACE_BPF_OBJECT"));

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    /// Frames captured per stack, 1..=MAX_FRAMES.
    pub stack_frames: u32,
    /// Trace children of traced processes.
    pub follow_forks: bool,
    /// Sampling mode when > 1: trace about one allocator call in N (no stack,
    /// no record for the others). Descriptors are always exact.
    pub sample_every: u32,
    /// How user stacks are walked.
    pub unwind: UnwindMode,
    /// Capacity of the kernel's unwind row table (8 bytes a row).
    pub unwind_rows: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ring_bytes: 8 << 20,
            stack_frames: tracer_common::MAX_FRAMES as u32,
            follow_forks: false,
            sample_every: 0,
            unwind: UnwindMode::default(),
            unwind_rows: DEFAULT_UNWIND_ROWS,
        }
    }
}

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

/// Loaded programs. Dropping it detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    targets: BpfHashMap<MapData, u32, u32>,
    /// Whether the allocator programs are loaded (they load once, attach per process).
    allocator_loaded: bool,
    /// Each traced process's allocator links, by program.
    links: HashMap<u32, Vec<(Program, UProbeLinkId)>>,
}

/// Reads the kernel side's loss counters; movable to the consumer thread.
pub struct CounterReader(PerCpuArray<MapData, u64>);

fn attach_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> ProbeError {
    let what = what.into();
    move |e| ProbeError::Attach { what, detail: error_chain(&e) }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Probes {
    /// Loads the programs and attaches the syscall and process tracepoints.
    /// Nothing is traced until a target is added.
    pub fn load(opts: &LoadOptions) -> Result<(Self, RingBuf<MapData>, CounterReader), ProbeError> {
        preflight::preflight()?;
        if OBJECT.is_empty() {
            return Err(ProbeError::StubBuild);
        }
        let frames = opts.stack_frames.clamp(1, tracer_common::MAX_FRAMES as u32);
        let follow: u32 = opts.follow_forks.into();
        let fork_offset = if opts.follow_forks { preflight::fork_child_pid_offset()? } else { 0 };
        let wakeup = u64::from(opts.ring_bytes / 4);
        let unwind = UnwindSettings::new(opts.unwind, opts.unwind_rows)?;
        let mut loader = EbpfLoader::new();
        unwind.apply(&mut loader);
        let mut ebpf = loader
            .override_global("STACK_FRAMES", &frames, true)
            .override_global("FOLLOW_FORKS", &follow, true)
            .override_global("FORK_CHILD_PID_OFFSET", &fork_offset, true)
            .override_global("WAKEUP_BYTES", &wakeup, true)
            .override_global("SAMPLE_EVERY", &opts.sample_every, true)
            .map_max_entries("EVENTS", opts.ring_bytes)
            .load(OBJECT)
            .map_err(|e| ProbeError::Load(error_chain(&e)))?;

        for (prog, tp) in [
            (Program::SysEnter, "sys_enter"),
            (Program::SysExit, "sys_exit"),
            (Program::ProcessExec, "sched_process_exec"),
            (Program::ProcessExit, "sched_process_exit"),
        ] {
            let p: &mut RawTracePoint = program(&mut ebpf, prog)?;
            p.load().map_err(attach_err(format!("{prog} (load)")))?;
            p.attach(tp).map_err(attach_err(format!("raw tracepoint {tp}")))?;
        }
        if opts.follow_forks {
            let p: &mut TracePoint = program(&mut ebpf, Program::ProcessFork)?;
            p.load().map_err(attach_err("process_fork (load)"))?;
            p.attach("sched", "sched_process_fork").map_err(attach_err("tracepoint sched/sched_process_fork"))?;
        }
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name).ok_or_else(|| ProbeError::Load(format!("map {name} missing from the object")))
        };
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        let targets = BpfHashMap::try_from(take(&mut ebpf, "TARGETS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok((Self { ebpf, targets, allocator_loaded: false, links: HashMap::new() }, ring, CounterReader(counters)))
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
        KernelTables::new(rows, pages, opts.unwind_rows, modules).map(Some).map_err(|e| ProbeError::Load(e.to_string()))
    }

    /// Traces `pid` (all its threads) from now on.
    pub fn add_target(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.targets.insert(pid, 1, 0).map_err(|e| ProbeError::Load(format!("adding pid {pid} to the target table: {e}")))
    }

    /// Attaches the allocator probes to `pid` (all its threads, across exec).
    /// They fire in that process alone: the kernel filters uprobes by process,
    /// so no other process on the machine pays for a trap (with
    /// `--follow-forks`, each child gets its own as it is created).
    /// Return probes go first: an entry probe whose return probe is not yet in
    /// place would leave a call in flight forever.
    pub fn attach_allocator(&mut self, alloc: &AllocatorChoice, pid: u32, programs: AllocatorPrograms) -> Result<(), ProbeError> {
        let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or_else(|| ProbeError::Load("pid 0 is not a process".into()))?);
        if !self.allocator_loaded {
            self.load_allocator_programs(alloc, programs)?;
        }
        let path = &alloc.path;
        let floor = programs != AllocatorPrograms::Trace;
        let exit_prog = if floor { Program::FloorExit } else { Program::AllocExit };
        let mut links = Vec::new();
        let mut attach = |ebpf: &mut Ebpf, prog: Program, offset: u64, what: &str| -> Result<(), ProbeError> {
            let p: &mut UProbe = program(ebpf, prog)?;
            let id = p
                .attach(UProbeAttachLocation::AbsoluteOffset(offset), path, scope)
                .map_err(attach_err(format!("{what} on {}", path.display())))?;
            links.push((prog, id));
            Ok(())
        };
        let result = alloc
            .functions
            .iter()
            .filter(|f| f.func != AllocFn::Free && programs != AllocatorPrograms::FloorEntries)
            .try_for_each(|f| attach(&mut self.ebpf, exit_prog, f.file_offset, &format!("uretprobe {}", f.func.symbol())))
            .and_then(|()| {
                alloc.functions.iter().try_for_each(|f| {
                    let prog = if floor { Program::FloorEnter } else { Program::Enter(f.func) };
                    attach(&mut self.ebpf, prog, f.entry_offset, &format!("uprobe {}", f.func.symbol()))
                })
            });
        self.links.entry(pid).or_default().extend(links);
        result
    }

    fn load_allocator_programs(&mut self, alloc: &AllocatorChoice, programs: AllocatorPrograms) -> Result<(), ProbeError> {
        let mut names: Vec<Program> = match programs {
            AllocatorPrograms::Trace => {
                std::iter::once(Program::AllocExit).chain(alloc.functions.iter().map(|f| Program::Enter(f.func))).collect()
            }
            AllocatorPrograms::Floor => vec![Program::FloorExit, Program::FloorEnter],
            AllocatorPrograms::FloorEntries => vec![Program::FloorEnter],
        };
        names.sort_unstable();
        names.dedup();
        for name in names {
            let p: &mut UProbe = program(&mut self.ebpf, name)?;
            p.load().map_err(attach_err(format!("{name} (load)")))?;
        }
        self.allocator_loaded = true;
        Ok(())
    }

    /// Detaches the allocator probes of a process that has gone.
    pub fn detach_process(&mut self, pid: u32) {
        for (prog, id) in self.links.remove(&pid).unwrap_or_default() {
            if let Ok(p) = program::<UProbe>(&mut self.ebpf, prog) {
                // A failure here leaves a link to a dead process, released when leaktrace ends.
                let _ = p.detach(id);
            }
        }
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, prog: Program) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(prog.name()).ok_or_else(|| ProbeError::Load(format!("program {prog} missing from the object")))?;
    p.try_into().map_err(|e: aya::programs::ProgramError| ProbeError::Load(format!("program {prog}: {e}")))
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
