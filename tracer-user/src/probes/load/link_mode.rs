//! The kinds of link a uprobe can be hung on a process with, best first.
//! A leaf: the loader picks one by what the kernel accepts, attach/ makes them.

/// How the allocator probes are hung on a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// One uprobe-session link: entry and return in one program; an entry
    /// that records nothing never arms its return probe (Linux 6.13).
    Session,
    /// A uprobe_multi link for the entries and one for the returns (Linux 6.6).
    Multi,
    /// One perf-event uprobe per probe point (any kernel; slow to detach).
    PerfEvent,
}

impl LinkMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Session => "uprobe session",
            Self::Multi => "uprobe_multi",
            Self::PerfEvent => "perf-event uprobes",
        }
    }

    /// The word `--uprobe-links` takes for it.
    pub const fn option_word(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Multi => "multi",
            Self::PerfEvent => "perf",
        }
    }
}
