use std::path::Path;

use super::LinkerView;

fn libc() -> Vec<u8> {
    let path = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"].into_iter().find(|p| Path::new(p).exists());
    std::fs::read(path.expect("the test host has glibc")).unwrap()
}

/// The file offset of `name` by the section headers (object's reader), to compare with.
fn by_sections(data: &[u8], name: &str) -> u64 {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = object::File::parse(data).unwrap();
    let sym = file.dynamic_symbols().find(|s| s.name() == Ok(name) && s.is_definition()).unwrap();
    let sec = file.section_by_index(sym.section_index().unwrap()).unwrap();
    sym.address() - sec.address() + sec.file_range().unwrap().0
}

/// Zeroes the section header fields of the ELF header, as a stripped-down or damaged binary has them.
fn without_section_headers(mut data: Vec<u8>) -> Vec<u8> {
    data[0x28..0x30].fill(0); // e_shoff
    data[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    data
}

#[test]
fn dynamic_symbols_are_found_through_the_dynamic_segment_as_the_loader_finds_them() {
    let data = libc();
    let view = LinkerView::parse(&data).unwrap();
    assert!(view.is_dynamic());
    for name in ["malloc", "free", "calloc", "posix_memalign"] {
        assert_eq!(view.defined_symbol(name), Some(by_sections(&data, name)), "{name}");
    }
    assert_eq!(view.defined_symbol("no_such_function_here"), None);
    let cut = without_section_headers(data.clone());
    assert!(object::File::parse(cut.as_slice()).map(|f| object::Object::section_by_name(&f, ".dynsym").is_none()).unwrap_or(true));
    let view = LinkerView::parse(&cut).unwrap();
    assert_eq!(view.defined_symbol("malloc"), Some(by_sections(&data, "malloc")), "found without any section header");
}

#[test]
fn a_library_with_only_a_gnu_hash_table_has_its_symbols_counted() {
    // Debian builds most libraries with --hash-style=gnu (no DT_HASH); glibc keeps both.
    let data = std::fs::read("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2").expect("cargo xtask setup installs libjemalloc2");
    let view = LinkerView::parse(&data).unwrap();
    for name in ["malloc", "free", "mallocx"] {
        assert_eq!(view.defined_symbol(name), Some(by_sections(&data, name)), "{name}");
    }
}

#[test]
fn an_executable_names_its_interpreter_and_libraries() {
    let data = without_section_headers(std::fs::read("/bin/true").unwrap());
    let view = LinkerView::parse(&data).unwrap();
    let interp = view.interpreter().expect("a dynamic executable has PT_INTERP");
    assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
    let deps = view.dependencies();
    assert!(deps.needed.iter().any(|n| n.starts_with("libc.so")), "{deps:?}");
    assert_eq!(view.defined_symbol("malloc"), None, "/bin/true only imports malloc");
}

#[test]
fn what_is_not_elf_has_no_view() {
    assert!(LinkerView::parse(b"#!/bin/sh\nexit 0\n").is_none());
    assert!(LinkerView::parse(&[]).is_none());
}
