//! Finishing stacks in userspace: where the kernel's walk stopped and attached
//! a copy of the stack, the modules' own CFI tables (built here, cached per
//! file) carry the walk on. Owned by the event pipeline, apart from the
//! report's [`super::Symbolizer`], so neither waits for the other.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tracer_common::decode::RawStack;
use tracer_common::unwind::Regs;
use tracer_common::StopReason;

use super::unwind::{walk, Code, StackCopy};
use super::{CfiTable, ProcessMaps};

/// A stack after userspace has done what it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub frames: Vec<u64>,
    /// Bit i: `frames[i]` is an exact pc.
    pub exact: u32,
    pub stop: StopReason,
}

/// A mapped file: its path and build-id as mapped.
type FileKey = (PathBuf, Option<Vec<u8>>);

#[derive(Default)]
pub struct Unwinder {
    /// None: the file could not be read (or is another build now).
    tables: HashMap<FileKey, Option<Arc<CfiTable>>>,
}

impl Unwinder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kernel's stack, continued over its copy when it carries one, to at most `max` frames.
    pub fn complete(&mut self, maps: &ProcessMaps, raw: &RawStack, max: usize) -> Completed {
        let n = raw.frames.len();
        let mut done = Completed { frames: raw.frames.clone(), exact: raw.exact, stop: raw.stop };
        if raw.copy.is_empty() || n == 0 || n >= max {
            return done;
        }
        let start_exact = raw.exact & (1 << (n - 1)) != 0;
        let mem = StackCopy { base: raw.sp, words: &raw.copy };
        let (found, stop) = walk(Regs { pc: raw.pc, sp: raw.sp, bp: raw.bp }, start_exact, &mem, max - n, |addr| self.code_at(maps, addr));
        for (i, f) in found.iter().enumerate() {
            if f.exact && n + i < 32 {
                done.exact |= 1 << (n + i);
            }
        }
        done.frames.extend(found.iter().map(|f| f.pc));
        done.stop = stop;
        done
    }

    fn code_at(&mut self, maps: &ProcessMaps, addr: u64) -> Code {
        let Some(m) = maps.find(addr) else { return Code::Unknown(StopReason::NoMapping) };
        let Some(path) = m.path.clone() else { return Code::FramePointers };
        let key = (path, m.build_id.clone());
        let table =
            self.tables.entry(key).or_insert_with(|| m.open_file().and_then(|f| CfiTable::build(f.bytes()).ok()).map(Arc::new)).clone();
        match table {
            None => Code::Unknown(StopReason::NoTable),
            Some(t) if t.rows.is_empty() => Code::FramePointers,
            Some(t) => Code::Rule(t.row_at(addr - m.start + m.offset)),
        }
    }
}
