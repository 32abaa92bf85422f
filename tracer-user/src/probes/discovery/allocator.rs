//! Which object serves `malloc` in the target, and where its functions are.
//!
//! The dynamic linker binds `malloc` to the first object in load order that
//! defines it: the executable, then LD_PRELOAD, then DT_NEEDED breadth-first.
//! A jemalloc/tcmalloc/mimalloc linked or preloaded there replaces libc's, and
//! probing libc alone would see nothing. `--allocator PATH` overrides.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};
use tracer_common::AllocFn;

use super::linker_view::LinkerView;
use super::load_order::{self, preload_list, split_paths, Origin, Search};
use super::mapped_objects::{self, MappedObject};
use super::prologue::entry_probe_offset;
use super::symbols::{defined_in, section_offset, static_symbol};
use crate::probes::errors::ProbeError;
use crate::symbolize::MappedFile;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorFunction {
    pub func: AllocFn,
    /// Offset of the function in the file, as the uprobe API takes it (return probes go here).
    pub file_offset: u64,
    /// Where the entry probe goes: past flag-only instructions the kernel would
    /// single-step, for functions without a return probe (`free`).
    pub entry_offset: u64,
}

/// What decides a process image's allocator: its executable and the
/// loader's variables. Images with the same key have the same allocator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageKey {
    pub exe: PathBuf,
    /// The executable file itself (device, inode): a name can be reused.
    pub exe_file: (u64, u64),
    pub preload: Option<OsString>,
    pub library_path: Option<OsString>,
}

impl ImageKey {
    /// From /proc: the executable (a script's interpreter) and the environment
    /// the image started with.
    pub fn of(pid: u32) -> Result<Self, ProbeError> {
        let exe = mapped_objects::executable(pid)?;
        let meta = std::fs::metadata(&exe.open).map_err(|source| ProbeError::Unreadable { path: exe.open.clone(), source })?;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let var = |name: &[u8]| environ.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(name)).map(|v| OsStr::from_bytes(v).to_owned());
        Ok(Self {
            exe: exe.shown,
            exe_file: (meta.dev(), meta.ino()),
            preload: var(b"LD_PRELOAD="),
            library_path: var(b"LD_LIBRARY_PATH="),
        })
    }
}

#[derive(Debug, Clone)]
pub struct AllocatorChoice {
    /// Its name, as the process shows it.
    pub path: PathBuf,
    /// The file probed: the one the process mapped (through /proc) when it has.
    pub file: PathBuf,
    /// That file's device and inode: probes on it serve every image that maps it.
    pub identity: (u64, u64),
    /// How it was chosen, for the user.
    pub reason: String,
    /// The executable itself defines it (a static binary): its module is the
    /// program's, so frames there are no reason to look past.
    pub in_executable: bool,
    /// Functions to probe; aliases at one address appear once.
    pub functions: Vec<AllocatorFunction>,
    /// Functions the object does not export.
    pub missing: Vec<AllocFn>,
    /// glibc without its debug symbols: its release of a thread's cache at
    /// the thread's exit cannot be probed, and what it frees counts as unknown frees.
    pub thread_cache_unprobed: bool,
}

impl AllocatorChoice {
    /// `--allocator PATH`.
    pub fn from_path(path: &Path) -> Result<Self, ProbeError> {
        let object = MappedObject { shown: path.to_path_buf(), open: path.to_path_buf() };
        Self::inspect(&object, "given with --allocator".into())
    }

    /// For a command not started yet: resolve its libraries on the file system.
    #[cfg(test)]
    pub fn for_command(exe: &Path, ld_preload: Option<&OsStr>, ld_library_path: Option<&OsStr>) -> Result<Self, ProbeError> {
        let search = Search { library_path: split_paths(ld_library_path), ..Search::default() };
        Self::resolve(MappedObject { shown: exe.to_path_buf(), open: exe.to_path_buf() }, preload_list(ld_preload), &search)
    }

    /// For a process, running or stopped at exec: resolve against what it
    /// has mapped (at exec, nothing yet but the dynamic linker) and its file system.
    pub fn for_pid(pid: u32) -> Result<Self, ProbeError> {
        Self::for_image(pid, &ImageKey::of(pid)?)
    }

    /// [`Self::for_pid`] once its [`ImageKey`] is read.
    pub fn for_image(pid: u32, key: &ImageKey) -> Result<Self, ProbeError> {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let search = Search {
            library_path: split_paths(key.library_path.as_deref()),
            mapped: mapped_objects::mapped_objects(pid)?,
            root: Some(root),
            ..Search::default()
        };
        // A relative LD_PRELOAD path is relative to the process's directory.
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let preload = preload_list(key.preload.as_deref())
            .into_iter()
            .map(|p| if p.is_relative() && p.components().count() > 1 { cwd.join(p) } else { p })
            .collect();
        let exe = MappedObject { shown: key.exe.clone(), open: PathBuf::from(format!("/proc/{pid}/exe")) };
        Self::resolve(exe, preload, &search)
    }

    fn resolve(exe: MappedObject, preload: Vec<PathBuf>, search: &Search) -> Result<Self, ProbeError> {
        let target = exe.shown.display().to_string();
        let mut chosen = None;
        load_order::walk(exe, preload, search, |object, origin, data| {
            // leaktrace's own recorder forwards to the next object that defines malloc.
            if !exports_malloc(data) || is_recorder(data) {
                return false;
            }
            let reason = match origin {
                Origin::Executable => EXECUTABLE,
                Origin::Preload => "preloaded (LD_PRELOAD) and defines malloc",
                Origin::Needed => "first object in load order that defines malloc",
            };
            chosen = Some((object.clone(), reason.to_owned()));
            true
        });
        let (object, reason) = chosen.ok_or(ProbeError::NoAllocator { target })?;
        let in_executable = reason == EXECUTABLE;
        Ok(Self { in_executable, ..Self::inspect(&object, reason)? })
    }
}

const EXECUTABLE: &str = "the executable defines malloc";

/// Every object a command will load at start, in the dynamic linker's order:
/// the executable, its interpreter, LD_PRELOAD, then DT_NEEDED breadth-first.
pub fn load_order(exe: &Path, ld_preload: Option<&OsStr>, ld_library_path: Option<&OsStr>) -> Vec<PathBuf> {
    let search = Search { library_path: split_paths(ld_library_path), ..Search::default() };
    let mut all = Vec::new();
    let exe = MappedObject { shown: exe.to_path_buf(), open: exe.to_path_buf() };
    load_order::walk(exe, preload_list(ld_preload), &search, |object, _, data| {
        // A script (#!) is not loaded: its interpreter is, by the kernel's exec.
        let Some(view) = LinkerView::parse(data) else { return false };
        all.push(object.open.clone());
        all.extend(view.interpreter());
        false
    });
    all.dedup();
    all
}

impl AllocatorChoice {
    fn inspect(object: &MappedObject, reason: String) -> Result<Self, ProbeError> {
        let unreadable = |source| ProbeError::Unreadable { path: object.shown.clone(), source };
        let data = MappedFile::open(&object.open).map_err(unreadable)?;
        let meta = std::fs::metadata(&object.open).map_err(unreadable)?;
        let view = LinkerView::parse(data.bytes()).ok_or_else(|| ProbeError::NotElf(object.shown.clone()))?;
        let mut functions: Vec<AllocatorFunction> = Vec::new();
        let mut missing = Vec::new();
        for func in AllocFn::ALL {
            match defined_in(Some(&view), data.bytes(), func.symbol()) {
                // An alias (aligned_alloc = memalign in glibc) is probed once.
                Some(off) if functions.iter().any(|f| f.file_offset == off) => {}
                Some(off) => {
                    let entry_offset = match func {
                        AllocFn::Free => {
                            off + data.bytes().get(off as usize..).map_or(0, |code| entry_probe_offset(&code[..code.len().min(16)]))
                        }
                        _ => off,
                    };
                    functions.push(AllocatorFunction { func, file_offset: off, entry_offset })
                }
                None => missing.push(func),
            }
        }
        if !functions.iter().any(|f| f.func == AllocFn::Malloc) || !functions.iter().any(|f| f.func == AllocFn::Free) {
            return Err(ProbeError::NotAnAllocator(object.shown.clone()));
        }
        let glibc = view.defined_symbol(GLIBC_MARK).is_some();
        let thread_cache = glibc.then(|| debug_symbol(&object.open, &data, AllocFn::ThreadCacheShutdown.symbol())).flatten();
        if let Some(off) = thread_cache {
            functions.push(AllocatorFunction { func: AllocFn::ThreadCacheShutdown, file_offset: off, entry_offset: off });
        }
        let identity = (meta.dev(), meta.ino());
        let (path, file, thread_cache_unprobed) = (object.shown.clone(), object.open.clone(), glibc && thread_cache.is_none());
        Ok(Self { path, file, identity, reason, in_executable: false, functions, missing, thread_cache_unprobed })
    }
}

/// A symbol only glibc's libc defines.
const GLIBC_MARK: &str = "gnu_get_libc_version";

/// The file offset in `data` (the object at `path`) of a local function
/// named in its separate debug file's symbol table.
fn debug_symbol(path: &Path, data: &MappedFile, name: &str) -> Option<u64> {
    let debug = crate::symbolize::debug_file(path, data)?;
    let file = object::File::parse(debug.bytes()).ok()?;
    let addr = file.symbols().find(|s| s.name() == Ok(name) && s.is_definition())?.address();
    section_offset(data.bytes(), addr)
}

/// Whether the object is leaktrace's in-process recorder.
pub fn is_recorder(data: &[u8]) -> bool {
    LinkerView::parse(data).is_some_and(|v| v.is_dynamic() && v.defined_symbol("leaktrace_recorder_attach").is_some())
}

/// Whether the object defines `malloc` for the rest of the process: in its
/// dynamic symbol table, or, in a static executable, its symbol table.
fn exports_malloc(data: &[u8]) -> bool {
    match LinkerView::parse(data) {
        Some(view) if view.is_dynamic() => view.defined_symbol("malloc").is_some(),
        Some(_) => static_symbol(data, "malloc").is_some(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_resolves_to_libc() {
        let choice = AllocatorChoice::for_command(Path::new("/bin/true"), None, None).unwrap();
        assert!(choice.path.file_name().unwrap().to_string_lossy().starts_with("libc.so"), "{:?}", choice.path);
        assert!(!choice.path.starts_with("/lib32"), "a 32-bit libc is not a candidate for a 64-bit program");
        let funcs: Vec<AllocFn> = choice.functions.iter().map(|f| f.func).collect();
        assert!(funcs.contains(&AllocFn::Malloc) && funcs.contains(&AllocFn::Free) && funcs.contains(&AllocFn::Calloc));
        // glibc's aligned_alloc is memalign: probed once.
        let mut offsets: Vec<u64> = choice.functions.iter().map(|f| f.file_offset).collect();
        offsets.sort();
        offsets.dedup();
        assert_eq!(offsets.len(), choice.functions.len());
    }

    #[test]
    fn preload_takes_precedence_over_libc() {
        let jemalloc = Path::new("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2");
        assert!(jemalloc.exists(), "libjemalloc2 is installed by cargo xtask setup");
        let choice = AllocatorChoice::for_command(Path::new("/bin/true"), Some(jemalloc.as_os_str()), None).unwrap();
        assert_eq!(choice.path, jemalloc, "{}", choice.reason);
        assert!(choice.reason.contains("LD_PRELOAD"), "{}", choice.reason);
        assert!(!choice.thread_cache_unprobed, "not glibc: nothing of glibc's thread cache to probe");
        let libc = AllocatorChoice::for_command(Path::new("/bin/true"), None, None).unwrap();
        assert!(libc.functions.iter().any(|f| f.func == AllocFn::ThreadCacheShutdown), "glibc's debug file names its thread-cache release");
    }

    #[test]
    fn a_file_without_malloc_is_refused() {
        let err = AllocatorChoice::from_path(Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().contains("malloc and free"), "{err}");
    }

    #[test]
    fn a_script_loads_nothing_of_its_own() {
        let dir = std::env::temp_dir().join(format!("lt-script-{}", std::process::id()));
        std::fs::write(&dir, "#!/bin/sh\nexit 0\n").unwrap();
        let objects = load_order(&dir, None, None);
        std::fs::remove_file(&dir).unwrap();
        assert!(objects.is_empty(), "{objects:?}");
        assert!(load_order(Path::new("/bin/true"), None, None).iter().any(|p| p.ends_with("true")));
    }
}
