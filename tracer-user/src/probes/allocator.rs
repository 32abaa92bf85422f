//! Which object serves `malloc` in the target, and where its functions are.
//!
//! The dynamic linker binds `malloc` to the first object in load order that
//! defines it: the executable, then LD_PRELOAD, then DT_NEEDED breadth-first.
//! A jemalloc/tcmalloc/mimalloc linked or preloaded there replaces libc's, and
//! probing libc alone would see nothing. `--allocator PATH` overrides.

use crate::symbolize::MappedFile;
use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader64, DT_NEEDED, DT_RPATH, DT_RUNPATH};
use object::read::elf::{Dyn, FileHeader};
use object::{Object, ObjectSection, ObjectSymbol};
use tracer_common::AllocFn;

use super::prologue::entry_probe_offset;
use super::ProbeError;

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
    pub preload: Option<OsString>,
    pub library_path: Option<OsString>,
}

impl ImageKey {
    /// From /proc: the executable (a script's interpreter) and the environment
    /// the image started with.
    pub fn of(pid: u32) -> Result<Self, ProbeError> {
        let proc_path = |p: &str| PathBuf::from(format!("/proc/{pid}/{p}"));
        let exe =
            std::fs::read_link(proc_path("exe")).map_err(|e| ProbeError::Unreadable { path: proc_path("exe"), detail: e.to_string() })?;
        let environ = std::fs::read(proc_path("environ")).unwrap_or_default();
        let var = |name: &[u8]| environ.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(name)).map(|v| OsStr::from_bytes(v).to_owned());
        Ok(Self { exe, preload: var(b"LD_PRELOAD="), library_path: var(b"LD_LIBRARY_PATH=") })
    }
}

#[derive(Debug, Clone)]
pub struct AllocatorChoice {
    pub path: PathBuf,
    /// How it was chosen, for the user.
    pub reason: String,
    /// Functions to probe; aliases at one address appear once.
    pub functions: Vec<AllocatorFunction>,
    /// Functions the object does not export.
    pub missing: Vec<AllocFn>,
}

impl AllocatorChoice {
    /// `--allocator PATH`.
    pub fn from_path(path: &Path) -> Result<Self, ProbeError> {
        Self::inspect(path, "given with --allocator".into())
    }

    /// For a command not started yet: resolve its libraries on the file system.
    #[cfg(test)]
    pub fn for_command(exe: &Path, ld_preload: Option<&OsStr>, ld_library_path: Option<&OsStr>) -> Result<Self, ProbeError> {
        let search = Search { library_path: split_paths(ld_library_path), ..Search::default() };
        Self::resolve(exe, preload_list(ld_preload), &search)
    }

    /// For a process, running or stopped at exec: resolve against what it
    /// has mapped (at exec, nothing yet but the dynamic linker) and the file system.
    pub fn for_pid(pid: u32) -> Result<Self, ProbeError> {
        Self::for_image(pid, &ImageKey::of(pid)?)
    }

    /// [`Self::for_pid`] once its [`ImageKey`] is read.
    pub fn for_image(pid: u32, key: &ImageKey) -> Result<Self, ProbeError> {
        let maps_path = PathBuf::from(format!("/proc/{pid}/maps"));
        let maps = std::fs::read_to_string(&maps_path).map_err(|e| ProbeError::Unreadable { path: maps_path, detail: e.to_string() })?;
        let mapped: Vec<PathBuf> =
            maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.starts_with('/')).map(PathBuf::from).collect();
        let search = Search { library_path: split_paths(key.library_path.as_deref()), mapped, ..Search::default() };
        // A relative LD_PRELOAD path is relative to the process's directory.
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let preload = preload_list(key.preload.as_deref())
            .into_iter()
            .map(|p| if p.is_relative() && p.components().count() > 1 { cwd.join(p) } else { p })
            .collect();
        Self::resolve(&key.exe, preload, &search)
    }

    fn resolve(exe: &Path, preload: Vec<PathBuf>, search: &Search) -> Result<Self, ProbeError> {
        let mut chosen = None;
        walk_load_order(exe, preload, search, |path, origin, data| {
            if !exports_malloc(data) {
                return false;
            }
            let reason = match origin {
                "the executable" => "the executable defines malloc",
                "LD_PRELOAD" => "preloaded (LD_PRELOAD) and defines malloc",
                _ => "first object in load order that defines malloc",
            };
            chosen = Some((path.to_path_buf(), reason.to_owned()));
            true
        });
        let (path, reason) = chosen.ok_or_else(|| ProbeError::NoAllocator { target: exe.display().to_string() })?;
        Self::inspect(&path, reason)
    }
}

/// Every object a command will load at start, in the dynamic linker's order:
/// the executable, its interpreter, LD_PRELOAD, then DT_NEEDED breadth-first.
pub fn load_order(exe: &Path, ld_preload: Option<&OsStr>, ld_library_path: Option<&OsStr>) -> Vec<PathBuf> {
    let search = Search { library_path: split_paths(ld_library_path), ..Search::default() };
    let mut all = Vec::new();
    walk_load_order(exe, preload_list(ld_preload), &search, |path, _, data| {
        // A script (#!) is not loaded: its interpreter is, by the kernel's exec.
        if !data.starts_with(b"\x7fELF") {
            return false;
        }
        all.push(path.to_path_buf());
        if let Some(interp) = interpreter(data) {
            all.push(interp);
        }
        false
    });
    all.dedup();
    all
}

/// PT_INTERP of an executable.
fn interpreter(data: &[u8]) -> Option<PathBuf> {
    let file = object::File::parse(data).ok()?;
    let sec = file.section_by_name(".interp")?;
    let bytes = sec.data().ok()?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end])))
}

/// Visits the objects of `exe` in load order until `visit` returns true.
fn walk_load_order(exe: &Path, preload: Vec<PathBuf>, search: &Search, mut visit: impl FnMut(&Path, &'static str, &[u8]) -> bool) {
    let arch = MappedFile::open(exe).ok().and_then(|d| object::File::parse(d.bytes()).ok().map(|f| f.architecture()));
    let search = &Search { arch, ..search.clone() };
    let mut queue: VecDeque<(PathBuf, &'static str)> = VecDeque::new();
    queue.push_back((exe.to_path_buf(), "the executable"));
    for p in preload {
        let found = search.find(&p.to_string_lossy(), None);
        queue.push_back((found.unwrap_or(p), "LD_PRELOAD"));
    }
    let mut seen = HashSet::new();
    while let Some((path, origin)) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        // Mapped, not read: an executable may be hundreds of MB.
        let Ok(file) = MappedFile::open(&path) else { continue };
        let data = file.bytes();
        if visit(&path, origin, data) {
            return;
        }
        let deps = elf_dependencies(data);
        for name in deps.needed {
            if let Some(p) = search.find(&name, Some((&path, &deps.runpath))) {
                queue.push_back((p, "DT_NEEDED"));
            }
        }
    }
}

impl AllocatorChoice {
    fn inspect(path: &Path, reason: String) -> Result<Self, ProbeError> {
        let unreadable = |e: String| ProbeError::Unreadable { path: path.to_path_buf(), detail: e };
        let data = MappedFile::open(path).map_err(|e| unreadable(e.to_string()))?;
        let file = object::File::parse(data.bytes()).map_err(|e| unreadable(format!("not an ELF object: {e}")))?;
        let mut functions: Vec<AllocatorFunction> = Vec::new();
        let mut missing = Vec::new();
        for func in AllocFn::ALL {
            match symbol_file_offset(&file, func.symbol()) {
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
            return Err(unreadable("it does not define both malloc and free".into()));
        }
        Ok(Self { path: path.to_path_buf(), reason, functions, missing })
    }
}

fn exports_malloc(data: &[u8]) -> bool {
    let Ok(file) = object::File::parse(data) else { return false };
    let defined = |s: &object::Symbol| s.name() == Ok("malloc") && s.is_definition();
    file.dynamic_symbols().any(|s| defined(&s)) || (file.dynamic_symbols().next().is_none() && file.symbols().any(|s| defined(&s)))
}

pub(super) fn symbol_file_offset(file: &object::File, name: &str) -> Option<u64> {
    let sym = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(name) && s.is_definition())
        .or_else(|| file.symbols().find(|s| s.name() == Ok(name) && s.is_definition()))?;
    let addr = sym.address();
    file.sections().find_map(|sec| {
        let (start, size) = (sec.address(), sec.size());
        let (off, _) = sec.file_range()?;
        (addr >= start && addr < start + size).then(|| addr - start + off)
    })
}

struct Dependencies {
    needed: Vec<String>,
    runpath: Vec<String>,
}

fn elf_dependencies(data: &[u8]) -> Dependencies {
    let mut deps = Dependencies { needed: Vec::new(), runpath: Vec::new() };
    let Ok(header) = FileHeader64::<object::Endianness>::parse(data) else { return deps };
    let Ok(endian) = header.endian() else { return deps };
    let Ok(sections) = header.sections(endian, data) else { return deps };
    let Ok(Some((dynamic, link))) = sections.dynamic(endian, data) else { return deps };
    let Ok(strings) = sections.strings(endian, data, link) else { return deps };
    for d in dynamic {
        let tag = d.d_tag(endian) as u32;
        let Ok(value) = d.string(endian, strings) else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        match tag {
            DT_NEEDED => deps.needed.push(value),
            DT_RUNPATH | DT_RPATH => deps.runpath.extend(value.split(':').map(str::to_owned)),
            _ => {}
        }
    }
    deps
}

fn split_paths(v: Option<&OsStr>) -> Vec<PathBuf> {
    v.map(|v| std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect()).unwrap_or_default()
}

fn preload_list(v: Option<&OsStr>) -> Vec<PathBuf> {
    v.map(|v| v.to_string_lossy().split([' ', ':']).filter(|s| !s.is_empty()).map(PathBuf::from).collect()).unwrap_or_default()
}

#[derive(Clone, Default)]
struct Search {
    /// The executable's architecture: a library of another (/lib32) is not a candidate.
    arch: Option<object::Architecture>,
    library_path: Vec<PathBuf>,
    /// Files the process has mapped (attach): a name resolves to these first.
    mapped: Vec<PathBuf>,
}

impl Search {
    fn find(&self, name: &str, requester: Option<(&Path, &Vec<String>)>) -> Option<PathBuf> {
        if name.contains('/') {
            return Some(PathBuf::from(name));
        }
        if let Some(p) = self.mapped.iter().find(|p| p.file_name() == Some(OsStr::new(name)) && self.same_arch(p)) {
            return Some(p.clone());
        }
        let origin = requester.and_then(|(p, _)| p.parent()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let runpath: Vec<PathBuf> =
            requester.map(|(_, r)| r.iter().map(|d| PathBuf::from(d.replace("$ORIGIN", &origin))).collect()).unwrap_or_default();
        self.library_path
            .iter()
            .cloned()
            .chain(runpath)
            .chain(system_dirs())
            .map(|d| d.join(name))
            .find(|p| p.is_file() && self.same_arch(p))
    }
}

impl Search {
    fn same_arch(&self, path: &Path) -> bool {
        let Some(want) = self.arch else { return true };
        // The ELF header is enough: read only its first bytes.
        let mut head = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(path) else { return false };
        if std::io::Read::read_exact(&mut f, &mut head).is_err() {
            return false;
        }
        let class64 = head[4] == 2;
        let machine = u16::from_le_bytes([head[18], head[19]]);
        match want {
            object::Architecture::X86_64 => class64 && machine == object::elf::EM_X86_64,
            object::Architecture::Aarch64 => class64 && machine == object::elf::EM_AARCH64,
            _ => true,
        }
    }
}

fn system_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut conf = vec![PathBuf::from("/etc/ld.so.conf")];
    while let Some(file) = conf.pop() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
            if let Some(pattern) = line.strip_prefix("include ") {
                conf.extend(expand_glob(pattern.trim()));
            } else {
                dirs.push(PathBuf::from(line));
            }
        }
    }
    dirs.extend(["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(PathBuf::from));
    dirs
}

/// `dir/*.conf` style includes of ld.so.conf.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|e| e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
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
        // libc itself preloaded: chosen as "preloaded", proving the order is honoured.
        let libc = AllocatorChoice::for_command(Path::new("/bin/true"), None, None).unwrap().path;
        let choice = AllocatorChoice::for_command(Path::new("/bin/true"), Some(libc.as_os_str()), None).unwrap();
        assert!(choice.reason.contains("LD_PRELOAD"), "{}", choice.reason);
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

    #[test]
    fn glob_patterns_expand() {
        assert!(expand_glob("/nonexistent/*.conf").is_empty());
    }
}
