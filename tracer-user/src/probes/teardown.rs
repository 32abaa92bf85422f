//! Taking the probes off without keeping anyone waiting, and leaving nothing
//! behind.
//!
//! Detaching a perf-event tracepoint or uprobe waits for RCU grace periods
//! under the kernel's event mutex: one after the other whichever threads
//! close them, tens of milliseconds each, and a process cannot finish
//! exiting before the closes it started are done. A link whose last
//! reference goes from the kernel's side instead (a bpffs pin removed) is
//! detached on the kernel's workers, where nobody waits. So each link is
//! pinned on a bpffs mounted in a mount namespace of the teardown thread's
//! own (no one else sees it), its descriptor closed, and the mount dropped:
//! the links go with it, their programs come off within a grace period, and
//! leaktrace exits at once, with no process left behind. Were leaktrace
//! killed half-way, the thread's namespace would die with it and take the
//! pins along. Where no such mount can be had (no CAP_SYS_ADMIN, a seccomp
//! filter), the links are closed here, concurrently: uprobe_multi links wait
//! in parallel, perf-event ones still one after the other.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::raw_trace_point::RawTracePointLink;
use aya::programs::trace_point::TracePointLink;
use aya::programs::uprobe::UProbeLink;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::probes::load::bpf_sys;

/// Where the private bpffs goes: a directory every kernel with bpf() has;
/// only the teardown thread's view of it changes.
const MOUNT_POINT: &str = "/sys/fs/bpf";

/// A link leaktrace holds: dropping it detaches its program.
pub trait HeldLink: Send {
    /// Pins the link at `path` and closes the descriptor; one that cannot
    /// be pinned is detached on the spot.
    fn pin_and_close(self: Box<Self>, path: &Path);
}

impl HeldLink for OwnedFd {
    fn pin_and_close(self: Box<Self>, path: &Path) {
        if let Ok(path) = CString::new(path.as_os_str().as_bytes()) {
            let _ = bpf_sys::pin(self.as_fd(), &path);
        }
    }
}

/// aya's links are pinned through aya; one without a link descriptor (a
/// kernel before bpf perf links) is detached by the conversion.
fn pin_aya<L>(link: L, path: &Path)
where
    FdLink: TryFrom<L>,
{
    if let Ok(link) = FdLink::try_from(link) {
        let _ = link.pin(path);
    }
}

impl HeldLink for TracePointLink {
    fn pin_and_close(self: Box<Self>, path: &Path) {
        pin_aya(*self, path)
    }
}

impl HeldLink for RawTracePointLink {
    fn pin_and_close(self: Box<Self>, path: &Path) {
        pin_aya(*self, path)
    }
}

impl HeldLink for UProbeLink {
    fn pin_and_close(self: Box<Self>, path: &Path) {
        pin_aya(*self, path)
    }
}

/// Takes `links` off (see the module's comment). Returns once their
/// descriptors are closed: at once through the private bpffs, otherwise
/// when the kernel has detached them all.
pub fn release(links: Vec<Box<dyn HeldLink>>) {
    if links.is_empty() {
        return;
    }
    // A thread of its own: unsharing the mount namespace is for good.
    let pinning = std::thread::Builder::new().name("leaktrace-teardown".into()).spawn(move || pin_all(links));
    let left = match pinning.map(|t| t.join()) {
        Ok(Ok(left)) => left,
        // No thread, or it panicked: whatever it held is dropped already.
        _ => Vec::new(),
    };
    close_concurrently(left);
}

/// Pins every link on a private bpffs and unmounts it; the links back when
/// no such bpffs could be mounted.
fn pin_all(links: Vec<Box<dyn HeldLink>>) -> Vec<Box<dyn HeldLink>> {
    if private_bpffs().is_err() {
        return links;
    }
    for (i, link) in links.into_iter().enumerate() {
        link.pin_and_close(&PathBuf::from(format!("{MOUNT_POINT}/{i}")));
    }
    // The pins were the last references: the kernel detaches the links on its workers.
    let _ = umount2(MOUNT_POINT, MntFlags::MNT_DETACH);
    Vec::new()
}

/// A bpffs of its own at [`MOUNT_POINT`], in a mount namespace of this thread's own.
fn private_bpffs() -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)?;
    // Nothing mounted here may propagate back to the machine's namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
    mount(Some("bpf"), MOUNT_POINT, Some("bpf"), MsFlags::empty(), None::<&str>)
}

/// Drops each link on a thread of its own, so that the waits that can overlap do.
fn close_concurrently(links: Vec<Box<dyn HeldLink>>) {
    std::thread::scope(|s| {
        for link in links {
            // Without a thread (resource limits) the link is dropped on this one.
            let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(link));
        }
    });
}
