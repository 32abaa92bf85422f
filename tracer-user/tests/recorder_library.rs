//! The in-process recorder as leaktrace embeds it: a library the dynamic
//! linker can load into any glibc program without changing it — every
//! symbol it needs is glibc's, it exports only the malloc family and its
//! own entry points, and it has no thread-local storage (a TLS
//! segment would make every thread's TLS vector, an allocation of the
//! program's, larger).

use object::{Object, ObjectSymbol};

const GLIBC: [&str; 2] = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"];

#[test]
fn the_recorder_needs_only_glibc_and_has_no_tls() {
    let lib = object::File::parse(leaktrace::inprocess::RECORDER).expect("the embedded recorder is an ELF object");
    let data = std::fs::read(GLIBC[0]).unwrap();
    let ld = std::fs::read(GLIBC[1]).unwrap();
    let defined: std::collections::HashSet<String> = [&data, &ld]
        .iter()
        .flat_map(|d| {
            object::File::parse(d.as_slice())
                .unwrap()
                .dynamic_symbols()
                .filter(|s| !s.is_undefined())
                .filter_map(|s| s.name().ok().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    let undefined: Vec<String> = lib
        .dynamic_symbols()
        .filter(|s| s.is_undefined() && !s.is_weak())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .collect();
    assert!(!undefined.is_empty(), "the recorder calls into glibc");
    let missing: Vec<&String> = undefined.iter().filter(|n| !defined.contains(*n)).collect();
    assert!(missing.is_empty(), "symbols glibc does not define: {missing:?}");
    if let object::File::Elf64(elf) = &lib {
        use object::read::elf::ProgramHeader;
        let endian = elf.endian();
        let tls = elf.elf_program_headers().iter().any(|ph| ph.p_type(endian) == object::elf::PT_TLS);
        assert!(!tls, "the recorder has a TLS segment");
    }
    // Exactly these: anything else preloaded could stand in for the program's own.
    let mut exports: Vec<String> = lib.exports().unwrap().iter().map(|e| String::from_utf8_lossy(e.name()).into_owned()).collect();
    exports.sort();
    let mut want = [
        "aligned_alloc",
        "calloc",
        "free",
        "malloc",
        "memalign",
        "posix_memalign",
        "pvalloc",
        "realloc",
        "reallocarray",
        "valloc",
        "leaktrace_recorder_attach",
        "leaktrace_recorder_detach",
        "leaktrace_recorder_redirect",
    ];
    want.sort();
    assert_eq!(exports, want);
}
