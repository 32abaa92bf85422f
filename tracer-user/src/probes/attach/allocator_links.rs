//! The allocator's probes on one process: the programs load/allocator_programs.rs
//! loaded, hung on the allocator discovery chose (discovery/allocator.rs),
//! each probe point with a cookie naming its allocator function. Out: the
//! links, which the process's [`ProcessLinks`](super::links::ProcessLinks) holds.

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint};
use aya::Ebpf;
use tracer_common::AllocFn;

use super::uprobe::{multi_link, perf_links};
use crate::probes::discovery::allocator::AllocatorChoice;
use crate::probes::errors::ProbeError;
use crate::probes::load::allocator_programs::LoadedAllocator;
use crate::probes::load::bpf_sys::{ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION};
use crate::probes::load::link_mode::LinkMode;
use crate::probes::teardown::HeldLink;

/// BPF_F_UPROBE_MULTI_RETURN: the link's probes fire at return.
const UPROBE_MULTI_RETURN: u32 = 1;

/// Hangs the loaded programs on `pid`'s allocator. Return probes go first: an
/// entry whose return probe is not yet in place would leave a call in flight.
pub(crate) fn attach(
    ebpf: &mut Ebpf,
    loaded: &mut LoadedAllocator,
    alloc: &AllocatorChoice,
    pid: u32,
) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let entries: Vec<(u64, u64)> = alloc.functions.iter().map(|f| (f.entry_offset, f.func as u64)).collect();
    let returns: Vec<(u64, u64)> =
        alloc.functions.iter().filter(|f| f.func != AllocFn::Free).map(|f| (f.file_offset, f.func as u64)).collect();
    let what = |side: &str| format!("{side} probes on {} (pid {pid})", alloc.path.display());
    let mut links = Vec::new();
    match loaded {
        LoadedAllocator::Raw { mode, entry, exit } => {
            let attach_type = if *mode == LinkMode::Session { ATTACH_UPROBE_SESSION } else { ATTACH_UPROBE_MULTI };
            if let Some(exit) = exit {
                links.push(multi_link(exit, (*mode, attach_type), &alloc.file, &returns, (pid, UPROBE_MULTI_RETURN), || what("return"))?);
            }
            links.push(multi_link(entry, (*mode, attach_type), &alloc.file, &entries, (pid, 0), || what("entry"))?);
        }
        LoadedAllocator::Perf { entry, exit, .. } => {
            let (entry, exit) = (*entry, *exit);
            loaded.load_perf(ebpf)?;
            let sides = exit.map(|x| (x, &returns, "return")).into_iter().chain([(entry, &entries, "entry")]);
            for (prog, points, side) in sides {
                let at = points.iter().map(|&(offset, cookie)| UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(offset),
                    cookie: Some(cookie),
                });
                links.extend(perf_links(ebpf, prog, &alloc.file, pid, at, || what(side))?);
            }
        }
    }
    Ok(links)
}
