//! Hanging one loaded program on points of a file in one process, the two
//! ways the kernel offers: one uprobe_multi (or uprobe session) link over
//! every point, or aya's perf-event uprobes, one a point. Shared by the
//! allocator's, the dynamic linker's and libuv's probes. Out: the links,
//! each detaching its probes when dropped.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya::programs::uprobe::{UProbeAttachPoint, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use crate::probes::errors::{attach_err, ProbeError};
use crate::probes::load::bpf_sys;
use crate::probes::load::link_mode::LinkMode;
use crate::probes::load::object::program;
use crate::probes::load::programs::Program;
use crate::probes::teardown::HeldLink;

/// A link of `mode` (`attach_type` is its program's) putting `prog` on
/// every point of `file`, (file offset, cookie), in process `pid` alone.
/// `flags` is BPF_F_UPROBE_MULTI_RETURN or 0; `what` names the probes for an error.
pub(crate) fn multi_link(
    prog: &OwnedFd,
    (mode, attach_type): (LinkMode, u32),
    file: &Path,
    points: &[(u64, u64)],
    (pid, flags): (u32, u32),
    what: impl FnOnce() -> String,
) -> Result<Box<dyn HeldLink>, ProbeError> {
    let path = CString::new(file.as_os_str().as_bytes()).map_err(|e| ProbeError::PathWithNul(file.to_path_buf(), e))?;
    let (offsets, cookies): (Vec<u64>, Vec<u64>) = points.iter().copied().unzip();
    bpf_sys::uprobe_multi_link(prog.as_fd(), attach_type, &path, &offsets, &cookies, pid, flags)
        .map(|fd| Box::new(fd) as Box<dyn HeldLink>)
        .map_err(|source| ProbeError::Link { what: what(), link: mode.name(), source })
}

/// aya's perf-event uprobes: `prog` (loaded) on each point of `file`, in
/// process `pid` alone.
pub(crate) fn perf_links<'a>(
    ebpf: &mut Ebpf,
    prog: Program,
    file: &Path,
    pid: u32,
    points: impl IntoIterator<Item = UProbeAttachPoint<'a>>,
    what: impl Fn() -> String,
) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or(ProbeError::PidZero)?);
    let p: &mut UProbe = program(ebpf, prog)?;
    let mut links: Vec<Box<dyn HeldLink>> = Vec::new();
    for at in points {
        let id = p.attach(at, file, scope).map_err(attach_err(what()))?;
        links.push(Box::new(p.take_link(id).map_err(attach_err(what()))?));
    }
    Ok(links)
}
