//! The descriptor programs, loaded: one per kind of system call effect
//! (tracer_common's `ExitProgram`), each reading the task's descriptor table
//! at offsets the kernel's BTF gives, passed as load-time constants. The
//! kernel verifies them one per core. attach/syscalls.rs hangs them on the
//! exit tracepoints.

use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use tracer_common::syscalls::ExitProgram;

use super::btf::KernelBtf;
use crate::probes::errors::{aya_load_error, ProbeError};

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
                sum.map(|o| (*global, o)).map_err(ProbeError::KernelMember)
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

/// The descriptor programs of the object, each with its own borrow.
pub(crate) fn programs(ebpf: &mut Ebpf) -> Result<Vec<(ExitProgram, &mut TracePoint)>, ProbeError> {
    let mut programs = Vec::new();
    for (name, p) in ebpf.programs_mut() {
        let Some(exit) = ExitProgram::ALL.into_iter().find(|e| e.name() == name) else { continue };
        let tp = p.try_into().map_err(|source| ProbeError::ProgramKind { program: exit.name(), source })?;
        programs.push((exit, tp));
    }
    if let Some(missing) = ExitProgram::ALL.into_iter().find(|e| !programs.iter().any(|(p, _)| p == e)) {
        return Err(ProbeError::MissingProgram(missing.name()));
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
                Err(_) => return Err(ProbeError::LoadPanicked(name)),
            }
        }
        Ok(())
    })
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
