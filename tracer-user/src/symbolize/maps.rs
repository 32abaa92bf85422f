//! A process's executable mappings, captured while it runs.

use std::path::PathBuf;

use super::SymbolizeError;

/// One executable mapping of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    pub path: Option<PathBuf>,
    /// GNU build-id of the file actually mapped (read through /proc/PID/map_files).
    pub build_id: Option<Vec<u8>>,
}

/// Executable mappings sorted by start address. Holds everything needed to
/// symbolize after the process is gone: paths and build-ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessMaps {
    mappings: Vec<Mapping>,
}

impl ProcessMaps {
    pub fn capture(pid: u32) -> Result<Self, SymbolizeError> {
        let path = format!("/proc/{pid}/maps");
        let text = std::fs::read_to_string(&path).map_err(|e| SymbolizeError::Read { path: path.clone(), detail: e.to_string() })?;
        let mut maps = Self::parse(&text)?;
        for m in &mut maps.mappings {
            let mapped = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
            m.build_id = std::fs::read(&mapped).ok().as_deref().and_then(super::module::build_id_of);
        }
        Ok(maps)
    }

    /// Parses the text of /proc/PID/maps; keeps executable mappings.
    pub fn parse(text: &str) -> Result<Self, SymbolizeError> {
        let mut mappings = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || SymbolizeError::Maps(line.to_owned());
            let mut f = line.split_whitespace();
            let (range, perms, offset) = (f.next().ok_or_else(bad)?, f.next().ok_or_else(bad)?, f.next().ok_or_else(bad)?);
            let (_dev, _inode) = (f.next(), f.next());
            let path: String = f.collect::<Vec<_>>().join(" ");
            if perms.as_bytes().get(2) != Some(&b'x') {
                continue;
            }
            let (s, e) = range.split_once('-').ok_or_else(bad)?;
            let hex = |v: &str| u64::from_str_radix(v, 16).map_err(|_| bad());
            let path = path.strip_suffix(" (deleted)").unwrap_or(&path);
            mappings.push(Mapping {
                start: hex(s)?,
                end: hex(e)?,
                offset: hex(offset)?,
                path: path.starts_with('/').then(|| PathBuf::from(path)),
                build_id: None,
            });
        }
        mappings.sort_by_key(|m| m.start);
        Ok(Self { mappings })
    }

    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.start <= addr);
        self.mappings[..i].last().filter(|m| addr < m.end)
    }

    /// Adds the mappings of a later capture (dlopen) that this one lacks.
    pub fn merge(&mut self, newer: ProcessMaps) {
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
    fn malformed_lines_are_errors_not_panics() {
        assert!(ProcessMaps::parse("zzzz r-xp 0 0 0 /x\n").is_err());
        assert!(ProcessMaps::parse("1000-2000\n").is_err());
    }
}
