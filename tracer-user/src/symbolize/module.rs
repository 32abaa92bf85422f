//! One ELF module: its load segments, DWARF and sized symbols (looked up
//! lazily). The file is mapped, never read whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object, ObjectSegment};

use super::mapped::MappedFile;
use super::symbols::SymbolTable;
use super::{debugfile, dwarf};

/// What names addresses: the sized symbol table, and DWARF when there is any.
struct Names {
    symbols: SymbolTable,
    dwarf: Option<dwarf::Context>,
}

/// One named frame: (function, offset in its symbol, file, line, column);
/// innermost (inlined) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawFrame {
    pub function: Option<String>,
    /// The address minus the start of the symbol that named it (symbols only).
    pub symbol_offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

pub struct Module {
    /// The path the target mapped it from: a name, for messages and debug links.
    path: PathBuf,
    /// The file actually mapped, mapped again here (never read whole).
    file: Arc<MappedFile>,
    /// (file offset, virtual address, size in file) of each PT_LOAD.
    segments: Vec<(u64, u64, u64)>,
    /// Loaded on first use.
    names: std::cell::OnceCell<Names>,
}

impl Module {
    /// Opens `path` as a file name. `expected_build_id` is what was mapped; a
    /// different file there now (rebuilt) is an error, never a misreading.
    pub fn load(path: &Path, expected_build_id: Option<&[u8]>) -> Result<Self, String> {
        let file = MappedFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let (Some(want), Some(have)) = (expected_build_id, file.build_id()) {
            if want != have {
                return Err(format!("{} was rebuilt since it was mapped (build-id differs)", path.display()));
            }
        }
        Self::from_file(path, file)
    }

    /// The module in `file`, which the target mapped from `path`.
    pub fn from_file(path: &Path, file: Arc<MappedFile>) -> Result<Self, String> {
        let elf = object::File::parse(file.bytes()).map_err(|e| format!("{}: not an ELF file: {e}", path.display()))?;
        let segments = elf.segments().map(|s| (s.file_range().0, s.address(), s.file_range().1)).collect();
        drop(elf);
        Ok(Self { path: path.to_path_buf(), file, segments, names: std::cell::OnceCell::new() })
    }

    /// Whether its symbols and DWARF have been read.
    pub fn is_parsed(&self) -> bool {
        self.names.get().is_some()
    }

    /// The ELF virtual address of a file offset.
    pub fn svma_of_offset(&self, offset: u64) -> Option<u64> {
        // Segment fields come from the file: no arithmetic on them may overflow
        // (nor on the address, which DWARF lookups take one past).
        let svma = |(o, v, _): &(u64, u64, u64)| v.checked_add(offset - o).filter(|a| *a < u64::MAX);
        self.segments.iter().find(|(o, _, n)| offset.checked_sub(*o).is_some_and(|d| d < *n)).and_then(svma)
    }

    fn names(&self) -> &Names {
        self.names.get_or_init(|| {
            let own = dwarf::load(&self.file);
            let debug = if own.is_none() { debugfile::find(&self.path, &self.file) } else { None };
            let dwarf = own.or_else(|| debug.as_ref().and_then(dwarf::load));
            let files = std::iter::once(self.file.clone()).chain(debug).collect();
            Names { symbols: SymbolTable::new(files), dwarf }
        })
    }

    /// Frames at `svma`: innermost (inlined) first. DWARF names what it
    /// covers; otherwise only a symbol whose extent holds `svma` does.
    pub fn frames(&self, svma: u64) -> Vec<RawFrame> {
        let names = self.names();
        let mut out: Vec<RawFrame> = names
            .dwarf
            .as_ref()
            .map(|d| dwarf::frames(d, svma))
            .unwrap_or_default()
            .into_iter()
            .map(|(function, file, line, column)| RawFrame { function, symbol_offset: None, file, line, column })
            .collect();
        let hit = names.symbols.find(svma);
        if let (Some(outer), Some(hit)) = (out.last_mut(), &hit) {
            // DWARF names glibc's functions by their internal names
            // (__libc_malloc, __socket); callers know the exported alias.
            if outer.function.as_deref().is_some_and(|f| f != hit.name && super::plain_name(f) == hit.name) {
                outer.function = Some(hit.name.to_owned());
            }
        }
        if out.last().is_none_or(|f| f.function.is_none()) {
            if let Some(hit) = hit {
                let name = addr2line::demangle_auto(hit.name.into(), None).into_owned();
                match out.last_mut() {
                    Some(last) => {
                        last.function = Some(name);
                        last.symbol_offset = Some(hit.offset);
                    }
                    None => out.push(RawFrame { function: Some(name), symbol_offset: Some(hit.offset), ..RawFrame::default() }),
                }
            }
        }
        out
    }

    /// The compilation directory of the DWARF unit holding `svma`.
    pub fn comp_dir(&self, svma: u64) -> Option<String> {
        dwarf::comp_dir(self.names().dwarf.as_ref()?, svma)
    }

    /// The address of the `main` symbol, if the module has one.
    pub fn main_address(&self) -> Option<u64> {
        self.names().symbols.address_of("main")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::ObjectSymbol;

    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

    fn address_of(name: &str) -> u64 {
        let data = std::fs::read(LIBC).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sym = file.dynamic_symbols().find(|s| s.name() == Ok(name)).unwrap();
        sym.address()
    }

    #[test]
    fn libc_frames_carry_file_and_line_from_its_debug_file() {
        let m = Module::load(Path::new(LIBC), None).unwrap();
        let frames = m.frames(address_of("malloc") + 4);
        let outer = frames.last().unwrap();
        assert_eq!(outer.function.as_deref(), Some("malloc"), "the exported name of __libc_malloc: {frames:?}");
        assert!(outer.file.as_deref().is_some_and(|f| f.ends_with("malloc.c")), "libc6-dbg gives file:line: {frames:?}");
        assert!(outer.line.is_some());
        assert_eq!(m.frames(address_of("socket")).last().unwrap().function.as_deref(), Some("socket"), "the exported name wins");
    }

    #[test]
    fn a_rebuilt_file_is_refused() {
        let err = Module::load(Path::new(LIBC), Some(b"not the same build")).err().unwrap();
        assert!(err.contains("rebuilt"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"\x7fELF garbage").unwrap();
        assert!(Module::load(f.path(), None).is_err());
    }
}
