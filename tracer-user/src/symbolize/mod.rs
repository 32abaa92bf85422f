//! From addresses to function, file and line: process maps, ELF and DWARF
//! (with inlined frames, separate debug files, demangling), and the unwinder
//! that repairs stacks through frameless code. Modules are parsed once per
//! (path, build-id); results are cached per address.

mod maps;
mod module;
mod unwind;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

pub use maps::{Mapping, ProcessMaps};
pub use unwind::{UnwindInput, Unwound};

use module::{Module, UnwindRow};

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
}

impl Frame {
    /// `libfoo.so+0x1234`, for frames without a function name.
    pub fn unresolved_label(&self) -> String {
        format!("{}+{:#x}", self.module.rsplit('/').next().unwrap_or(&self.module), self.module_offset)
    }
}

type ModuleKey = (PathBuf, Option<Vec<u8>>);

/// The C library and the dynamic linker: named from their symbol tables only.
/// Their full debug information (when installed) costs tens of MiB to parse,
/// for file:line inside glibc that a leak report does not need.
fn is_c_runtime(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("libc.so") || name.starts_with("ld-linux") || name.starts_with("libc-")
}

#[derive(Default)]
pub struct Symbolizer {
    modules: Vec<Option<Module>>,
    index: HashMap<ModuleKey, usize>,
    frames: HashMap<(usize, u64), Vec<Frame>>,
    rows: HashMap<(usize, u64), Option<UnwindRow>>,
    unwind_ctx: gimli::UnwindContext<usize>,
    warnings: Vec<String>,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Problems met so far (a rebuilt binary, an unreadable module).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The module of a mapping, parsed on first use.
    fn module(&mut self, m: &Mapping) -> Option<usize> {
        let path = m.path.clone()?;
        let key = (path, m.build_id.clone());
        if let Some(&i) = self.index.get(&key) {
            return self.modules[i].as_ref().map(|_| i);
        }
        let module = match Module::load(&key.0, key.1.as_deref(), is_c_runtime(&key.0)) {
            Ok(m) => Some(m),
            Err(e) => {
                self.warnings.push(format!("{e}: its frames are shown as module+offset"));
                None
            }
        };
        let i = self.modules.len();
        self.modules.push(module);
        self.index.insert(key, i);
        self.modules[i].as_ref().map(|_| i)
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
        };
        let Some(i) = self.module(&m) else { return vec![unresolved] };
        let Some(svma) = self.modules[i].as_ref().and_then(|md| md.svma_of_offset(offset)) else { return vec![unresolved] };
        if let Some(hit) = self.frames.get(&(i, svma)) {
            return hit.iter().map(|f| Frame { address: addr, ..f.clone() }).collect();
        }
        let found = self.modules[i].as_ref().map(|md| md.frames(svma)).unwrap_or_default();
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
                })
                .collect()
        };
        self.frames.insert((i, svma), frames.clone());
        frames
    }

    /// Repairs a kernel stack through frameless code (see [`unwind`]).
    pub fn unwind(&mut self, maps: &ProcessMaps, input: &UnwindInput) -> Unwound {
        let mut row_at = |pc: u64| -> Option<UnwindRow> {
            let probe = pc.saturating_sub(1);
            let m = maps.find(probe)?.clone();
            let i = self.module(&m)?;
            let module = self.modules[i].as_ref()?;
            let svma = module.svma_of_offset(probe - m.start + m.offset)?;
            if let Some(row) = self.rows.get(&(i, svma)) {
                return *row;
            }
            let row = module.unwind_row(svma, &mut self.unwind_ctx);
            self.rows.insert((i, svma), row);
            row
        };
        unwind::unwind(input, &mut row_at)
    }
}
