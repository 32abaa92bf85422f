//! A symbolized frame, the plain name of a C runtime function, and what
//! symbolizing fails with: the types every part of symbolize/ shares.

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("malformed maps line: {0}")]
    Maps(String),
}

/// One frame; an address with inlined calls yields several.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frame {
    pub address: u64,
    /// Path of the module (shown lossily when not UTF-8), or "[unknown]".
    pub module: Arc<str>,
    /// Offset of the address in the module's file.
    pub module_offset: u64,
    pub function: Option<Arc<str>>,
    /// Offset of the address in the symbol that named the function (no line known).
    pub symbol_offset: Option<u64>,
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub inlined: bool,
    /// Put back where a tail call left no frame (see tailcall.rs).
    pub inferred: bool,
    /// The module is the process's executable, not a shared object it loaded
    /// (a program may live under a library directory: `/usr/lib/git-core/git`).
    pub executable: bool,
    /// `line` is where the function starts, not the call's: a JIT symbol file
    /// that names code without positions inside it (a perf map).
    pub line_is_function_start: bool,
}

impl Frame {
    /// `libfoo.so+0x1234`, for frames without a function name.
    pub fn unresolved_label(&self) -> String {
        format!("{}+{:#x}", self.module.rsplit('/').next().unwrap_or(&self.module), self.module_offset)
    }
}

/// A name the C runtime uses internally, reduced to the one callers know:
/// `__GI___libc_malloc` and `__libc_malloc` to `malloc`, `__socket` to `socket`.
pub fn plain_name(name: &str) -> &str {
    let mut n = name;
    loop {
        let next = n.strip_prefix("__GI_").or_else(|| n.strip_prefix("__libc_")).or_else(|| n.strip_prefix("__"));
        match next {
            Some(rest) if !rest.is_empty() => n = rest,
            _ => return n,
        }
    }
}
