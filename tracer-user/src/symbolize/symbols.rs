//! Function symbols with their extents (`st_value`, `st_size`). An address
//! is named by a symbol only when it lies inside that symbol: a stripped
//! binary's static function between two exported ones stays unnamed
//! (`module+0xOFFSET`) instead of borrowing a neighbour's name.

use std::sync::Arc;

use object::{Object, ObjectSymbol, SymbolKind};

use super::mapped::MappedFile;

/// One function symbol; its name lives in one of the table's files.
#[derive(Clone, Copy)]
struct Symbol {
    addr: u64,
    size: u64,
    name_at: u32,
    name_len: u32,
    file: u8,
}

/// Symbols of a module (its .dynsym and .symtab, and the .symtab of its
/// separate debug file), sorted by address, one per address.
pub struct SymbolTable {
    files: Vec<Arc<MappedFile>>,
    symbols: Vec<Symbol>,
}

/// A symbol that contains an address.
#[derive(Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    pub name: &'a str,
    /// The address minus the symbol's start.
    pub offset: u64,
}

/// How many preceding symbols are tried when the nearest one does not
/// contain the address (a large symbol enclosing smaller ones).
const LOOK_BACK: usize = 8;

impl SymbolTable {
    pub fn new(files: Vec<Arc<MappedFile>>) -> Self {
        // (addr, rank, size, symbol): several names per address (malloc,
        // __libc_malloc, __GI___libc_malloc, or socket and __socket): the
        // global one without leading underscores, the name callers use, wins.
        let mut all: Vec<(u64, u8, Symbol)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let base = f.bytes().as_ptr() as usize;
            let Ok(obj) = object::File::parse(f.bytes()) else { continue };
            for s in obj.symbols().chain(obj.dynamic_symbols()) {
                let Ok(name) = s.name_bytes() else { continue };
                if s.kind() != SymbolKind::Text || s.address() == 0 || name.is_empty() || std::str::from_utf8(name).is_err() {
                    continue;
                }
                let (Ok(name_at), Ok(name_len)) = (u32::try_from(name.as_ptr() as usize - base), u32::try_from(name.len())) else {
                    continue;
                };
                let rank = u8::from(!s.is_global()) * 2 + u8::from(name.starts_with(b"_"));
                all.push((s.address(), rank, Symbol { addr: s.address(), size: s.size(), name_at, name_len, file: i as u8 }));
            }
        }
        all.sort_by_key(|(addr, rank, s)| (*addr, s.size == 0, *rank));
        all.dedup_by_key(|(addr, _, _)| *addr);
        Self { files, symbols: all.into_iter().map(|(_, _, s)| s).collect() }
    }

    fn name(&self, s: &Symbol) -> &str {
        let bytes = self.files[s.file as usize].bytes();
        let raw = bytes.get(s.name_at as usize..(s.name_at + s.name_len) as usize).unwrap_or_default();
        std::str::from_utf8(raw).unwrap_or_default()
    }

    /// The address of the symbol called `name`.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| self.name(s) == name).map(|s| s.addr)
    }

    /// The symbol whose extent contains `svma`. A symbol of size 0 contains
    /// only its own address.
    pub fn find(&self, svma: u64) -> Option<Hit<'_>> {
        let end = self.symbols.partition_point(|s| s.addr <= svma);
        self.symbols[end.saturating_sub(LOOK_BACK)..end]
            .iter()
            .rev()
            .find(|s| svma < s.addr.saturating_add(s.size.max(1)))
            .map(|s| Hit { name: self.name(s), offset: svma - s.addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn libc() -> (SymbolTable, Vec<u8>) {
        let path = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        (SymbolTable::new(vec![MappedFile::open(path).unwrap()]), std::fs::read(path).unwrap())
    }

    #[test]
    fn an_address_is_named_only_inside_a_symbol() {
        let (table, data) = libc();
        let file = object::File::parse(&*data).unwrap();
        let malloc = file.dynamic_symbols().find(|s| s.name() == Ok("malloc")).unwrap();
        assert_eq!(table.find(malloc.address() + 4), Some(Hit { name: "malloc", offset: 4 }));
        assert_ne!(table.find(malloc.address() + malloc.size()).map(|h| h.name), Some("malloc"), "one past the end");
        let socket = file.dynamic_symbols().find(|s| s.name() == Ok("__socket")).unwrap();
        assert_eq!(table.find(socket.address()).unwrap().name, "socket", "the exported name wins");
    }

    #[test]
    fn gaps_between_symbols_have_no_name() {
        let (table, _) = libc();
        // Somewhere in libc's .text lies an address no dynamic symbol covers
        // (static functions): none of them may be named.
        let syms = &table.symbols;
        let gap = syms.windows(2).find(|w| w[0].size > 0 && w[0].addr + w[0].size + 16 < w[1].addr).expect("a gap");
        assert!(table.find(gap[0].addr + gap[0].size + 8).is_none());
        assert!(table.find(1).is_none());
    }
}
