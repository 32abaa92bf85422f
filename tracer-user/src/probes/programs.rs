//! The eBPF programs of the embedded object, by name: one enum, so a typo is
//! a compile error and the object test below checks every name exists.

use tracer_common::syscalls::ExitProgram;
use tracer_common::AllocFn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    /// A descriptor program, on the exit tracepoints of its system calls.
    Descriptors(ExitProgram),
    ProcessExec,
    ProcessExit,
    ProcessFork,
    /// The entry probe of an allocator function.
    Enter(AllocFn),
    /// The return probe shared by every allocating function.
    AllocExit,
    /// Benchmarks: empty programs at the same points.
    FloorEnter,
    FloorExit,
}

impl Program {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Descriptors(p) => p.name(),
            Self::ProcessExec => "process_exec",
            Self::ProcessExit => "process_exit",
            Self::ProcessFork => "process_fork",
            Self::Enter(f) => match f {
                AllocFn::Malloc => "malloc_enter",
                AllocFn::Calloc => "calloc_enter",
                AllocFn::Realloc => "realloc_enter",
                AllocFn::Reallocarray => "reallocarray_enter",
                AllocFn::PosixMemalign => "posix_memalign_enter",
                AllocFn::AlignedAlloc => "aligned_alloc_enter",
                AllocFn::Memalign => "memalign_enter",
                AllocFn::Valloc => "valloc_enter",
                AllocFn::Pvalloc => "pvalloc_enter",
                AllocFn::Free => "free_enter",
            },
            Self::AllocExit => "alloc_exit",
            Self::FloorEnter => "floor_enter",
            Self::FloorExit => "floor_exit",
        }
    }

    /// Every program, for checks against the object.
    pub fn all() -> impl Iterator<Item = Program> {
        [Self::ProcessExec, Self::ProcessExit, Self::ProcessFork, Self::AllocExit, Self::FloorEnter, Self::FloorExit]
            .into_iter()
            .chain(AllocFn::ALL.into_iter().map(Self::Enter))
            .chain(ExitProgram::ALL.into_iter().map(Self::Descriptors))
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests {
    use object::{Object, ObjectSymbol};

    use super::*;

    #[test]
    fn every_program_is_in_the_embedded_object() {
        let file = object::File::parse(super::super::loader::OBJECT).expect("the embedded eBPF object parses");
        for p in Program::all() {
            assert!(file.symbols().any(|s| s.name() == Ok(p.name())), "program {p} is missing from the object");
        }
    }
}
