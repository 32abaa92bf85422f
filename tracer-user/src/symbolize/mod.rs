//! From addresses to function, file and line: process maps with the files
//! the process really mapped, ELF symbols with their extents, DWARF (with
//! inlined frames, separate debug files, demangling), and the unwinder that
//! repairs stacks through frameless code. Files are mapped, never read
//! whole; modules are parsed once per mapped file; results are cached per
//! address in a bounded cache, their strings shared.

mod cfi_table;
mod debugfile;
mod dwarf;
mod frame;
pub mod jit;
mod mapped;
mod mapping;
mod maps;
mod module;
mod modules;
mod stack;
mod symbols;
mod tailcall;
mod unwind;
mod unwinder;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use cfi_table::CfiTable;
pub use debugfile::find as debug_file;
pub use frame::{plain_name, Frame, SymbolizeError};
pub use mapped::MappedFile;
pub use mapping::Mapping;
pub use maps::ProcessMaps;
pub use stack::{symbolize_stack, StackCalls};
pub use unwinder::{Completed, Unwinder};

use modules::ModuleSet;

/// Distinct addresses whose frames are kept; past this the cache starts over.
const CACHE_LIMIT: usize = 1 << 16;

/// Names addresses: function, file, line, with inlined frames.
#[derive(Default)]
pub struct Symbolizer {
    modules: ModuleSet,
    jit: jit::JitNames,
    frames: HashMap<(usize, u64), Arc<[Frame]>>,
    strings: HashSet<Arc<str>>,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Modules whose symbols and DWARF have been read so far.
    pub fn parsed_modules(&self) -> usize {
        self.modules.parsed()
    }

    /// Problems met so far (a rebuilt binary, an unreadable module, a JIT symbol file refused).
    pub fn warnings(&self) -> Vec<String> {
        self.modules.warnings().iter().chain(self.jit.warnings()).cloned().collect()
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(v) = self.strings.get(s) {
            return v.clone();
        }
        if self.strings.len() >= CACHE_LIMIT {
            self.strings.clear();
        }
        let v: Arc<str> = Arc::from(s);
        self.strings.insert(v.clone());
        v
    }

    /// Frames for `addr`, innermost (inlined) first. With `is_return_address`
    /// the call instruction (`addr - 1`) is looked up.
    pub fn symbolize(&mut self, maps: &ProcessMaps, addr: u64, is_return_address: bool) -> Vec<Frame> {
        let probe = if is_return_address { addr.saturating_sub(1) } else { addr };
        let unresolved = |module: Arc<str>, module_offset: u64| Frame {
            address: addr,
            module,
            module_offset,
            function: None,
            symbol_offset: None,
            file: None,
            line: None,
            column: None,
            inlined: false,
            inferred: false,
            executable: false,
            line_is_function_start: false,
        };
        let jit = |this: &mut Self| maps.jit().and_then(|source| this.jit.frame(source, addr, probe));
        let Some(m) = maps.find(probe).cloned() else {
            return vec![jit(self).unwrap_or_else(|| unresolved(self.intern("[unknown]"), addr))];
        };
        if m.path.is_none() {
            if let Some(f) = jit(self) {
                return vec![f];
            }
        }
        let offset = probe - m.start + m.offset;
        let module_name = self.intern(&m.path.as_ref().map_or_else(|| "[anonymous]".into(), |p| p.to_string_lossy()));
        // Whether a module is the executable depends on the process, not on
        // the file: it is set on each answer, never cached with the frames.
        let executable = m.path.is_some() && maps.executable().is_some_and(|e| e.path == m.path);
        let unresolved = |module, offset| Frame { executable, ..unresolved(module, offset) };
        let Some(i) = self.modules.index_of(&m) else { return vec![unresolved(module_name, offset)] };
        let Some(svma) = self.modules.get(i).and_then(|module| module.svma_of_offset(offset)) else {
            return vec![unresolved(module_name, offset)];
        };
        // Symbol offsets are kept relative to the probe and shown relative
        // to the address asked for (the return address, as debuggers show it).
        let shift = addr - probe;
        let at = |f: &Frame| Frame { address: addr, symbol_offset: f.symbol_offset.map(|o| o + shift), executable, ..f.clone() };
        if let Some(hit) = self.frames.get(&(i, svma)) {
            return hit.iter().map(at).collect();
        }
        let found = self.modules.get(i).map(|module| module.frames(svma)).unwrap_or_default();
        let frames: Vec<Frame> = if found.is_empty() {
            vec![unresolved(module_name, offset)]
        } else {
            let last = found.len() - 1;
            found
                .into_iter()
                .enumerate()
                .map(|(k, f)| Frame {
                    address: addr,
                    module: module_name.clone(),
                    module_offset: offset,
                    function: f.function.map(|s| self.intern(&s)),
                    symbol_offset: f.symbol_offset,
                    file: f.file.map(|s| self.intern(&s)),
                    line: f.line,
                    column: f.column,
                    inlined: k < last,
                    inferred: false,
                    executable: false,
                    line_is_function_start: false,
                })
                .collect()
        };
        if self.frames.len() >= CACHE_LIMIT {
            self.frames.clear();
        }
        let shown = frames.iter().map(at).collect();
        self.frames.insert((i, svma), frames.into());
        shown
    }

    /// The compilation directory of the executable's `main` (where relative
    /// source paths of the program itself are anchored).
    pub fn main_comp_dir(&mut self, maps: &ProcessMaps) -> Option<String> {
        let exe = maps.executable()?.clone();
        let i = self.modules.index_of(&exe)?;
        let module = self.modules.get(i)?;
        module.comp_dir(module.main_address()?)
    }
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn internal_runtime_names_reduce_to_the_exported_one() {
        assert_eq!(plain_name("__GI___libc_malloc"), "malloc");
        assert_eq!(plain_name("__socket"), "socket");
        assert_eq!(plain_name("pipe2"), "pipe2");
        assert_eq!(plain_name("__"), "__");
    }
}
