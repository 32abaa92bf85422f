//! The eBPF programs of the embedded object, by name: one enum, so a typo is
//! a compile error and the object test below checks every name exists.

use aya::Ebpf;
use tracer_common::syscalls::ExitProgram;

use super::ProbeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    /// A descriptor program, on the exit tracepoints of its system calls.
    Descriptors(ExitProgram),
    ProcessExec,
    ProcessExit,
    ProcessFork,
    /// The entry probe of every allocator function (its cookie names the function).
    AllocEnter,
    /// The return probe shared by every allocating function.
    AllocExit,
    /// Entry and return in one uprobe session.
    AllocSession,
    /// Benchmarks: empty programs at the same points.
    FloorEnter,
    FloorExit,
    FloorSession,
    FloorSessionEntries,
    /// The loader's kernel test: a bpf_loop callback.
    LoaderCheck,
    /// The dynamic linker's `_dl_debug_state`: objects mapped.
    DlLoaded,
    /// Every probed libuv function (its cookie names the function).
    UvCall,
}

impl Program {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Descriptors(p) => p.name(),
            Self::ProcessExec => "process_exec",
            Self::ProcessExit => "process_exit",
            Self::ProcessFork => "process_fork",
            Self::AllocEnter => "alloc_enter",
            Self::AllocExit => "alloc_exit",
            Self::AllocSession => "alloc_session",
            Self::FloorEnter => "floor_enter",
            Self::FloorExit => "floor_exit",
            Self::DlLoaded => "dl_loaded",
            Self::FloorSession => "floor_session",
            Self::FloorSessionEntries => "floor_session_entries",
            Self::LoaderCheck => "loader_check",
            Self::UvCall => "uv_call",
        }
    }

    /// Every program, for checks against the object.
    pub fn all() -> impl Iterator<Item = Program> {
        [
            Self::ProcessExec,
            Self::ProcessExit,
            Self::ProcessFork,
            Self::AllocEnter,
            Self::AllocExit,
            Self::AllocSession,
            Self::FloorEnter,
            Self::FloorExit,
            Self::FloorSession,
            Self::FloorSessionEntries,
            Self::LoaderCheck,
            Self::DlLoaded,
            Self::UvCall,
        ]
        .into_iter()
        .chain(ExitProgram::ALL.into_iter().map(Self::Descriptors))
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A program of the loaded object, as the kind aya drives it as.
pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, prog: Program) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(prog.name()).ok_or_else(|| ProbeError::Load(format!("program {prog} missing from the object")))?;
    p.try_into().map_err(|e: aya::programs::ProgramError| ProbeError::Load(format!("program {prog}: {e}")))
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests {
    use object::{Object, ObjectSymbol};

    use super::*;

    #[test]
    fn every_program_is_in_the_embedded_object() {
        let file = object::File::parse(super::super::prepare::OBJECT).expect("the embedded eBPF object parses");
        for p in Program::all() {
            assert!(file.symbols().any(|s| s.name() == Ok(p.name())), "program {p} is missing from the object");
        }
    }
}
