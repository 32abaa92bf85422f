//! The dynamic linker's load order for an executable: the executable, its
//! LD_PRELOAD list, then DT_NEEDED breadth-first, each name resolved as
//! ld.so resolves it (a file the process has already mapped first, then
//! LD_LIBRARY_PATH, DT_RUNPATH, ld.so.conf and the system directories),
//! inside the process's own root when it has one.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::linker_view::LinkerView;
use super::mapped_objects::MappedObject;
use crate::symbolize::MappedFile;

/// Where an object of the load order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Executable,
    Preload,
    Needed,
}

#[derive(Clone, Default)]
pub struct Search {
    /// The executable's architecture: a library of another (/lib32) is not a candidate.
    pub arch: Option<object::Architecture>,
    pub library_path: Vec<PathBuf>,
    /// Files the process has mapped (attach, or at exec): a name resolves to these first.
    pub mapped: Vec<MappedObject>,
    /// The process's root (`/proc/PID/root`): file-system names are looked up inside it.
    pub root: Option<PathBuf>,
}

/// Visits the objects of `exe` in load order until `visit` returns true.
pub fn walk(exe: MappedObject, preload: Vec<PathBuf>, search: &Search, mut visit: impl FnMut(&MappedObject, Origin, &[u8]) -> bool) {
    let arch = MappedFile::open(&exe.open).ok().and_then(|d| object::File::parse(d.bytes()).ok().map(|f| object::Object::architecture(&f)));
    let search = &Search { arch, ..search.clone() };
    let mut queue: VecDeque<(MappedObject, Origin)> = VecDeque::new();
    queue.push_back((exe, Origin::Executable));
    for p in preload {
        let found = search.find(&p.to_string_lossy(), None).unwrap_or_else(|| search.on_disk(p));
        queue.push_back((found, Origin::Preload));
    }
    let mut seen = HashSet::new();
    while let Some((object, origin)) = queue.pop_front() {
        if !seen.insert(object.open.clone()) {
            continue;
        }
        // Mapped, not read: an executable may be hundreds of MB.
        let Ok(file) = MappedFile::open(&object.open) else { continue };
        let data = file.bytes();
        if visit(&object, origin, data) {
            return;
        }
        let view = LinkerView::parse(data);
        // A static executable loads nothing else: no dynamic linker reads LD_PRELOAD.
        if origin == Origin::Executable && view.as_ref().is_some_and(|v| v.interpreter().is_none()) {
            return;
        }
        let deps = view.map(|v| v.dependencies()).unwrap_or_default();
        for name in deps.needed {
            if let Some(found) = search.find(&name, Some((&object.shown, &deps.runpath))) {
                queue.push_back((found, Origin::Needed));
            }
        }
    }
}

pub fn split_paths(v: Option<&OsStr>) -> Vec<PathBuf> {
    v.map(|v| std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect()).unwrap_or_default()
}

/// LD_PRELOAD: names separated by spaces or colons (bytes, any encoding).
pub fn preload_list(v: Option<&OsStr>) -> Vec<PathBuf> {
    v.map(|v| {
        v.as_bytes().split(|&b| b == b' ' || b == b':').filter(|s| !s.is_empty()).map(|s| PathBuf::from(OsStr::from_bytes(s))).collect()
    })
    .unwrap_or_default()
}

impl Search {
    /// A path as the process sees it, opened inside its root.
    pub fn on_disk(&self, path: PathBuf) -> MappedObject {
        let open = match &self.root {
            Some(root) if path.is_absolute() => root.join(path.strip_prefix("/").unwrap_or(&path)),
            _ => path.clone(),
        };
        MappedObject { shown: path, open }
    }

    fn find(&self, name: &str, requester: Option<(&Path, &Vec<String>)>) -> Option<MappedObject> {
        if let Some(m) = self.mapped.iter().find(|m| {
            if name.contains('/') {
                m.shown == Path::new(name)
            } else {
                m.shown.file_name() == Some(OsStr::new(name))
            }
        }) {
            if self.same_arch(&m.open) {
                return Some(m.clone());
            }
        }
        if name.contains('/') {
            return Some(self.on_disk(PathBuf::from(name)));
        }
        let origin = requester.and_then(|(p, _)| p.parent()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let runpath: Vec<PathBuf> =
            requester.map(|(_, r)| r.iter().map(|d| PathBuf::from(d.replace("$ORIGIN", &origin))).collect()).unwrap_or_default();
        self.library_path
            .iter()
            .cloned()
            .chain(runpath)
            .chain(system_dirs(&self.on_disk(PathBuf::from("/")).open))
            .map(|d| self.on_disk(d.join(name)))
            .find(|p| p.open.is_file() && self.same_arch(&p.open))
    }

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

/// ld.so.conf's directories (read inside `root`), then the system's.
fn system_dirs(root: &Path) -> Vec<PathBuf> {
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut conf = vec![PathBuf::from("/etc/ld.so.conf")];
    while let Some(file) = conf.pop() {
        let Ok(text) = std::fs::read_to_string(inside(&file)) else { continue };
        for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
            if let Some(pattern) = line.strip_prefix("include ") {
                conf.extend(expand_glob(root, pattern.trim()));
            } else {
                dirs.push(PathBuf::from(line));
            }
        }
    }
    dirs.extend(["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(PathBuf::from));
    dirs
}

/// `dir/*.conf` style includes of ld.so.conf, as paths inside `root`.
fn expand_glob(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join(dir.strip_prefix("/").unwrap_or(dir)))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n.to_str().is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix)))
                .map(|n| dir.join(n))
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
    fn glob_patterns_expand_inside_the_root() {
        assert!(expand_glob(Path::new("/"), "/nonexistent/*.conf").is_empty());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/ld.so.conf.d")).unwrap();
        std::fs::write(dir.path().join("etc/ld.so.conf.d/a.conf"), "/opt/a\n").unwrap();
        std::fs::write(dir.path().join("etc/ld.so.conf.d/b.txt"), "").unwrap();
        assert_eq!(expand_glob(dir.path(), "/etc/ld.so.conf.d/*.conf"), vec![PathBuf::from("/etc/ld.so.conf.d/a.conf")]);
        std::fs::write(dir.path().join("etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n").unwrap();
        assert_eq!(system_dirs(dir.path())[0], PathBuf::from("/opt/a"), "the root's own ld.so.conf");
    }

    #[test]
    fn preload_names_are_bytes() {
        let v = OsStr::from_bytes(b"/opt/\xff/lib.so libx.so:liby.so");
        assert_eq!(preload_list(Some(v)), vec![PathBuf::from(OsStr::from_bytes(b"/opt/\xff/lib.so")), "libx.so".into(), "liby.so".into()]);
    }
}
