//! The eBPF programs of the embedded object, by name: one enum, so a typo is
//! a compile error and object.rs's test checks every name exists. A
//! leaf: it names nothing else of probes/.

use tracer_common::syscalls::ExitProgram;

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
