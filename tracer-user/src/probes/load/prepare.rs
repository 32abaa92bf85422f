//! Loading every program leaktrace will use, with nothing attached yet:
//! what attach/probes.rs's `Probes::load` then attaches, and what
//! `leaktrace check` tries on the running kernel.

use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};

use super::allocator_programs::{self, AllocatorPrograms, LoadedAllocator};
use super::btf::KernelBtf;
use super::descriptors::{self, FdSettings};
use super::event_loop_program::UvProgram;
use super::hook_program::HookProgram;
use super::link_mode::LinkMode;
use super::object::{program, OBJECT};
use super::preflight;
use super::programs::Program;
use super::raw_programs::RawObject;
use super::unwind_settings::{UnwindMode, UnwindSettings, DEFAULT_UNWIND_ROWS};
use crate::probes::errors::{aya_load_error, ProbeError};

/// Entries of the table of sampled blocks in sampling mode.
const SAMPLED_ENTRIES: u32 = 1 << 20;

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
    /// `run`: a thread that maps new objects stops until their tables are in
    /// (leaktrace, its ptrace tracer, takes the stop and never delivers it).
    pub pause_on_load: bool,
    /// The allocator's uprobes on this kind of link only (tests,
    /// benchmarks); None: the best the kernel offers.
    pub links: Option<LinkMode>,
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
            pause_on_load: false,
            links: None,
        }
    }
}

/// The process tracepoints, and the programs on them.
pub(crate) const RAW_TRACEPOINTS: [(Program, &str); 2] =
    [(Program::ProcessExec, "sched_process_exec"), (Program::ProcessExit, "sched_process_exit")];

/// The object with every program loaded that a session with these options
/// attaches; nothing attached.
pub struct Prepared {
    pub(crate) ebpf: Ebpf,
    pub(crate) allocator: LoadedAllocator,
    /// The dynamic linker's hook (with the CFI walker).
    pub(crate) hook: Option<HookProgram>,
    /// libuv's handle probes.
    pub(crate) event_loop: UvProgram,
    /// Whether the link mode was forced (no fallback then).
    pub(crate) requested: Option<LinkMode>,
    /// Why a better way was not used, each once.
    pub(crate) warnings: Vec<String>,
}

impl Prepared {
    /// How the allocator probes will be hung on processes.
    pub fn link_mode(&self) -> LinkMode {
        self.allocator.mode()
    }

    /// How the dynamic linker's hook will be hung (None without the CFI walker).
    pub fn hook_mode(&self) -> Option<LinkMode> {
        self.hook.as_ref().map(HookProgram::mode)
    }

    /// How libuv's functions will be probed (None: the kernel refused the program).
    pub fn event_loop_mode(&self) -> Option<LinkMode> {
        match self.event_loop {
            UvProgram::Multi(_) => Some(LinkMode::Multi),
            UvProgram::Perf => Some(LinkMode::PerfEvent),
            UvProgram::Refused => None,
        }
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Checks what can be checked first (privileges, BTF, tracepoints), then
/// loads the object and every program the options call for.
pub fn prepare(opts: &LoadOptions, programs: AllocatorPrograms, notices: bool) -> Result<Prepared, ProbeError> {
    preflight::preflight()?;
    if OBJECT.is_empty() {
        return Err(ProbeError::StubBuild);
    }
    let requested = opts.links;
    let mut ebpf = load_object(opts, notices)?;
    let raw = RawObject::prepare(OBJECT, &ebpf)?;
    let (mut allocator, warning) = allocator_programs::load(&raw, requested, programs)?;
    let mut warnings: Vec<String> = warning.into_iter().collect();
    let hook = match opts.unwind {
        UnwindMode::FramePointers => None,
        _ => {
            let (hook, warning) = HookProgram::load(&raw, &mut ebpf)?;
            warnings.extend(warning);
            Some(hook)
        }
    };
    let (event_loop, refused) = UvProgram::load_or_refused(&raw, &mut ebpf);
    warnings.extend(refused);
    drop(raw);
    allocator.load_perf(&mut ebpf)?;
    descriptors::load(&mut ebpf)?;
    load_tracepoints(&mut ebpf, opts.follow_forks)?;
    Ok(Prepared { ebpf, allocator, hook, event_loop, requested, warnings })
}

fn load_tracepoints(ebpf: &mut Ebpf, follow_forks: bool) -> Result<(), ProbeError> {
    for (prog, _) in RAW_TRACEPOINTS {
        let p: &mut RawTracePoint = program(ebpf, prog)?;
        p.load().map_err(aya_load_error(prog.name()))?;
    }
    if follow_forks {
        let p: &mut TracePoint = program(ebpf, Program::ProcessFork)?;
        p.load().map_err(aya_load_error(Program::ProcessFork.name()))?;
    }
    Ok(())
}

fn load_object(opts: &LoadOptions, notices: bool) -> Result<Ebpf, ProbeError> {
    let frames = opts.stack_frames.clamp(1, tracer_common::MAX_FRAMES as u32);
    let follow: u32 = opts.follow_forks.into();
    let fork_offset = if opts.follow_forks { preflight::fork_child_pid_offset()? } else { 0 };
    let wakeup = u64::from(opts.ring_bytes / 4);
    let notices: u32 = notices.into();
    // The table of sampled blocks holds a million entries (tens of MiB of
    // kernel memory): only when sampling.
    let sampled = if opts.sample_every > 1 { SAMPLED_ENTRIES } else { 1 };
    // The kernel's BTF, read and parsed once for both sets of member offsets.
    let btf = KernelBtf::load().map_err(ProbeError::KernelBtf)?;
    let unwind = UnwindSettings::new(&btf, opts.unwind, opts.unwind_rows, opts.pause_on_load)?;
    let fd_settings = FdSettings::from_btf(&btf)?;
    let mut loader = EbpfLoader::new();
    unwind.apply(&mut loader);
    fd_settings.apply(&mut loader);
    loader
        .override_global("STACK_FRAMES", &frames, true)
        .override_global("FOLLOW_FORKS", &follow, true)
        .override_global("FORK_CHILD_PID_OFFSET", &fork_offset, true)
        .override_global("WAKEUP_BYTES", &wakeup, true)
        .override_global("SAMPLE_EVERY", &opts.sample_every, true)
        .override_global("NOTICE_LIFECYCLE", &notices, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .map_max_entries("SAMPLED", sampled)
        .load(OBJECT)
        .map_err(ProbeError::Object)
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests {
    use super::*;

    /// Privileged: the table of sampled blocks (tens of MiB of kernel memory
    /// at full size) is sized only in sampling mode.
    #[test]
    #[ignore = "privileged (loads eBPF programs): cargo xtask test runs it as root"]
    fn the_sampling_table_is_sized_only_when_sampling() {
        assert!(rustix::process::geteuid().is_root(), "the kernel tests load eBPF programs and must run as root (they never skip)");
        let entries = |sample_every: u32| {
            let mut ebpf = load_object(&LoadOptions { sample_every, ..LoadOptions::default() }, false).unwrap();
            match ebpf.take_map("SAMPLED") {
                Some(aya::maps::Map::HashMap(data)) => data.info().unwrap().max_entries(),
                other => panic!("SAMPLED is a hash map: {other:?}"),
            }
        };
        assert_eq!(entries(0), 1);
        assert_eq!(entries(64), SAMPLED_ENTRIES);
    }
}
