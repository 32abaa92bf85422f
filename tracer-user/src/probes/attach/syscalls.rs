//! The descriptor probes: one program on the `syscalls/sys_exit_NAME`
//! tracepoint of each system call in `tracer_common::syscalls`, and nothing on
//! any other system call. Enabling any syscall tracepoint sends every task's
//! system calls through the kernel's slow path (the floor every syscall
//! tracer pays); a program on the raw `sys_enter`/`sys_exit` would also run
//! on each of them, and a program at any call's entry would add a second
//! callback to each. Only the listed calls run a program, at their exit.
//!
//! The programs (load/descriptors.rs) read the new descriptor's file from
//! the task's descriptor table.

use aya::programs::trace_point::TracePointLink;
use aya::Ebpf;
use serde::Serialize;
use tracer_common::syscalls::SYSCALLS;

use crate::probes::errors::{attach_err, ProbeError};
use crate::probes::load::descriptors;
use crate::probes::load::tracefs::syscall_exit_exists;
use crate::probes::teardown::{self, HeldLink};

/// How descriptors are traced, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DescriptorProbes {
    pub mechanism: &'static str,
    /// System calls with a program on their exit tracepoint.
    pub syscalls: usize,
    /// Calls of the table this kernel does not have.
    pub not_on_this_kernel: Vec<&'static str>,
}

impl Default for DescriptorProbes {
    fn default() -> Self {
        Self { mechanism: MECHANISM, syscalls: 0, not_on_this_kernel: Vec::new() }
    }
}

pub const MECHANISM: &str = "per-syscall exit tracepoints";

/// The attached descriptor programs. Dropping it detaches them (see [`teardown`]).
pub struct SyscallProbes {
    links: Vec<TracePointLink>,
    pub info: DescriptorProbes,
}

impl SyscallProbes {
    /// The links, for the caller to take off with others.
    pub fn take_links(&mut self) -> impl Iterator<Item = Box<dyn HeldLink>> {
        std::mem::take(&mut self.links).into_iter().map(|l| Box::new(l) as Box<dyn HeldLink>)
    }
}

impl Drop for SyscallProbes {
    fn drop(&mut self) {
        teardown::release(self.take_links().collect());
    }
}

/// Attaches each descriptor program (loaded by [`load`]) to its calls' exit tracepoints.
pub fn attach(ebpf: &mut Ebpf) -> Result<SyscallProbes, ProbeError> {
    // Built first, so that a failure half-way takes off what is attached the same way.
    let mut probes = SyscallProbes { links: Vec::new(), info: DescriptorProbes::default() };
    for (exit, p) in descriptors::programs(ebpf)? {
        for s in SYSCALLS.iter().filter(|s| s.effect.program() == exit) {
            if !syscall_exit_exists(s.name) {
                probes.info.not_on_this_kernel.push(s.name);
                continue;
            }
            let what = format!("tracepoint syscalls/sys_exit_{}", s.name);
            let id = p.attach("syscalls", &format!("sys_exit_{}", s.name)).map_err(attach_err(what.clone()))?;
            probes.links.push(p.take_link(id).map_err(attach_err(what))?);
            probes.info.syscalls += 1;
        }
    }
    Ok(probes)
}

/// How descriptors would be traced on this kernel, without attaching.
pub fn coverage() -> DescriptorProbes {
    let mut info = DescriptorProbes::default();
    for s in SYSCALLS.iter() {
        if syscall_exit_exists(s.name) {
            info.syscalls += 1;
        } else {
            info.not_on_this_kernel.push(s.name);
        }
    }
    info
}
