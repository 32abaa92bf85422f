//! `leaktrace check`: what the running kernel offers leaktrace, what
//! leaktrace would use of it, and whether its programs load here — the
//! real object, every program a session with `--follow-forks` loads,
//! nothing attached.

use serde::Serialize;

use super::attach::syscalls;
use super::errors::ProbeError;
use super::load::allocator_programs::AllocatorPrograms;
use super::load::features::{self, Feature};
use super::load::link_mode::LinkMode;
use super::load::preflight;
use super::load::prepare::{self, LoadOptions, Prepared};
use super::load::unwind_settings::UnwindMode;

/// What `leaktrace check` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The kernel's release (`uname -r`) and machine.
    pub kernel: String,
    pub machine: &'static str,
    /// Empty when nothing could be probed (not permitted).
    pub features: Vec<Feature>,
    /// What leaktrace uses for each part, as far as its programs loaded.
    pub uses: Vec<Use>,
    /// Why a better way is not used, each once.
    pub notes: Vec<String>,
    pub can_trace: bool,
    /// Parts left out because the kernel refused their program (tracing
    /// goes on without them; a note says why).
    pub refused: Vec<&'static str>,
    /// Why it cannot, in one line.
    pub reason: Option<String>,
    /// The error behind `reason` (a refused program's verifier log).
    #[serde(skip)]
    pub error: Option<anyhow::Error>,
}

/// One part of tracing and how leaktrace does it here.
#[derive(Debug, Serialize)]
pub struct Use {
    pub part: &'static str,
    pub how: String,
}

/// Probes the kernel and loads leaktrace's programs.
pub fn check() -> CheckReport {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |r| r.trim().to_owned());
    let mut report = CheckReport {
        kernel,
        machine: std::env::consts::ARCH,
        features: Vec::new(),
        uses: Vec::new(),
        notes: Vec::new(),
        can_trace: false,
        refused: Vec::new(),
        reason: None,
        error: None,
    };
    match preflight::preflight() {
        Err(e @ (ProbeError::NotPermitted | ProbeError::StubBuild)) => return report.cannot(e),
        Err(e) => {
            report.features = features::probe_all();
            return report.cannot(e);
        }
        Ok(()) => report.features = features::probe_all(),
    }
    let opts = LoadOptions { follow_forks: true, ..LoadOptions::default() };
    match prepare::prepare(&opts, AllocatorPrograms::Trace, false) {
        Ok(prepared) => {
            report.uses = uses(&prepared, &opts, None);
            report.notes = prepared.warnings().to_vec();
            report.refused = refused_parts(&prepared);
            report.can_trace = true;
            report
        }
        Err(e) => {
            // The walker is the deepest code: without it the rest may load.
            let fp = LoadOptions { unwind: UnwindMode::FramePointers, ..opts };
            if let Ok(prepared) = prepare::prepare(&fp, AllocatorPrograms::Trace, false) {
                report.uses = uses(&prepared, &fp, Some(&e));
                report.notes = prepared.warnings().to_vec();
            }
            report.cannot(e)
        }
    }
}

impl CheckReport {
    fn cannot(mut self, e: ProbeError) -> Self {
        let e = anyhow::Error::from(e);
        self.reason = Some(format!("{e:#}"));
        self.error = Some(e);
        self
    }
}

fn refused_parts(prepared: &Prepared) -> Vec<&'static str> {
    if prepared.event_loop_mode().is_none() {
        vec!["event loops"]
    } else {
        Vec::new()
    }
}

fn uses(prepared: &Prepared, opts: &LoadOptions, cfi_refused: Option<&ProbeError>) -> Vec<Use> {
    let descriptors = syscalls::coverage();
    let mut calls = format!("{}, on {} system calls", descriptors.mechanism, descriptors.syscalls);
    if !descriptors.not_on_this_kernel.is_empty() {
        calls.push_str(&format!("; not on this kernel: {}", descriptors.not_on_this_kernel.join(", ")));
    }
    let links = |mode: LinkMode| match mode {
        LinkMode::Session => "one uprobe session link per process",
        LinkMode::Multi => "uprobe_multi links per process (entries, returns)",
        LinkMode::PerfEvent => "perf-event uprobes, one per probe point",
    };
    let stacks = match (opts.unwind, cfi_refused) {
        (UnwindMode::FramePointers, Some(_)) => "frame pointers only (`--unwind fp`): with the CFI walker a program is refused".into(),
        (UnwindMode::FramePointers, None) => "the kernel's frame-pointer walk".into(),
        _ => "the CFI walker in the kernel (bpf_loop, bpf_find_vma), from the binaries' unwind tables".into(),
    };
    let mut uses = vec![
        Use { part: "descriptors", how: calls },
        Use {
            part: "processes",
            how: "raw tracepoints sched_process_exec and sched_process_exit (sched_process_fork with --follow-forks)".into(),
        },
        Use { part: "heap", how: links(prepared.link_mode()).into() },
        Use { part: "stacks", how: stacks },
    ];
    if let Some(hook) = prepared.hook_mode() {
        let how = match hook {
            LinkMode::PerfEvent => "a perf-event uprobe on the dynamic linker's _dl_debug_state",
            _ => "a uprobe_multi link on the dynamic linker's _dl_debug_state",
        };
        uses.push(Use { part: "new objects", how: how.into() });
        uses.push(Use { part: "unwind tables", how: "BPF arrays written through memory mappings (BPF_F_MMAPABLE)".into() });
    }
    let event_loops = match prepared.event_loop_mode() {
        Some(LinkMode::PerfEvent) => "perf-event uprobes on libuv's handle functions, one per function",
        Some(_) => "one uprobe_multi link per process on libuv's handle functions",
        None => "not followed: the kernel refused the program (see the note)",
    };
    uses.push(Use { part: "event loops", how: event_loops.into() });
    uses.push(Use { part: "events", how: format!("a BPF ring buffer of {} MiB (--ring-size)", opts.ring_bytes >> 20) });
    uses
}
