//! Where a function an ELF file defines starts in the file: through the
//! dynamic segment, as the dynamic linker binds it, or through the section
//! headers' symbol table (a static executable's only one).

use object::{Object, ObjectSection, ObjectSymbol};

use super::linker_view::LinkerView;

/// The file offset of the function `name` the object defines: through the
/// dynamic segment as the loader binds it, or in a static executable's
/// symbol table.
pub(crate) fn defined_symbol(data: &[u8], name: &str) -> Option<u64> {
    defined_in(LinkerView::parse(data).as_ref(), data, name)
}

/// [`defined_symbol`] with the file's loader view already parsed.
pub(crate) fn defined_in(view: Option<&LinkerView>, data: &[u8], name: &str) -> Option<u64> {
    match view {
        Some(view) if view.is_dynamic() => view.defined_symbol(name).or_else(|| static_symbol(data, name)),
        _ => static_symbol(data, name),
    }
}

/// A symbol of the section headers' symbol table (a static executable's only one).
pub(crate) fn static_symbol(data: &[u8], name: &str) -> Option<u64> {
    let file = object::File::parse(data).ok()?;
    let sym = file.symbols().find(|s| s.name() == Ok(name) && s.is_definition())?;
    section_offset(data, sym.address())
}

/// The file offset of virtual address `addr` in the object's sections.
pub(crate) fn section_offset(data: &[u8], addr: u64) -> Option<u64> {
    let file = object::File::parse(data).ok()?;
    file.sections().find_map(|sec| {
        let (start, size) = (sec.address(), sec.size());
        let (off, _) = sec.file_range()?;
        (addr >= start && addr < start + size).then(|| addr - start + off)
    })
}
