//! Frames in JIT code, named from the runtime's own symbol files: the perf
//! map (`/tmp/perf-PID.map`) and a jitdump file the process mapped (V8's
//! debug records there give the line inside a function). Read at report
//! time and again as reports ask (every [`REFRESH`] for addresses already
//! named; what was appended, at once, for an address not named yet), so
//! code compiled late is named and a later entry for an address wins. V8's names become function, file, line and
//! column (see [`v8`]); the module of such a frame is [`JIT_MODULE`].

mod jitdump;
mod perfmap;
mod source;
mod table;
mod v8;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use source::JitSource;
pub use v8::is_runtime_script;

use super::Frame;
use jitdump::Jitdump;
use perfmap::PerfMap;
use table::Names;

/// The module shown for frames a JIT symbol file named.
pub const JIT_MODULE: &str = "[jit]";

/// Files are read again after this long, for addresses they already name.
const REFRESH: Duration = Duration::from_millis(100);

/// The perf map's path is tried again after this long for an address not named yet.
const MISS_REFRESH: Duration = Duration::from_millis(1);

/// A frame of JavaScript code (a JIT symbol file named its function and script).
pub fn is_javascript(f: &Frame) -> bool {
    &*f.module == JIT_MODULE && f.file.is_some()
}

/// A frame in anonymous executable memory that nothing named: JIT code without a symbol file.
pub fn is_unnamed_jit(f: &Frame) -> bool {
    f.function.is_none() && matches!(&*f.module, "[anonymous]" | "[unknown]")
}

struct ProcessJit {
    source: JitSource,
    names: Names,
    perf: PerfMap,
    dump: Jitdump,
    /// When the perf map was last opened again at its path.
    refreshed: Option<Instant>,
}

impl ProcessJit {
    /// Reads what the files gained; `reopen`: the perf map now at its path.
    fn refresh(&mut self, warnings: &mut Vec<String>, reopen: bool) {
        if reopen {
            self.refreshed = Some(Instant::now());
        }
        let mut warn = |w: String| {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        };
        if let Err(e) = self.perf.refresh(&self.source, &mut self.names, reopen) {
            warn(format!("pid {}: {e}", self.source.pid));
        }
        if self.perf.malformed > 0 {
            warn(format!("pid {}: {} has lines that are not `START SIZE NAME` (skipped)", self.source.pid, self.source.perf_map_name()));
        }
        if let Some((path, file)) = &self.source.jitdump {
            if let Err(e) = self.dump.refresh(file, &mut self.names) {
                warn(format!("pid {}: {}: {e}", self.source.pid, path.display()));
            }
        }
    }

    fn lookup(&self, module: &Arc<str>, addr: u64, probe: u64) -> Option<Frame> {
        let (start, code) = self.dump.ranges.find(probe).or_else(|| self.perf.ranges.find(probe))?;
        let n = &code.name;
        // A debug record's position is the instruction's (the call, for a
        // return address); the name's is the function's start. V8 gives
        // code inlined from another script that script's position, which
        // would put this function in it: its start is said instead.
        let inside = code.line_at(probe).filter(|l| n.file.as_ref().is_none_or(|f| *f == l.file));
        let (file, line, column, line_is_function_start) = match inside {
            Some(l) => (Some(l.file.clone()), Some(l.line), Some(l.column), false),
            None => (n.file.clone(), n.line, n.column, n.line.is_some()),
        };
        Some(Frame {
            address: addr,
            module: module.clone(),
            module_offset: probe - start,
            function: Some(n.function.clone()),
            symbol_offset: Some(addr - start),
            file,
            line,
            column,
            inlined: false,
            inferred: false,
            executable: false,
            line_is_function_start,
        })
    }
}

/// The JIT code names of every process met, kept for the symbolizer's life.
pub struct JitNames {
    processes: HashMap<(u32, u64), ProcessJit>,
    module: Arc<str>,
    warnings: Vec<String>,
}

impl Default for JitNames {
    fn default() -> Self {
        Self { processes: HashMap::new(), module: Arc::from(JIT_MODULE), warnings: Vec::new() }
    }
}

impl JitNames {
    /// The frame of `addr` (its instruction at `probe`) in a process's JIT
    /// code, when the process's symbol files name it.
    pub fn frame(&mut self, source: &JitSource, addr: u64, probe: u64) -> Option<Frame> {
        let p = self.processes.entry((source.pid, source.start_ticks)).or_insert_with(|| ProcessJit {
            source: source.clone(),
            names: Names::default(),
            perf: PerfMap::default(),
            dump: Jitdump::default(),
            refreshed: None,
        });
        p.source.merge(source);
        let age = p.refreshed.map(|t| t.elapsed());
        if age.is_none_or(|a| a >= REFRESH) {
            p.refresh(&mut self.warnings, true);
        } else if let Some(f) = p.lookup(&self.module, addr, probe) {
            return Some(f);
        } else {
            // Not named yet: what was appended to the open files, and the
            // path again unless it was just tried.
            p.refresh(&mut self.warnings, age.is_some_and(|a| a >= MISS_REFRESH));
        }
        p.lookup(&self.module, addr, probe)
    }

    /// Symbol files that were there but could not be read.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
