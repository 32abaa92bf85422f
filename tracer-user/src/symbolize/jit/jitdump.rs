//! jitdump files (perf's format: a header, then records; V8 writes
//! `jit-PID.dump` with `--perf-prof` and maps it so profilers find it):
//! code loads name ranges, code moves move them, debug records give source
//! positions inside the next code loaded at their address. Read
//! incrementally, complete records only; every length is bounds-checked.
//!
//! V8 as Node.js 20 ships it writes each debug entry's script name from
//! memory it has already freed: the allocator has reused the first 16
//! bytes (zeros among them), the rest and the length are intact. Entries
//! are therefore delimited by where the next one plausibly starts, and a
//! name that is the code's own script but for those bytes is taken as it.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use super::perfmap::read_at;
use super::table::{Code, CodeRanges, DebugLine, Named, Names};
use super::v8;

const MAGIC: u32 = 0x4A69_5444;
const HEADER: usize = 40;
const RECORD: usize = 16;
const CODE_LOAD: u32 = 0;
const CODE_MOVE: u32 = 1;
const DEBUG_INFO: u32 = 2;
/// Most bytes read per refresh.
const READ_LIMIT: u64 = 256 << 20;
/// V8 writes debug positions `sizeof(Elf64_Ehdr)` past the instruction
/// (where `perf inject` will place the code in the ELF file it makes).
const V8_DEBUG_SHIFT: u64 = 64;
/// Farthest a debug entry's address lies past the start of its code.
const MAX_CODE: u64 = 1 << 24;
/// Bytes of a script name V8 may write from reused memory.
const REUSED: usize = 16;

/// A debug entry waiting for its code: the script's name as written.
struct PendingLine {
    pc: u64,
    line: u32,
    column: u32,
    script: Vec<u8>,
}

#[derive(Default)]
pub struct Jitdump {
    /// Bytes consumed (the header, then whole records).
    offset: u64,
    /// Debug records waiting for the code loaded at their address.
    pending: HashMap<u64, Vec<PendingLine>>,
    pub ranges: CodeRanges,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadDump {
    #[error("not a jitdump file in this machine's byte order")]
    Magic,
    #[error("a record at byte {0} is malformed: the rest is not read")]
    Record(u64),
}

/// A little-endian reader over one record.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn text(&mut self) -> Option<String> {
        let end = self.0.iter().position(|&b| b == 0)?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Some(s)
    }
    /// A debug entry's script name, up to the zero that ends it: the one the
    /// next entry plausibly follows (an address in the code at `code`) or,
    /// for the last, the one only padding follows.
    fn script(&mut self, code: u64, last: bool) -> Option<&'a [u8]> {
        let s = self.0;
        let ends = |j: usize| {
            let rest = &s[j + 1..];
            if last {
                return rest.len() < 8 && rest.iter().all(|&b| b == 0);
            }
            let next = rest.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
            next.is_some_and(|next| (code..code.saturating_add(MAX_CODE)).contains(&next))
        };
        let end = (0..s.len()).find(|&j| s[j] == 0 && ends(j))?;
        self.0 = &s[end + 1..];
        Some(&s[..end])
    }
}

/// A debug record: the code's address and its entries.
fn debug_lines(c: &mut Cursor) -> Option<(u64, Vec<PendingLine>)> {
    let (addr, count) = (c.u64()?, c.u64()?);
    let mut lines = Vec::new();
    for i in 0..count {
        let (pc, line, column) = (c.u64()?, c.u32()?, c.u32()?);
        let script = c.script(addr, i + 1 == count)?.to_vec();
        lines.push(PendingLine { pc, line, column, script });
    }
    Some((addr, lines))
}

/// A debug entry's script: the code's own when the name is its (or is it but
/// for the bytes V8 may have written from reused memory), else the name.
fn script_of(raw: &[u8], code: &Named, names: &mut Names) -> Arc<str> {
    if let Some(file) = &code.file {
        let same = |s: &[u8]| s == raw || (s.len() == raw.len() && s.get(REUSED..) == raw.get(REUSED..));
        if same(file.as_bytes()) || same(format!("file://{file}").as_bytes()) {
            return file.clone();
        }
    }
    names.file(&v8::script_path(&String::from_utf8_lossy(raw)))
}

impl Jitdump {
    /// Reads the records appended since the last refresh.
    pub fn refresh(&mut self, file: &File, names: &mut Names) -> Result<(), BadDump> {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if self.offset == 0 {
            let header = read_at(file, 0, HEADER as u64).unwrap_or_default();
            let mut c = Cursor(&header);
            let (magic, _version, size) = (c.u32(), c.u32(), c.u32());
            match (magic, size) {
                (Some(MAGIC), Some(size)) => self.offset = u64::from(size).max(HEADER as u64),
                (Some(_), _) => return Err(BadDump::Magic),
                _ => return Ok(()), // not written yet
            }
        }
        let bytes = read_at(file, self.offset, len.saturating_sub(self.offset).min(READ_LIMIT)).unwrap_or_default();
        let (used, bad) = self.add(&bytes, names);
        self.offset += used as u64;
        match bad {
            true => Err(BadDump::Record(self.offset)),
            false => Ok(()),
        }
    }

    /// Applies the complete records at the start of `bytes`: (bytes used, a malformed record stopped it).
    pub fn add(&mut self, bytes: &[u8], names: &mut Names) -> (usize, bool) {
        let mut at = 0;
        while let Some(head) = bytes.get(at..at + RECORD) {
            let mut c = Cursor(head);
            let (id, size) = (c.u32().unwrap_or(0), c.u32().unwrap_or(0) as usize);
            if size < RECORD {
                return (at, true);
            }
            let Some(body) = bytes.get(at + RECORD..at + size) else { break };
            if self.record(id, body, names).is_none() {
                return (at, true);
            }
            at += size;
        }
        (at, false)
    }

    fn record(&mut self, id: u32, body: &[u8], names: &mut Names) -> Option<()> {
        let mut c = Cursor(body);
        match id {
            CODE_LOAD => {
                let (_pid, _tid, _vma, addr, size, _index) = (c.u32()?, c.u32()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?);
                let name = names.get(&c.text()?);
                let shift = if name.file.is_some() { V8_DEBUG_SHIFT } else { 0 };
                let lines = self.pending.remove(&addr).map(|l| {
                    let line = |e: PendingLine| DebugLine {
                        pc: e.pc.saturating_sub(shift),
                        line: e.line,
                        column: e.column,
                        file: script_of(&e.script, &name, names),
                    };
                    l.into_iter().map(line).collect()
                });
                self.ranges.insert(addr, size, Code { name, lines });
            }
            CODE_MOVE => {
                let (_pid, _tid, _vma, old, new, size) = (c.u32()?, c.u32()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?);
                if let Some(code) = self.ranges.take(old) {
                    let lines = code.lines.map(|l| l.iter().map(|e| DebugLine { pc: e.pc - old + new, ..e.clone() }).collect());
                    self.ranges.insert(new, size, Code { name: code.name, lines });
                }
            }
            DEBUG_INFO => {
                // Entries that cannot be told apart leave that code without
                // positions; the record's length still delimits it.
                if let Some((addr, mut lines)) = debug_lines(&mut c) {
                    lines.sort_by_key(|l| l.pc);
                    self.pending.insert(addr, lines);
                }
            }
            _ => {} // close, unwinding information: nothing to name
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u32, body: &[u8]) -> Vec<u8> {
        let mut r = id.to_le_bytes().to_vec();
        r.extend(((RECORD + body.len()) as u32).to_le_bytes());
        r.extend(0u64.to_le_bytes());
        r.extend(body);
        r
    }

    fn load(addr: u64, size: u64, name: &str) -> Vec<u8> {
        let mut b = [1u32.to_le_bytes(), 1u32.to_le_bytes()].concat();
        for v in [addr, addr, size, 7] {
            b.extend(v.to_le_bytes());
        }
        b.extend(name.as_bytes());
        b.push(0);
        b.extend(vec![0x90; size as usize]);
        record(CODE_LOAD, &b)
    }

    /// A debug record, its body padded with `pad` zeros as V8 aligns it.
    fn debug(addr: u64, entries: &[(u64, u32, u32, &[u8])], pad: usize) -> Vec<u8> {
        let mut b = [addr.to_le_bytes(), (entries.len() as u64).to_le_bytes()].concat();
        for (pc, line, col, file) in entries {
            b.extend(pc.to_le_bytes());
            b.extend(line.to_le_bytes());
            b.extend(col.to_le_bytes());
            b.extend(*file);
            b.push(0);
        }
        b.extend(vec![0; pad]);
        record(DEBUG_INFO, &b)
    }

    #[test]
    fn loads_name_code_and_debug_records_give_v8_positions() {
        let mut names = Names::default();
        let mut d = Jitdump::default();
        let mut bytes = debug(0x5000, &[(0x5040, 10, 3, b"/app/s.js"), (0x5060, 12, 5, b"/app/s.js")], 0);
        bytes.extend(load(0x5000, 0x40, "JS:*onRequest /app/s.js:9:20"));
        bytes.extend(load(0x6000, 0x10, "Builtin:Foo"));
        let partial = load(0x7000, 0x10, "JS:~late /app/s.js:30:1");
        bytes.extend(&partial[..20]);
        let (used, bad) = d.add(&bytes, &mut names);
        assert!(!bad);
        assert_eq!(used, bytes.len() - 20, "an incomplete record waits for the next refresh");
        let (start, code) = d.ranges.find(0x5021).unwrap();
        assert_eq!((start, &*code.name.function), (0x5000, "onRequest"));
        assert_eq!(code.line_at(0x5021).map(|l| (l.line, l.column)), Some((12, 5)), "V8's positions are 64 bytes late");
        assert_eq!(code.line_at(0x5000).map(|l| l.line), Some(10));
        assert!(d.ranges.find(0x6005).is_some_and(|(_, c)| c.lines.is_none()));
        assert!(d.ranges.find(0x7000).is_none());
    }

    #[test]
    fn moves_and_malformed_records() {
        let mut names = Names::default();
        let mut d = Jitdump::default();
        let mut bytes = load(0x1000, 0x10, "JS:~f /a.js:1:1");
        let mut mv = [1u32.to_le_bytes(), 1u32.to_le_bytes()].concat();
        for v in [0u64, 0x1000, 0x3000, 0x10, 7] {
            mv.extend(v.to_le_bytes());
        }
        bytes.extend(record(CODE_MOVE, &mv));
        assert_eq!(d.add(&bytes, &mut names), (bytes.len(), false));
        assert!(d.ranges.find(0x1000).is_none() && d.ranges.find(0x3008).is_some());
        let mut bad = 0u32.to_le_bytes().to_vec();
        bad.extend(4u32.to_le_bytes());
        bad.extend([0; 8]);
        assert_eq!(d.add(&bad, &mut names), (0, true), "a record shorter than its header");
        assert_eq!(d.add(&record(CODE_LOAD, &[1, 2, 3]), &mut names), (0, true), "a truncated body");
    }

    #[test]
    fn script_names_written_from_reused_memory_are_the_code_s_own() {
        let mut names = Names::default();
        let mut d = Jitdump::default();
        let script = "/srv/app/leaky_service.js";
        let mut reused = script.as_bytes().to_vec();
        reused[..REUSED].copy_from_slice(&[0xd5, 0xdb, 0xf3, 0x14, 0, 0, 0, 0, 0x84, 0x1d, 0xc2, 0x6d, 0, 0xe3, 0, 0x98]);
        let inlined: &[u8] = b"\xd5\xdb\0\0\x14\0\0"; // node:fs, 7 bytes, all reused
        let code = 0x7f8e_ac02_5000; // where V8 puts code: a byte off is far from it
        let entries: [(u64, u32, u32, &[u8]); 4] =
            [(code + 0x40, 10, 19, &reused), (code + 0x60, 13, 5, &reused), (code + 0x70, 400, 9, inlined), (code + 0x78, 13, 5, &reused)];
        let mut bytes = debug(code, &entries, 5);
        bytes.extend(load(code, 0x80, &format!("JS:*leakyOpen {script}:10:19")));
        assert_eq!(d.add(&bytes, &mut names), (bytes.len(), false));
        let (_, found) = d.ranges.find(code + 0x21).unwrap();
        let at = |pc| found.line_at(code + pc).map(|l| (l.line, l.file.to_string()));
        assert_eq!(at(0), Some((10, script.to_owned())));
        assert_eq!(at(0x21), Some((13, script.to_owned())), "zeros inside a name do not end it");
        assert_eq!(at(0x30).map(|l| l.0), Some(400));
        assert_ne!(at(0x30).unwrap().1, script, "another script's name is not the code's");
        assert_eq!(at(0x40), Some((13, script.to_owned())), "the last entry, before the padding");
        let far: [(u64, u32, u32, &[u8]); 2] = [(code + 0x1040, 1, 1, &reused), (0x10, 2, 2, &reused)];
        let mut bytes = debug(code + 0x1000, &far, 0);
        bytes.extend(load(code + 0x1000, 0x80, &format!("JS:*f {script}:1:1")));
        bytes.extend(load(code + 0x2000, 0x80, &format!("JS:*g {script}:2:1")));
        assert_eq!(d.add(&bytes, &mut names), (bytes.len(), false), "entries that cannot be told apart: only they are dropped");
        assert!(d.ranges.find(code + 0x1010).is_some_and(|(_, c)| c.lines.is_none()));
        assert!(d.ranges.find(code + 0x2010).is_some());
    }
}
