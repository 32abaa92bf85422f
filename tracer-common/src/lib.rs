//! Records the kernel side writes into the ring buffer and userspace decodes.
//!
//! `no_std` only on the BPF target, so the layouts and decoders carry ordinary
//! host unit tests. Every kind is an explicit `#[repr(u32)]` enum; userspace
//! decodes with [`decode::Event::try_from`], never by transmuting bytes.
#![cfg_attr(target_arch = "bpf", no_std)]

pub mod kinds;
pub mod record;

#[cfg(not(target_arch = "bpf"))]
pub mod decode;
#[cfg(all(not(target_arch = "bpf"), feature = "manifest"))]
pub mod manifest;

pub use kinds::{AllocFn, Counter, EventKind, FdKind};
pub use record::{EventHeader, SmallEvent, StackEvent, MAX_FRAMES, STACK_TOP_WORDS};
