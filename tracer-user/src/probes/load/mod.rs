//! Loading: the embedded eBPF object, set for the running kernel (structure
//! offsets from its BTF, table sizes, the options), and every program a
//! session uses, loaded for the links this kernel makes and attached to
//! nothing.
//!
//! In: [`LoadOptions`](prepare::LoadOptions), and the kernel (its BTF,
//! tracefs, what bpf() accepts). Out: a [`Prepared`](prepare::Prepared)
//! object (aya's `Ebpf` with its maps created and programs loaded, the
//! programs leaktrace loads itself for uprobe_multi links and uprobe
//! sessions), which attach/ hangs on the kernel and on processes; the
//! rings and counters the pipeline reads (`outputs.rs`); what `leaktrace
//! check` reports (`features.rs`); each program's stack budget.
//! Nothing here names attach/ or discovery/.

pub(super) mod allocator_programs;
pub(super) mod bpf_sys;
pub(super) mod btf;
pub(super) mod descriptors;
pub(super) mod event_loop_program;
pub mod features;
pub(super) mod hook_program;
pub(super) mod link_mode;
pub(super) mod object;
pub(super) mod outputs;
pub(super) mod preflight;
pub(super) mod prepare;
pub(super) mod programs;
mod raw_programs;
pub(super) mod refusal;
pub mod stack_budget;
pub(super) mod tracefs;
pub(super) mod unwind_settings;
