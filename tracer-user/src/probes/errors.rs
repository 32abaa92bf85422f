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
    #[error("attaching {what} failed: {detail}")]
    Attach { what: String, detail: String },
    #[error("no allocator found in {target}: no loaded object exports `malloc` (use --allocator PATH)")]
    NoAllocator { target: String },
    #[error("cannot read {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}
