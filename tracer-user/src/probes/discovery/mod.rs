//! Discovery: which object of a process image serves `malloc` (and which
//! defines libuv), as the dynamic linker would bind it, and where its
//! functions start. Analysis of the target's files and /proc entries, no
//! probing: nothing here touches the kernel's BPF side.
//!
//! In: a pid (its executable, environment, mappings and root) or a command
//! not started yet. Out: an [`AllocatorChoice`](allocator::AllocatorChoice)
//! or an [`EventLoopLibrary`](libuv::EventLoopLibrary) (files, offsets,
//! identities), which attach/ hangs probes on; a command's load order for
//! the unwind tables.

pub(super) mod allocator;
pub(super) mod libuv;
pub(super) mod linker_view;
mod load_order;
pub(super) mod mapped_objects;
mod prologue;
pub(super) mod symbols;
