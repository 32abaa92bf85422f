//! Why probes could not be loaded or attached: [`ProbeError`], each variant
//! naming what failed and carrying the error under it as its source, so that
//! the edge (cli's `{:#}`, a warning) prints the whole chain in one line.
//! A leaf but for the error types it wraps.

use std::ffi::NulError;
use std::io;
use std::path::PathBuf;

use aya::maps::MapError;
use aya::programs::ProgramError;

use super::load::btf::BtfError;
use super::load::refusal::{self, LoadedFor, Refused};
use crate::symbolize::SymbolizeError;

/// Why probes could not be loaded or attached. Each names what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this leaktrace was built with LEAKTRACE_EBPF_STUB=1 and carries no eBPF object; rebuild without it (run `cargo xtask setup` first)")]
    StubBuild,
    #[error("not permitted: leaktrace needs root, or CAP_BPF and CAP_PERFMON (try sudo)")]
    NotPermitted,
    #[error("the kernel lacks {what}: {detail}")]
    KernelFeature { what: &'static str, detail: String },
    #[error("the kernel lacks usable BTF")]
    KernelBtf(#[source] BtfError),
    #[error("the kernel lacks a structure member leaktrace reads")]
    KernelMember(#[source] BtfError),
    #[error("loading the eBPF object failed")]
    Object(#[source] aya::EbpfError),
    #[error("the embedded eBPF object does not parse")]
    ObjectParse(#[source] aya_obj::ParseError),
    #[error("the eBPF object's BTF cannot be made fit for this kernel")]
    ObjectBtf(#[source] aya_obj::btf::BtfError),
    #[error("the eBPF object carries no BTF (built without --btf?)")]
    NoObjectBtf,
    #[error("the kernel refused the eBPF object's BTF")]
    ObjectBtfRefused(#[source] Refused),
    #[error("reading the kernel's BTF for the eBPF object's relocations failed")]
    KernelBtfRead(#[source] aya_obj::btf::BtfError),
    #[error("the eBPF object's CO-RE relocations failed")]
    CoRe(#[source] aya_obj::btf::BtfRelocationError),
    #[error("relocating the eBPF object's {what} failed")]
    Relocate { what: &'static str, source: aya_obj::relocation::EbpfRelocationError },
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("program {program} of the eBPF object is not of the kind leaktrace drives it as")]
    ProgramKind { program: &'static str, source: ProgramError },
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("aya did not create the eBPF object's map {0}")]
    MapNotCreated(String),
    #[error("map {name} of the eBPF object is not of the kind leaktrace reads it as")]
    MapKind { name: &'static str, source: Option<MapError> },
    #[error("loading program {program} failed")]
    LoadProgram { program: &'static str, source: ProgramError },
    #[error("loading program {0} failed: its thread panicked")]
    LoadPanicked(&'static str),
    /// The verifier (or the kernel before it) refused a program: the reason
    /// in one line, the whole log for `--verbose`.
    #[error("the kernel refused program {program}: {reason}")]
    Refused { program: String, reason: String, log: String },
    #[error("attaching {what} failed")]
    Attach { what: String, source: ProgramError },
    #[error("attaching {what} failed ({link} link)")]
    Link { what: String, link: &'static str, source: io::Error },
    #[error("adding pid {pid} to the table of traced processes failed")]
    AddTarget { pid: u32, source: MapError },
    #[error("pid 0 is not a process")]
    PidZero,
    #[error("{0} holds a NUL byte, which the kernel cannot take in a path")]
    PathWithNul(PathBuf, #[source] NulError),
    #[error("no allocator found in {target}: no loaded object exports `malloc` (use --allocator PATH)")]
    NoAllocator { target: String },
    #[error("cannot read {path}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("cannot read the mappings of pid {pid}")]
    Mappings { pid: u32, source: SymbolizeError },
    #[error("{0} is not an ELF object (64-bit, with readable program headers)")]
    NotElf(PathBuf),
    #[error("{0} cannot be the allocator: it does not define both malloc and free")]
    NotAnAllocator(PathBuf),
    #[error("{path} defines no {symbol}")]
    NoSymbol { path: PathBuf, symbol: &'static str },
}

impl ProbeError {
    /// A refused program's name and the kernel's whole log about it.
    pub fn verifier_log(&self) -> Option<(&str, &str)> {
        match self {
            Self::Refused { program, log, .. } => Some((program, log)),
            _ => None,
        }
    }

    /// A refusal of program `program` (by leaktrace's own loader), as leaktrace reports it.
    pub(crate) fn refused(program: &str, refused: Refused) -> Self {
        Self::Refused { program: program.to_owned(), reason: refused.to_string(), log: refused.log }
    }
}

/// What a failed attach (or another aya call on a program) becomes.
pub(crate) fn attach_err(what: impl Into<String>) -> impl FnOnce(ProgramError) -> ProbeError {
    let what = what.into();
    move |source| ProbeError::Attach { what, source }
}

/// What aya's failure to load `program` becomes: a refusal in one line when
/// the kernel refused it, else the error with its causes.
pub(crate) fn aya_load_error(program: &'static str) -> impl FnOnce(ProgramError) -> ProbeError {
    move |e| match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let reason = refusal::reason(io_error.raw_os_error(), &log, LoadedFor::Plain);
            ProbeError::Refused { program: program.to_owned(), reason, log }
        }
        source => ProbeError::LoadProgram { program, source },
    }
}
