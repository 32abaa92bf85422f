//! Reachability scans of a stopped process (reach/): at each process's
//! end under `run` (every thread at its exit stop, under the supervisor), on
//! demand under `attach` (every thread held still for the scan). The result
//! goes into the state, for the reports.

use crate::pipeline::Shared;
use crate::probes::AllocatorChoice;
use crate::process::pause::{self, PauseError};
use crate::reach::{self, Block, ScanInput, ScanResult};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Pause(#[from] PauseError),
    #[error("reading the registers of thread {0}: {1}")]
    Registers(u32, nix::Error),
    #[error("reading the memory map of pid {0}: {1}")]
    Maps(u32, std::io::Error),
}

/// Whether the allocator is glibc's malloc, whose heap the scan knows.
pub fn is_glibc(choice: Option<&AllocatorChoice>) -> bool {
    choice.and_then(|c| c.path.file_name()).and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libc.so") || n.starts_with("libc-"))
}

/// Scans `pid`, stopped with all of `threads` (ptrace-stopped by this
/// thread), once the pipeline has caught up with it. `sampled`: only some
/// blocks are traced (`--sample`), so the heap is never wholly known.
/// `explain`: `--explain-reach`, said on stderr.
pub fn scan_stopped(
    shared: &Shared,
    pid: u32,
    threads: &[u32],
    glibc: bool,
    sampled: bool,
    explain: Option<u64>,
) -> Result<ScanResult, ScanError> {
    let mut regs = Vec::with_capacity(threads.len());
    for &tid in threads {
        match reach::registers(tid) {
            Ok(t) => regs.push(t),
            // A thread killed meanwhile holds nothing.
            Err(nix::Error::ESRCH) => {}
            Err(e) => return Err(ScanError::Registers(tid, e)),
        }
    }
    shared.sync();
    let (blocks, fds, heap_known, ended) = {
        let state = shared.state();
        let heap_known = state.traced_since_exec(pid) && !sampled;
        (state.agg.outstanding_blocks(pid), state.agg.outstanding_fds(pid), heap_known, state.ended_threads(pid))
    };
    let (blocks, stacks) = blocks;
    // The same layout: collected in place.
    let blocks = blocks.into_iter().map(|(addr, size)| Block { addr, size }).collect();
    let result = reach::scan(ScanInput { pid, threads: &regs, ended: &ended, blocks, stacks, fds, glibc, heap_known, explain })
        .map_err(|e| ScanError::Maps(pid, e))?;
    for line in &result.explained {
        eprintln!("leaktrace: pid {pid} reaches {line}");
    }
    Ok(result)
}

/// What one scan of a running process saw, for the line `attach` prints.
#[derive(Debug, Clone, Copy)]
pub struct Scanned {
    pub blocks: u64,
    pub block_bytes: u64,
    pub scan_ms: f64,
    /// How long the process was held stopped.
    pub stopped_ms: f64,
}

/// Holds a running process still, scans it and lets it go; the result, with
/// how long the process was stopped, goes into the state. The pipeline
/// catches up first, so that the process is not held while it does.
pub fn scan_running(shared: &Shared, pid: u32, glibc: bool, sampled: bool, explain: Option<u64>) -> Result<Scanned, ScanError> {
    shared.sync();
    let (result, stopped) = pause::while_stopped(pid, |tids| scan_stopped(shared, pid, tids, glibc, sampled, explain))?;
    let mut result = result?;
    let stopped_ms = stopped.as_secs_f64() * 1e3;
    result.stopped_ms = Some(stopped_ms);
    let scanned = Scanned { blocks: result.blocks, block_bytes: result.work.block_bytes, scan_ms: result.scan_ms, stopped_ms };
    shared.state().add_scan(result);
    Ok(scanned)
}
