//! Frames that are never a leak's call site without `--focus`: the C
//! runtime, the dynamic linker, the allocator and the C++ runtime, and the
//! well-known allocation wrappers wherever they live (a static binary holds
//! libc's own `strdup` and `pipe`), plus the user's `--alloc-wrapper` names.

use tracer_common::syscalls::{ExitProgram, SYSCALLS};

use crate::symbolize::{plain_name, Frame};

/// Modules whose frames are the runtime's, by file name prefix; and
/// leaktrace's in-process recorder, which stands in for `malloc`.
const RUNTIME_MODULES: &[&str] = &["libc.so", "libc-", "ld-linux", "libstdc++.so", "libgcc_s.so", "memfd:leaktrace-recorder"];

/// Qualified-name prefixes of standard libraries (C++ and Rust): their
/// frames allocate on behalf of the code that called them.
const STD_PREFIXES: &[&str] = &["std::", "__gnu_cxx::", "__cxxabiv1::", "alloc::", "core::", "hashbrown::", "__rust_", "__rdl_", "__rg_"];

/// C and C++ runtime allocation and descriptor wrappers, by the name callers
/// know (see [`plain_name`]).
const RUNTIME_FUNCTIONS: &[&str] = &[
    // C++
    "operator new",
    "operator new[]",
    // C heap and what returns heap memory
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "pvalloc",
    "strdup",
    "strndup",
    "wcsdup",
    "asprintf",
    "vasprintf",
    "getline",
    "getdelim",
    "realpath",
    "open_memstream",
    "fopen",
    "fopen64",
    "fdopen",
    "freopen",
    "freopen64",
    "tmpfile",
    "tmpfile64",
    "popen",
    "opendir",
    "fdopendir",
    "scandir",
    // GLib
    "g_malloc",
    "g_malloc0",
    "g_malloc_n",
    "g_malloc0_n",
    "g_realloc",
    "g_realloc_n",
    "g_try_malloc",
    "g_try_malloc0",
    "g_try_malloc_n",
    "g_try_malloc0_n",
    "g_try_realloc",
    "g_try_realloc_n",
    "g_strdup",
    "g_strndup",
    "g_memdup",
    "g_memdup2",
    "g_slice_alloc",
    "g_slice_alloc0",
    "g_slice_copy",
    // redis (zmalloc.c)
    "zmalloc",
    "zcalloc",
    "zrealloc",
    "zstrdup",
    "ztrymalloc",
    "ztrycalloc",
    "ztryrealloc",
    "zmalloc_usable",
    "zcalloc_usable",
    "zrealloc_usable",
    "ztrymalloc_usable",
    "ztrycalloc_usable",
    "ztryrealloc_usable",
    "zmalloc_no_tcache",
    "zcalloc_num",
    "ztrymalloc_usable_internal",
    "ztrycalloc_usable_internal",
    "ztryrealloc_usable_internal",
    // QuickJS
    "js_malloc",
    "js_mallocz",
    "js_realloc",
    "js_def_malloc",
    "js_def_realloc",
    "js_malloc_rt",
    "js_mallocz_rt",
    "js_realloc_rt",
    "js_strdup",
    "js_strndup",
    // gnulib, git, binutils, bash
    "xmalloc",
    "xcalloc",
    "xrealloc",
    "xzalloc",
    "xstrdup",
    "xstrndup",
    "xmemdup",
];

/// glibc's other names for the descriptor system calls' wrappers, and its
/// generic `syscall`.
const LIBC_DESCRIPTOR_NAMES: &[&str] =
    &["fcntl64", "open64", "openat64", "open_nocancel", "open64_nocancel", "openat64_nocancel", "creat64", "syscall"];

/// A system call wrapper that makes descriptors: every call leaktrace follows
/// (its table in `tracer_common::syscalls`) but the closes, and glibc's aliases.
fn is_descriptor_wrapper(plain: &str) -> bool {
    SYSCALLS.iter().any(|s| s.name == plain && s.effect.program() != ExitProgram::Close) || LIBC_DESCRIPTOR_NAMES.contains(&plain)
}

/// Internal name prefixes of glibc (in a static binary they are in the executable).
const RUNTIME_PREFIXES: &[&str] = &["_IO_", "_int_", "_dl_", "__fopen", "__alloc_dir", "tcache_", "sysmalloc", "__nss_"];

/// The qualified name of a demangled function: no parameters, no return
/// type (`void std::vector<int>::push_back(int const&)` to
/// `std::vector<int>::push_back`).
pub fn qualified_name(name: &str) -> &str {
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in name.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            '(' if depth == 0 && i > 0 && !name[..i].ends_with("operator") && !name[start..i].trim_start().is_empty() => {
                return &name[start..i];
            }
            ' ' if depth == 0 && !name[start..i].starts_with("operator") => start = i + 1,
            _ => {}
        }
    }
    &name[start..]
}

/// A standard library path; for `<Type as Trait>::f`, either side.
fn is_std(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('<') else { return STD_PREFIXES.iter().any(|p| name.starts_with(p)) };
    let mut depth = 0i32;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => return inner[..i].split(" as ").any(is_std),
            '>' => depth -= 1,
            _ => {}
        }
    }
    false
}

/// The user's `--alloc-wrapper` names: a function's full name, its
/// qualified name, or its plain runtime name.
fn is_user_wrapper(name: &str, qualified: &str, wrappers: &[String]) -> bool {
    wrappers.iter().any(|w| w == name || w == qualified || w == plain_name(qualified))
}

/// True when `frame` is runtime or wrapper code, never a call site by default.
pub fn is_wrapper(frame: &Frame, allocator: Option<&str>, wrappers: &[String]) -> bool {
    let base = frame.module.rsplit('/').next().unwrap_or("");
    if RUNTIME_MODULES.iter().any(|m| base.starts_with(m)) || allocator == Some(&*frame.module) {
        return true;
    }
    let Some(name) = frame.function.as_deref() else { return false };
    let qualified = qualified_name(name);
    let plain = plain_name(qualified);
    is_std(qualified)
        || RUNTIME_FUNCTIONS.contains(&plain)
        || is_descriptor_wrapper(plain)
        || RUNTIME_PREFIXES.iter().any(|p| qualified.starts_with(p))
        || is_user_wrapper(name, qualified, wrappers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, module: &str) -> Frame {
        Frame { address: 1, module: module.into(), function: Some(function.into()), ..Frame::default() }
    }

    #[test]
    fn qualified_names_drop_parameters_and_return_types() {
        assert_eq!(qualified_name("operator new(unsigned long)"), "operator new");
        assert_eq!(qualified_name("operator new[](unsigned long, std::nothrow_t const&)"), "operator new[]");
        assert_eq!(
            qualified_name("void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(int*)"),
            "std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>"
        );
        assert_eq!(
            qualified_name("<alloc::vec::Vec<T,A> as core::clone::Clone>::clone"),
            "<alloc::vec::Vec<T,A> as core::clone::Clone>::clone"
        );
        assert_eq!(qualified_name("leaky::make_buffer"), "leaky::make_buffer");
        assert_eq!(qualified_name("main"), "main");
    }

    #[test]
    fn well_known_wrappers_are_skipped_wherever_they_live() {
        let exe = "/usr/bin/app";
        for name in [
            "operator new(unsigned long)",
            "operator new[](unsigned long)",
            "operator new(unsigned long, std::align_val_t)",
            "operator new(unsigned long, std::nothrow_t const&)",
            "__rust_alloc",
            "alloc::alloc::alloc",
            "alloc::raw_vec::RawVec<T,A>::try_allocate_in",
            "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
            "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
            "g_malloc0",
            "strdup",
            "__strdup",
            "asprintf",
            "pipe",
            "__GI___socket",
            "zmalloc",
            "_IO_new_fopen",
        ] {
            assert!(is_wrapper(&f(name, exe), None, &[]), "{name}");
        }
        for name in
            ["main", "make_leak(int)", "leaky::make_buffer", "js_socket_connect", "operator_newline", "<app::Pool as app::Alloc>::get"]
        {
            assert!(!is_wrapper(&f(name, exe), None, &[]), "{name}");
        }
    }

    #[test]
    fn every_descriptor_call_leaktrace_follows_has_its_wrapper_skipped_but_close() {
        let exe = "/usr/bin/app";
        for name in [
            "socket",
            "socketpair",
            "accept4",
            "timerfd_create",
            "eventfd",
            "epoll_create1",
            "pipe2",
            "dup2",
            "fcntl",
            "fcntl64",
            "open64",
            "openat",
            "__open_nocancel",
            "creat",
            "memfd_create",
            "signalfd",
            "inotify_init1",
            "pidfd_open",
            "recvmsg",
            "io_uring_setup",
            "syscall",
        ] {
            assert!(is_wrapper(&f(name, exe), None, &[]), "{name}");
        }
        for name in ["close", "close_range", "read"] {
            assert!(!is_wrapper(&f(name, exe), None, &[]), "{name}");
        }
    }

    #[test]
    fn runtime_modules_the_allocator_and_user_wrappers() {
        assert!(is_wrapper(&f("anything", "/lib/x86_64-linux-gnu/libc.so.6"), None, &[]));
        assert!(is_wrapper(&f("std::__cxx11::basic_string<char>::_M_create", "/usr/lib/libstdc++.so.6"), None, &[]));
        assert!(is_wrapper(&f("je_malloc", "/usr/lib/libjemalloc.so.2"), Some("/usr/lib/libjemalloc.so.2"), &[]));
        let mine = vec!["my_alloc".to_owned(), "pool::get".to_owned()];
        assert!(is_wrapper(&f("my_alloc", "/bin/app"), None, &mine));
        assert!(is_wrapper(&f("pool::get(unsigned long)", "/bin/app"), None, &mine));
        assert!(!is_wrapper(&f("my_alloc_user", "/bin/app"), None, &mine));
    }
}
