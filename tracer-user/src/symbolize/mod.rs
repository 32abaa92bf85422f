//! From addresses to function, file and line: process maps, ELF and DWARF
//! (with inlined frames, separate debug files, demangling), and the unwinder
//! that repairs stacks through frameless code. Modules are parsed once per
//! (path, build-id); results are cached per address.

mod cfi_table;
mod maps;
mod module;
mod modules;
mod stack;
mod tailcall;
mod unwind;
mod unwinder;

use std::collections::HashMap;

use serde::Serialize;

pub use cfi_table::CfiTable;
pub use maps::{Mapping, ProcessMaps};
pub use stack::{symbolize_stack, StackCalls};
pub use unwinder::{Completed, Unwinder};

use modules::ModuleSet;

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("malformed maps line: {0}")]
    Maps(String),
}

/// One frame; an address with inlined calls yields several.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    pub address: u64,
    /// Path of the module, or "[unknown]".
    pub module: String,
    /// Offset of the address in the module's file.
    pub module_offset: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub inlined: bool,
    /// Put back where a tail call left no frame (see [`tailcall`]).
    pub inferred: bool,
}

impl Frame {
    /// `libfoo.so+0x1234`, for frames without a function name.
    pub fn unresolved_label(&self) -> String {
        format!("{}+{:#x}", self.module.rsplit('/').next().unwrap_or(&self.module), self.module_offset)
    }
}

/// Names addresses: function, file, line, with inlined frames. Results are
/// cached per (module, address).
#[derive(Default)]
pub struct Symbolizer {
    modules: ModuleSet,
    frames: HashMap<(usize, u64), Vec<Frame>>,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Problems met so far (a rebuilt binary, an unreadable module).
    pub fn warnings(&self) -> &[String] {
        self.modules.warnings()
    }

    /// Frames for `addr`, innermost (inlined) first. With `is_return_address`
    /// the call instruction (`addr - 1`) is looked up.
    pub fn symbolize(&mut self, maps: &ProcessMaps, addr: u64, is_return_address: bool) -> Vec<Frame> {
        let probe = if is_return_address { addr.saturating_sub(1) } else { addr };
        let Some(m) = maps.find(probe).cloned() else {
            return vec![Frame {
                address: addr,
                module: "[unknown]".into(),
                module_offset: addr,
                function: None,
                file: None,
                line: None,
                column: None,
                inlined: false,
                inferred: false,
            }];
        };
        let offset = probe - m.start + m.offset;
        let module_name = m.path.as_ref().map_or_else(|| "[anonymous]".to_owned(), |p| p.display().to_string());
        let unresolved = Frame {
            address: addr,
            module: module_name.clone(),
            module_offset: offset,
            function: None,
            file: None,
            line: None,
            column: None,
            inlined: false,
            inferred: false,
        };
        let Some(i) = self.modules.index_of(&m) else { return vec![unresolved] };
        let Some(module) = self.modules.get(i) else { return vec![unresolved] };
        let Some(svma) = module.svma_of_offset(offset) else { return vec![unresolved] };
        if let Some(hit) = self.frames.get(&(i, svma)) {
            return hit.iter().map(|f| Frame { address: addr, ..f.clone() }).collect();
        }
        let found = module.frames(svma);
        let frames: Vec<Frame> = if found.is_empty() {
            vec![unresolved]
        } else {
            let last = found.len() - 1;
            found
                .into_iter()
                .enumerate()
                .map(|(k, (function, file, line, column))| Frame {
                    address: addr,
                    module: module_name.clone(),
                    module_offset: offset,
                    function,
                    file,
                    line,
                    column,
                    inlined: k < last,
                    inferred: false,
                })
                .collect()
        };
        self.frames.insert((i, svma), frames.clone());
        frames
    }
}
