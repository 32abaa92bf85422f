//! A process's executable mappings, captured while it runs, each with the
//! file the process really mapped (kept open, so symbolizing after the
//! process is gone, or after the file was replaced on disk, reads what ran).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::jit::JitSource;
use super::mapped::{FileId, MappedFile};
use super::mapping::Mapping;
use super::SymbolizeError;

/// Executable mappings sorted by start address. Holds everything needed to
/// symbolize after the process is gone: paths, build-ids and mapped files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessMaps {
    mappings: Vec<Mapping>,
    /// The executable's path (/proc/PID/exe).
    exe: Option<PathBuf>,
    /// Where its JIT runtime names its code (see [`super::jit`]).
    jit: Option<JitSource>,
}

impl ProcessMaps {
    pub fn capture(pid: u32) -> Result<Self, SymbolizeError> {
        let path = format!("/proc/{pid}/maps");
        let text = std::fs::read(&path).map_err(|e| SymbolizeError::Read { path: path.clone(), detail: e.to_string() })?;
        let mut maps = Self::parse_bytes(&text)?;
        maps.exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let mut opened: HashMap<FileId, Option<Arc<MappedFile>>> = HashMap::new();
        for m in &mut maps.mappings {
            let Some(name) = &m.path else { continue };
            let file = opened.entry(m.file_id).or_insert_with(|| open_mapped(pid, m.start, m.end, name)).clone();
            m.build_id = file.as_ref().and_then(|f| f.build_id()).map(<[u8]>::to_vec);
            m.file = file;
        }
        maps.jit = JitSource::capture(pid, &maps.mappings);
        Ok(maps)
    }

    /// Parses the text of /proc/PID/maps; keeps executable mappings.
    pub fn parse(text: &str) -> Result<Self, SymbolizeError> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses /proc/PID/maps as the kernel writes it: paths are bytes.
    pub fn parse_bytes(text: &[u8]) -> Result<Self, SymbolizeError> {
        let mut mappings = Vec::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
            if let Some(m) = parse_line(line)? {
                mappings.push(m);
            }
        }
        mappings.sort_by_key(|m| m.start);
        Ok(Self { mappings, exe: None, jit: None })
    }

    /// The executable mappings, by address.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.start <= addr);
        self.mappings[..i].last().filter(|m| addr < m.end)
    }

    /// The executable's mapping with the lowest address, if it is mapped.
    pub fn executable(&self) -> Option<&Mapping> {
        let exe = self.exe.as_deref()?;
        self.mappings.iter().find(|m| m.path.as_deref() == Some(exe))
    }

    /// Adds the mappings of a later capture (dlopen) that this one lacks.
    pub fn merge(&mut self, newer: ProcessMaps) {
        if self.exe.is_none() {
            self.exe = newer.exe;
        }
        match (&mut self.jit, newer.jit) {
            (Some(jit), Some(newer)) => jit.merge(&newer),
            (jit, newer) => *jit = jit.take().or(newer),
        }
        for m in newer.mappings {
            if !self.mappings.iter().any(|o| o.start == m.start && o.end == m.end && o.path == m.path) {
                self.mappings.push(m);
            }
        }
        self.mappings.sort_by_key(|m| m.start);
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Where the process's JIT runtime names its code, when it was captured live.
    pub fn jit(&self) -> Option<&JitSource> {
        self.jit.as_ref()
    }
}

/// The file behind a mapping: what the process mapped (map_files), else
/// the path inside its root (its mount namespace), never the host's path.
fn open_mapped(pid: u32, start: u64, end: u64, name: &Path) -> Option<Arc<MappedFile>> {
    MappedFile::open(Path::new(&format!("/proc/{pid}/map_files/{start:x}-{end:x}"))).ok().or_else(|| {
        let mut inside = PathBuf::from(format!("/proc/{pid}/root"));
        inside.push(name.strip_prefix("/").ok()?);
        MappedFile::open(&inside).ok()
    })
}

fn parse_line(line: &[u8]) -> Result<Option<Mapping>, SymbolizeError> {
    let bad = || SymbolizeError::Maps(String::from_utf8_lossy(line).into_owned());
    // Five space-separated fields, then the path (which may hold spaces).
    let mut rest = line;
    let mut field = || -> Option<&[u8]> {
        let s = rest.iter().position(|b| *b != b' ')?;
        rest = &rest[s..];
        let e = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        let (f, r) = rest.split_at(e);
        rest = r;
        Some(f)
    };
    let (range, perms, offset, dev, inode) = (field(), field(), field(), field(), field());
    let (Some(range), Some(perms), Some(offset)) = (range, perms, offset) else { return Err(bad()) };
    if perms.get(2) != Some(&b'x') {
        return Ok(None);
    }
    let text = |v: &[u8]| std::str::from_utf8(v).map_err(|_| bad()).map(str::to_owned);
    let hex = |v: &[u8]| text(v).and_then(|t| u64::from_str_radix(&t, 16).map_err(|_| bad()));
    let (s, e) = text(range)?.split_once('-').map(|(a, b)| (a.to_owned(), b.to_owned())).ok_or_else(bad)?;
    let file_id = match (dev.map(text).transpose()?, inode.map(text).transpose()?) {
        (Some(dev), Some(inode)) => {
            let (major, minor) = dev.split_once(':').ok_or_else(bad)?;
            let num = |v: &str| u64::from_str_radix(v, 16).map_err(|_| bad());
            FileId { dev: num(major)? << 32 | num(minor)?, inode: inode.parse().map_err(|_| bad())? }
        }
        _ => FileId::default(),
    };
    let path = rest.trim_ascii_start();
    let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
    Ok(Some(Mapping {
        start: hex(s.as_bytes())?,
        end: hex(e.as_bytes())?,
        offset: hex(offset)?,
        path: path.starts_with(b"/").then(|| PathBuf::from(OsStr::from_bytes(path))),
        file_id,
        build_id: None,
        file: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0a0000000-55d0a0001000 r--p 00000000 08:01 123 /usr/bin/app
55d0a0001000-55d0a0005000 r-xp 00001000 08:01 123 /usr/bin/app
7f0000000000-7f0000100000 r-xp 00028000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000201000 r-xp 00000000 00:00 0 [vdso]
7f0000300000-7f0000301000 r-xp 00000000 08:01 789 /tmp/my lib.so (deleted)
";

    #[test]
    fn keeps_executable_mappings_and_finds_addresses() {
        let m = ProcessMaps::parse(MAPS).unwrap();
        assert_eq!(m.find(0x55d0a0002000).unwrap().path.as_deref(), Some(std::path::Path::new("/usr/bin/app")));
        assert_eq!(m.find(0x55d0a0002000).unwrap().offset, 0x1000);
        assert!(m.find(0x55d0a0000500).is_none(), "not executable");
        assert!(m.find(0x7f0000200010).unwrap().path.is_none(), "[vdso] has no file");
        assert_eq!(m.find(0x7f0000300010).unwrap().path.as_deref(), Some(std::path::Path::new("/tmp/my lib.so")));
        assert!(m.find(0x10).is_none());
    }

    #[test]
    fn merge_adds_new_mappings_once() {
        let mut a = ProcessMaps::parse(&MAPS.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
        let b = ProcessMaps::parse(MAPS).unwrap();
        a.merge(b.clone());
        a.merge(b);
        assert!(a.find(0x7f0000000010).is_some());
        assert_eq!(a.mappings.len(), 4);
    }

    #[test]
    fn paths_are_bytes_and_devices_identify_files() {
        let m = ProcessMaps::parse_bytes(b"1000-2000 r-xp 00000000 fd:01 77 /opt/caf\xe9/app\n").unwrap();
        let found = m.find(0x1800).unwrap();
        assert_eq!(found.path.as_deref().map(|p| p.as_os_str().as_bytes()), Some(&b"/opt/caf\xe9/app"[..]));
        assert_eq!(found.file_id, FileId { dev: 0xfd << 32 | 1, inode: 77 });
    }

    #[test]
    fn a_live_capture_maps_the_files_themselves() {
        let maps = ProcessMaps::capture(std::process::id()).unwrap();
        let exe = maps.executable().expect("the test binary is mapped");
        assert!(exe.file.is_some() && exe.build_id.is_some(), "{exe:?}");
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(ProcessMaps::parse("zzzz r-xp 0 0 0 /x\n").is_err());
        assert!(ProcessMaps::parse("1000-2000\n").is_err());
    }
}
