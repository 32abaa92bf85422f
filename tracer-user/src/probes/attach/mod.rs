//! Attaching: the programs load/ loaded, hung on the kernel (each listed
//! system call's exit tracepoint, the process tracepoints) and on each traced
//! process (its allocator's links, its dynamic linker's hook, libuv's probes).
//!
//! In: a [`Prepared`](crate::probes::Prepared) object, and per process what
//! discovery/ found (an allocator, a libuv). Out: links, held per process in
//! [`ProcessLinks`](links::ProcessLinks) and by [`Probes`](probes::Probes),
//! the session's handle; handed to teardown.rs when a process goes or
//! the session ends.

mod allocator_links;
pub(super) mod dynamic_linker;
mod event_loop;
pub(super) mod links;
pub(super) mod probes;
pub(super) mod syscalls;
mod uprobe;
