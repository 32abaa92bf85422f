//! The system's shared libraries are not call sites without `--focus`: a
//! distribution's libuv, libcurl or libssl opens descriptors and allocates
//! for whoever called it, and naming the library's internal function (in a
//! stripped build, `libuv.so.1+0xfe6f`) merges every caller into one site.
//! The site is the program's frame that called into them.
//!
//! A system library is a shared object under the distribution's library
//! directories (`/lib`, `/usr/lib` and their 32/64-bit and multiarch
//! variants, with their subdirectories). `/usr/local/lib` and `/opt` are
//! not: what is installed there is built locally, often the very code under
//! investigation. The process's executable is never a system library, even
//! when it lives under one of those directories (`/usr/lib/git-core/git`).
//! Nor is a return address outside every mapping a site while a later frame
//! could be: it is a corrupt frame where a walk went astray (JIT code nothing
//! named is the JavaScript rule's).

use crate::symbolize::Frame;

use super::wrappers::is_wrapper;

/// The distribution's library directories, with the trailing slash that
/// makes the comparison whole path components.
const SYSTEM_LIBRARY_DIRS: &[&str] =
    &["/lib/", "/lib32/", "/lib64/", "/libx32/", "/usr/lib/", "/usr/lib32/", "/usr/lib64/", "/usr/libx32/"];

/// The module of a frame whose address lies outside every mapping.
const UNMAPPED: &str = "[unknown]";

/// True when `f` is in a shared object of the system's library directories
/// (never the process's executable).
pub fn is_system_library(f: &Frame) -> bool {
    !f.executable && SYSTEM_LIBRARY_DIRS.iter().any(|d| f.module.starts_with(d))
}

/// Frames the site passes over without `--focus`, besides the runtime and
/// the wrappers: the system's libraries and unmapped addresses.
pub(super) fn is_passed_over(f: &Frame) -> bool {
    is_system_library(f) || &*f.module == UNMAPPED
}

/// Whether `f` could be a leak's call site without `--focus`: it is neither
/// the C and C++ runtime (libc, the dynamic linker, libstdc++, libgcc_s),
/// nor a well-known allocation or descriptor wrapper (`strdup`, `socket`,
/// `operator new`, `g_malloc`...), nor in a system shared library (see
/// [`is_system_library`]), nor at an address outside every mapping. It knows nothing of a run's allocator module or
/// `--alloc-wrapper` names (the site choice adds those), nor of the
/// JavaScript runtime, which is skipped only below a JavaScript frame.
pub fn is_user_frame(f: &Frame) -> bool {
    !is_wrapper(f, None, &[]) && !is_passed_over(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(module: &str, executable: bool) -> Frame {
        Frame { module: module.into(), function: Some("work".into()), executable, ..Frame::default() }
    }

    #[test]
    fn shared_objects_of_the_library_directories_are_the_system_s() {
        for lib in [
            "/usr/lib/x86_64-linux-gnu/libuv.so.1.0.0",
            "/lib/x86_64-linux-gnu/libcurl.so.4",
            "/usr/lib64/libssl.so.3",
            "/lib64/libz.so.1",
            "/usr/lib/python3/dist-packages/_cffi_backend.so",
        ] {
            assert!(is_system_library(&f(lib, false)), "{lib}");
            assert!(!is_user_frame(&f(lib, false)), "{lib}");
        }
        for user in [
            "/usr/local/lib/libmine.so",
            "/opt/app/lib/libapp.so",
            "/usr/bin/curl",
            "/usr/library/x.so",
            "[jit]",
            "[anonymous]",
            "/home/u/a.out",
        ] {
            assert!(!is_system_library(&f(user, false)), "{user}");
            assert!(is_user_frame(&f(user, false)), "{user}");
        }
    }

    #[test]
    fn the_executable_is_never_a_system_library_wherever_it_lives() {
        assert!(!is_system_library(&f("/usr/lib/git-core/git", true)));
        assert!(is_user_frame(&f("/usr/lib/git-core/git", true)));
        assert!(is_system_library(&f("/usr/lib/git-core/git", false)), "a module not known as the executable");
    }

    #[test]
    fn the_runtime_and_wrappers_are_not_user_frames() {
        assert!(!is_user_frame(&f("/usr/local/lib/libc.so.6", false)), "libc wherever it is");
        assert!(!is_user_frame(&f("/memfd:leaktrace-recorder (deleted)", false)), "leaktrace's own malloc");
        assert!(!is_user_frame(&f(UNMAPPED, false)), "a corrupt frame");
        let mut strdup = f("/usr/bin/app", true);
        strdup.function = Some("strdup".into());
        assert!(!is_user_frame(&strdup));
    }
}
