//! `/tmp/perf-PID.map`: one `START SIZE NAME` line per code object (hex
//! numbers, the name to the end of the line), appended as the runtime
//! compiles. Read incrementally: each refresh parses only the lines appended
//! since; a replaced or truncated file is read again from the start.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::source::JitSource;
use super::table::{Code, CodeRanges, Names};

/// Most bytes read per refresh (a long-running service's map grows without bound).
const READ_LIMIT: u64 = 256 << 20;

/// A perf map modified this long before the process started is an earlier process's.
const STALE_SLACK: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct PerfMap {
    /// The file, kept open between refreshes (opened again at each full one).
    file: Option<Arc<File>>,
    /// (device, inode) of the file read so far.
    identity: Option<(u64, u64)>,
    /// Bytes consumed: up to the last complete line.
    offset: u64,
    pub ranges: CodeRanges,
    /// Lines that were not `START SIZE NAME`.
    pub malformed: u64,
}

/// Why a perf map present was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("{path} is not a regular file: not read")]
    NotRegular { path: String },
    #[error("{path} belongs to uid {owner}, neither root nor the process's user: not read")]
    Owner { path: String, owner: u32 },
    #[error("{path} was last written before the process started (an earlier process with this pid): not read")]
    Stale { path: String },
}

/// Parses `START SIZE NAME` (hex, with or without `0x`).
pub fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok();
    let (start, rest) = line.split_once(' ')?;
    let (size, name) = rest.split_once(' ')?;
    let name = name.trim_end_matches('\r');
    (!name.is_empty()).then_some(())?;
    Some((hex(start)?, hex(size)?, name))
}

/// Reads `len` bytes at `offset`.
pub fn read_at(file: &File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len as usize];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

impl PerfMap {
    /// Reads what was appended since the last refresh, from the file kept
    /// open or (`reopen`, or none is open) from the file now at the path.
    /// `Ok(false)`: there is no perf map.
    pub fn refresh(&mut self, source: &JitSource, names: &mut Names, reopen: bool) -> Result<bool, Refused> {
        if reopen || self.file.is_none() {
            self.file = source.open_perf_map().ok();
        }
        let Some(file) = &self.file else { return Ok(false) };
        let path = source.perf_map_name();
        let meta = file.metadata().map_err(|_| Refused::NotRegular { path: path.clone() })?;
        let refused = if !meta.is_file() {
            Some(Refused::NotRegular { path })
        } else if meta.uid() != 0 && !source.uids.contains(&meta.uid()) {
            Some(Refused::Owner { path, owner: meta.uid() })
        } else if source.started.is_some_and(|s| meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) + STALE_SLACK < s) {
            Some(Refused::Stale { path })
        } else {
            None
        };
        if let Some(r) = refused {
            self.file = None;
            return Err(r);
        }
        let identity = Some((meta.dev(), meta.ino()));
        if identity != self.identity || meta.len() < self.offset {
            (self.identity, self.offset, self.malformed) = (identity, 0, 0);
            self.ranges.clear();
        }
        let want = meta.len().saturating_sub(self.offset).min(READ_LIMIT);
        let bytes = read_at(file, self.offset, want).unwrap_or_default();
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.add(&bytes[..complete], names);
        self.offset += complete as u64;
        Ok(true)
    }

    /// Adds complete lines, in order (a later line wins).
    pub fn add(&mut self, lines: &[u8], names: &mut Names) {
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line);
            match parse_line(&text) {
                Some((start, size, name)) => self.ranges.insert(start, size, Code { name: names.get(name), lines: None }),
                None => self.malformed += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_start_size_name() {
        assert_eq!(
            parse_line("7f78cf809d00 378 JS:~leakyConnect /tmp/a b.js:8:22"),
            Some((0x7f78cf809d00, 0x378, "JS:~leakyConnect /tmp/a b.js:8:22"))
        );
        assert_eq!(parse_line("0x10 0x20 java.lang.String::hashCode"), Some((0x10, 0x20, "java.lang.String::hashCode")));
        assert_eq!(parse_line("zz 10 x"), None);
        assert_eq!(parse_line("10 20"), None);
        assert_eq!(parse_line("10 20 "), None);
    }

    #[test]
    fn added_lines_name_ranges_and_bad_lines_are_counted() {
        let mut names = Names::default();
        let mut map = PerfMap::default();
        map.add(b"1000 100 JS:~a /app/x.js:1:1\ngarbage\n1000 80 JS:*a /app/x.js:1:1\n", &mut names);
        let (start, code) = map.ranges.find(0x1010).unwrap();
        assert_eq!((start, &*code.name.function, code.name.file.as_deref()), (0x1000, "a", Some("/app/x.js")));
        assert!(map.ranges.find(0x1090).is_none(), "the later, shorter entry replaced the first");
        assert_eq!(map.malformed, 1);
    }
}
