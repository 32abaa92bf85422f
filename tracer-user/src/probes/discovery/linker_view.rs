//! An ELF file as the dynamic linker reads it: program headers, the
//! interpreter (`PT_INTERP`) and the dynamic segment (`PT_DYNAMIC`: needed
//! libraries, search paths, the dynamic symbol table found through
//! `DT_SYMTAB`, `DT_STRTAB` and its hash table). Never the section headers,
//! which a loader ignores: a binary whose section table is cut off or
//! corrupt runs, and must be traced like any other.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use object::elf::{
    FileHeader64, Sym64, DT_GNU_HASH, DT_HASH, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_STRSZ, DT_STRTAB, DT_SYMTAB, PT_DYNAMIC, PT_INTERP,
    PT_LOAD, SHN_UNDEF,
};
use object::read::elf::{Dyn, FileHeader, GnuHashTable, HashTable, ProgramHeader, Sym};
use object::Endianness;

/// The loadable view of one ELF file.
pub struct LinkerView<'a> {
    data: &'a [u8],
    endian: Endianness,
    /// PT_LOAD segments: (vaddr, file offset, file size).
    loads: Vec<(u64, u64, u64)>,
    /// (tag, value) of every dynamic entry.
    dynamic: Vec<(u32, u64)>,
    interp: Option<&'a [u8]>,
}

/// What a file needs loaded with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dependencies {
    pub needed: Vec<String>,
    pub runpath: Vec<String>,
}

impl<'a> LinkerView<'a> {
    /// None when `data` is no 64-bit ELF file or its program headers are unreadable.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let header = FileHeader64::<Endianness>::parse(data).ok()?;
        let endian = header.endian().ok()?;
        let phdrs = header.program_headers(endian, data).ok()?;
        let mut view = Self { data, endian, loads: Vec::new(), dynamic: Vec::new(), interp: None };
        for ph in phdrs {
            match ph.p_type(endian) {
                PT_LOAD => view.loads.push((ph.p_vaddr(endian), ph.p_offset(endian), ph.p_filesz(endian))),
                PT_INTERP => view.interp = ph.data(endian, data).ok(),
                PT_DYNAMIC => {
                    if let Ok(Some(entries)) = ph.dynamic(endian, data) {
                        view.dynamic = entries.iter().map(|d| (d.d_tag(endian) as u32, d.d_val(endian))).collect();
                    }
                }
                _ => {}
            }
        }
        Some(view)
    }

    /// Whether the file has a dynamic segment (a static executable has none).
    pub fn is_dynamic(&self) -> bool {
        !self.dynamic.is_empty()
    }

    /// PT_INTERP: the dynamic linker an executable asks for.
    pub fn interpreter(&self) -> Option<PathBuf> {
        let bytes = self.interp?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(PathBuf::from(OsStr::from_bytes(&bytes[..end])))
    }

    /// DT_NEEDED, and DT_RUNPATH or DT_RPATH split at colons.
    pub fn dependencies(&self) -> Dependencies {
        let mut deps = Dependencies::default();
        for &(tag, value) in &self.dynamic {
            let Some(text) = self.string(value) else { continue };
            let text = String::from_utf8_lossy(text).into_owned();
            match tag {
                DT_NEEDED => deps.needed.push(text),
                DT_RUNPATH | DT_RPATH => deps.runpath.extend(text.split(':').map(str::to_owned)),
                _ => {}
            }
        }
        deps
    }

    /// The file offset of the dynamic symbol `name` when the file defines it.
    pub fn defined_symbol(&self, name: &str) -> Option<u64> {
        let symtab = self.file_offset(self.tag(DT_SYMTAB)?)? as usize;
        let count = self.symbol_count()?;
        let size = std::mem::size_of::<Sym64<Endianness>>();
        for i in 0..count {
            let at = symtab.checked_add(i.checked_mul(size)?)?;
            let Some(bytes) = self.data.get(at..at + size) else { break };
            let Ok((sym, _)) = object::from_bytes::<Sym64<Endianness>>(bytes) else { break };
            if sym.st_shndx(self.endian) == SHN_UNDEF || sym.st_value(self.endian) == 0 {
                continue;
            }
            if self.string(u64::from(sym.st_name(self.endian))) == Some(name.as_bytes()) {
                return self.file_offset(sym.st_value(self.endian));
            }
        }
        None
    }

    fn tag(&self, tag: u32) -> Option<u64> {
        self.dynamic.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }

    /// The file offset of a virtual address inside a loaded segment's file bytes.
    fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.loads.iter().find(|(start, _, size)| vaddr >= *start && vaddr - start < *size).map(|(start, off, _)| vaddr - start + off)
    }

    /// A NUL-terminated string at `offset` in the dynamic string table.
    fn string(&self, offset: u64) -> Option<&'a [u8]> {
        let table = self.file_offset(self.tag(DT_STRTAB)?)? as usize;
        let size = self.tag(DT_STRSZ).unwrap_or(u64::MAX) as usize;
        if offset as usize >= size {
            return None;
        }
        let start = table.checked_add(offset as usize)?;
        let rest = self.data.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    /// Symbols in DT_SYMTAB: its length is only in the hash tables.
    fn symbol_count(&self) -> Option<usize> {
        if let Some(at) = self.tag(DT_HASH).and_then(|v| self.file_offset(v)) {
            let table = HashTable::<FileHeader64<Endianness>>::parse(self.endian, self.data.get(at as usize..)?).ok()?;
            return Some(table.symbol_table_length() as usize);
        }
        let at = self.file_offset(self.tag(DT_GNU_HASH)?)? as usize;
        let table = GnuHashTable::<FileHeader64<Endianness>>::parse(self.endian, self.data.get(at..)?).ok()?;
        table.symbol_table_length(self.endian).map(|n| n as usize)
    }
}

#[cfg(test)]
#[path = "linker_view_tests.rs"]
mod tests;
