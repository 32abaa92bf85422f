//! Records the kernel side writes into the ring buffer and userspace decodes.
//!
//! `no_std`, as the eBPF side needs; the `user` feature adds what only
//! userspace uses (decoding, the manifest format) on top of std. Every kind is
//! an explicit `#[repr(u32)]` enum; userspace decodes with
//! [`decode::Event::try_from`], never by transmuting bytes.
#![no_std]

#[cfg(any(feature = "user", test))]
extern crate std;

pub mod fdkind;
pub mod fdrecord;
// The recorder's shared file is for processes, never for the eBPF side (whose target lacks these atomics).
#[cfg(not(target_arch = "bpf"))]
pub mod inprocess;
pub mod kinds;
pub mod record;
pub mod syscalls;
pub mod unwind;
pub mod uv;

#[cfg(feature = "user")]
pub mod decode;
#[cfg(feature = "user")]
pub mod manifest;
#[cfg(feature = "user")]
pub mod valgrind;

pub use fdkind::FdKind;
pub use kinds::{AllocFn, Counter, EventKind};
pub use record::{EventHeader, SmallEvent, StackCopyEvent, StackEvent, StackStop, MAX_FRAMES, STACK_COPY_WORDS};
pub use unwind::{CfaKind, ModuleKey, ModuleRows, StopReason, UnwindRow};
