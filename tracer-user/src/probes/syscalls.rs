//! The descriptor probes: one program on the `syscalls/sys_exit_NAME`
//! tracepoint of each system call in `tracer_common::syscalls`, and nothing on
//! any other system call. Enabling any syscall tracepoint sends every task's
//! system calls through the kernel's slow path (the floor every syscall
//! tracer pays); a program on the raw `sys_enter`/`sys_exit` would also run
//! on each of them, and a program at any call's entry would add a second
//! callback to each. Only the listed calls run a program, at their exit.
//!
//! The programs read the new descriptor's file from the task's descriptor
//! table: the structure offsets come from the kernel's BTF, as load-time
//! constants.

use std::path::Path;

use aya::programs::trace_point::TracePointLink;
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use serde::Serialize;
use tracer_common::syscalls::{ExitProgram, SYSCALLS};

use super::btf::KernelBtf;
use super::errors::attach_err;
use super::refusal::aya_load_error;
use super::teardown::{self, HeldLink};
use super::{preflight::TRACEFS, ProbeError};

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

/// The kernel structure members the descriptor programs read: (global, the
/// members whose offsets add up to it).
const MEMBERS: [(&str, &[(&str, &str)]); 12] = [
    ("FD_TASK_FILES", &[("task_struct", "files")]),
    ("FD_FILES_FDT", &[("files_struct", "fdt")]),
    ("FD_FILES_COUNT", &[("files_struct", "count")]),
    ("FD_FDT_MAX", &[("fdtable", "max_fds")]),
    ("FD_FDT_ARRAY", &[("fdtable", "fd")]),
    ("FD_FDT_OPEN", &[("fdtable", "open_fds")]),
    ("FD_FILE_DENTRY", &[("file", "f_path"), ("path", "dentry")]),
    ("FD_FILE_INODE", &[("file", "f_inode")]),
    ("FD_DENTRY_NAME", &[("dentry", "d_name"), ("qstr", "name")]),
    ("FD_INODE_MODE", &[("inode", "i_mode")]),
    ("FD_INODE_SB", &[("inode", "i_sb")]),
    ("FD_SB_MAGIC", &[("super_block", "s_magic")]),
];

/// The offsets of [`MEMBERS`] on the running kernel, for the loader.
pub struct FdSettings {
    offsets: Vec<(&'static str, u32)>,
}

impl FdSettings {
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, ProbeError> {
        let offsets = MEMBERS
            .iter()
            .map(|(global, path)| {
                let sum = path.iter().try_fold(0u32, |acc, (ty, member)| btf.member_offset(ty, member).map(|o| acc + o));
                sum.map(|o| (*global, o))
                    .map_err(|e| ProbeError::KernelFeature { what: "a kernel structure member", detail: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { offsets })
    }

    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, off) in &self.offsets {
            loader.override_global(name, off, true);
        }
    }
}

fn tracepoint_exists(name: &str) -> bool {
    Path::new(TRACEFS).join("events/syscalls").join(format!("sys_exit_{name}")).is_dir()
}

/// The required calls' tracepoints exist (tracefs is mounted by then).
pub fn preflight() -> Result<(), ProbeError> {
    match SYSCALLS.iter().find(|s| s.required && !tracepoint_exists(s.name)) {
        None => Ok(()),
        Some(s) => Err(ProbeError::KernelFeature {
            what: "syscall tracepoints (CONFIG_FTRACE_SYSCALLS)",
            detail: format!("syscalls/sys_exit_{} is not in {TRACEFS}/events", s.name),
        }),
    }
}

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

/// The descriptor programs of the object, each with its own borrow.
fn programs(ebpf: &mut Ebpf) -> Result<Vec<(ExitProgram, &mut TracePoint)>, ProbeError> {
    let mut programs = Vec::new();
    for (name, p) in ebpf.programs_mut() {
        let Some(exit) = ExitProgram::ALL.into_iter().find(|e| e.name() == name) else { continue };
        let tp = p.try_into().map_err(|e: aya::programs::ProgramError| ProbeError::Load(format!("program {name}: {e}")))?;
        programs.push((exit, tp));
    }
    if let Some(missing) = ExitProgram::ALL.into_iter().find(|e| !programs.iter().any(|(p, _)| p == e)) {
        return Err(ProbeError::Load(format!("program {} missing from the object", missing.name())));
    }
    // In the table's order, whatever the object's (the report lists calls in it).
    programs.sort_by_key(|(exit, _)| ExitProgram::ALL.iter().position(|e| e == exit));
    Ok(programs)
}

/// Loads the descriptor programs, each on its own thread: the kernel
/// verifies them one per core, and verification is most of leaktrace's start-up.
pub fn load(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let mut programs = programs(ebpf)?;
    std::thread::scope(|s| {
        let loads: Vec<_> = programs.iter_mut().map(|(exit, p)| (exit.name(), s.spawn(move || p.load()))).collect();
        for (name, load) in loads {
            match load.join() {
                Ok(r) => r.map_err(aya_load_error(name))?,
                Err(_) => return Err(ProbeError::Load(format!("loading {name}: the thread panicked"))),
            }
        }
        Ok(())
    })
}

/// Attaches each descriptor program (loaded by [`load`]) to its calls' exit tracepoints.
pub fn attach(ebpf: &mut Ebpf) -> Result<SyscallProbes, ProbeError> {
    // Built first, so that a failure half-way takes off what is attached the same way.
    let mut probes = SyscallProbes { links: Vec::new(), info: DescriptorProbes::default() };
    for (exit, p) in programs(ebpf)? {
        for s in SYSCALLS.iter().filter(|s| s.effect.program() == exit) {
            if !tracepoint_exists(s.name) {
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
        if tracepoint_exists(s.name) {
            info.syscalls += 1;
        } else {
            info.not_on_this_kernel.push(s.name);
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_in_the_running_kernel() {
        let btf = KernelBtf::load().unwrap();
        let s = FdSettings::from_btf(&btf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.offsets.len(), MEMBERS.len());
        let get = |g: &str| s.offsets.iter().find(|(n, _)| *n == g).unwrap().1;
        // f_path is a struct path { mnt, dentry }: the dentry is 8 bytes in.
        assert_eq!(get("FD_FILE_DENTRY"), btf.member_offset("file", "f_path").unwrap() + 8);
        assert!(get("FD_TASK_FILES") > 0 && get("FD_TASK_FILES") < 16384);
    }
}
