use std::path::PathBuf;

/// Why probes could not be loaded or attached. Each names what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this leaktrace was built with LEAKTRACE_EBPF_STUB=1 and carries no eBPF object; rebuild without it (run `cargo xtask setup` first)")]
    StubBuild,
    #[error("not permitted: leaktrace needs root, or CAP_BPF and CAP_PERFMON (try sudo)")]
    NotPermitted,
    #[error("the kernel lacks {what}: {detail}")]
    KernelFeature { what: &'static str, detail: String },
    #[error("loading the eBPF programs failed: {0}")]
    Load(String),
    /// The verifier (or the kernel before it) refused a program: the reason
    /// in one line, the whole log for `--verbose`.
    #[error("the kernel refused program {program}: {reason}")]
    Refused { program: String, reason: String, log: String },
    #[error("attaching {what} failed: {detail}")]
    Attach { what: String, detail: String },
    #[error("no allocator found in {target}: no loaded object exports `malloc` (use --allocator PATH)")]
    NoAllocator { target: String },
    #[error("cannot read {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

impl ProbeError {
    /// A refused program's name and the kernel's whole log about it.
    pub fn verifier_log(&self) -> Option<(&str, &str)> {
        match self {
            Self::Refused { program, log, .. } => Some((program, log)),
            _ => None,
        }
    }
}

/// What a failed attach (or another aya call on a program) becomes.
pub(crate) fn attach_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> ProbeError {
    let what = what.into();
    move |e| ProbeError::Attach { what, detail: error_chain(&e) }
}

/// An error and its causes, in one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
