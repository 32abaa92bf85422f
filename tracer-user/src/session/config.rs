//! What a session is asked for (the target, the options) and how starting
//! one fails.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::inprocess::HeapProbes;
use crate::probes::{AllocatorPrograms, LoadOptions, ProbeError};
use crate::process::{ChildSignals, SpawnError};
use crate::report::attribution::{Attribution, Suppressions};

#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// `signals`: what the command starts with (taken before leaktrace installs its handlers).
    Run {
        argv: Vec<OsString>,
        signals: ChildSignals,
    },
    Attach {
        pid: u32,
    },
}

#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    pub load: LoadOptions,
    pub allocator: Option<PathBuf>,
    pub attribution: Attribution,
    pub suppressions: Suppressions,
    /// Benchmarks only: empty allocator probes (the probe floor).
    pub allocator_programs: AllocatorPrograms,
    /// Reports keep every stack of every site (the profile formats need them).
    pub keep_stacks: bool,
    /// `run`: scan each process's memory at its end for what is lost (reach/).
    pub scan_at_exit: bool,
    /// Hidden `--explain-reach`: why the blocks of at least this many bytes
    /// that a scan finds not lost are reached, on stderr.
    pub explain_reach: Option<u64>,
    /// How the heap is traced.
    pub heap: HeapProbes,
    /// Descriptors 0, 1 and 2 are followed like any other (see
    /// [`crate::aggregate::Aggregator::track_std_fds`]).
    pub track_std_fds: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("no such process: {0}")]
    NoSuchProcess(u32),
    #[error("pid {0} is {1}; choose a running user-space process")]
    BadTarget(u32, &'static str),
    #[error("pid {0} exited while leaktrace was attaching")]
    ExitedDuringAttach(u32),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    #[error("--heap-probes inprocess: {0}")]
    Recorder(String),
}
