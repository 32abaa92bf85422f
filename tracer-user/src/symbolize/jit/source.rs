//! Where a process's JIT runtime names its code, found while the process
//! exists and usable after it is gone: `/tmp/perf-PID.map` inside the
//! process's own root (its mount namespace, its pid there), and a jitdump
//! file the process mapped (`jit-PID.dump`, which V8 writes with `--perf-prof`).
//! Both are read at report time, so code compiled late is named.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::super::Mapping;
use nix::fcntl::OFlag;

/// A process's JIT symbol files. Clones share the open descriptors.
#[derive(Debug, Clone)]
pub struct JitSource {
    pub(super) pid: u32,
    /// The pid the process knows itself by (its innermost pid namespace):
    /// the one in the perf map's name.
    pub(super) ns_pid: u32,
    /// Real and effective uid: a perf map must belong to one of them or to root.
    pub(super) uids: [u32; 2],
    /// Start time in clock ticks after boot (with the pid, the process's identity).
    pub(super) start_ticks: u64,
    /// When it started: an older perf map belongs to an earlier process with this pid.
    pub(super) started: Option<SystemTime>,
    /// The process's root directory.
    root: Root,
    /// Its perf map, opened while it existed: what is read when the path no
    /// longer leads to it (a container's private /tmp, gone with the process).
    perf_map: Option<Arc<File>>,
    /// The jitdump file it mapped, kept open.
    pub(super) jitdump: Option<(PathBuf, Arc<File>)>,
}

impl PartialEq for JitSource {
    fn eq(&self, o: &Self) -> bool {
        (self.pid, self.start_ticks, self.jitdump.as_ref().map(|j| &j.0)) == (o.pid, o.start_ticks, o.jitdump.as_ref().map(|j| &j.0))
    }
}

impl Eq for JitSource {}

/// `jit-1234.dump`: the jitdump file name perf's convention gives.
fn is_jitdump(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.strip_prefix("jit-").and_then(|r| r.strip_suffix(".dump")).is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

impl JitSource {
    /// Captured with the process's maps, while it exists.
    pub fn capture(pid: u32, mappings: &[Mapping]) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().collect::<Vec<_>>());
        let ns_pid = field("NSpid:").and_then(|v| v.last().and_then(|p| p.parse().ok())).unwrap_or(pid);
        let uid = field("Uid:").unwrap_or_default();
        let uid = |i: usize| uid.get(i).and_then(|u| u.parse().ok()).unwrap_or(0);
        let start_ticks = start_ticks(pid)?;
        let root = Root::of(pid);
        let mut source = Self {
            pid,
            ns_pid,
            uids: [uid(0), uid(1)],
            start_ticks,
            started: started_at(start_ticks),
            root,
            perf_map: None,
            jitdump: None,
        };
        source.perf_map = source.open_perf_map_path().ok().map(Arc::new);
        source.find_jitdump(pid, mappings);
        Some(source)
    }

    fn find_jitdump(&mut self, pid: u32, mappings: &[Mapping]) {
        for m in mappings {
            let Some(path) = m.path.as_deref().filter(|p| is_jitdump(p)) else { continue };
            let open = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
                .open(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end));
            if let Ok(file) = open.and_then(|f| if f.metadata()?.is_file() { Ok(f) } else { Err(std::io::ErrorKind::InvalidInput.into()) })
            {
                self.jitdump = Some((path.to_path_buf(), Arc::new(file)));
                return;
            }
        }
    }

    /// What a later capture of the same process adds (a jitdump mapped
    /// since, the perf map as it was then).
    pub fn merge(&mut self, newer: &JitSource) {
        if self.pid != newer.pid || self.start_ticks != newer.start_ticks {
            return;
        }
        if self.jitdump.is_none() {
            self.jitdump = newer.jitdump.clone();
        }
        if newer.perf_map.is_some() {
            self.perf_map = newer.perf_map.clone();
        }
    }

    /// The perf map's path as the process names it.
    pub fn perf_map_name(&self) -> String {
        format!("/tmp/perf-{}.map", self.ns_pid)
    }

    /// The perf map at its path, else the one opened while the process existed.
    pub(super) fn open_perf_map(&self) -> std::io::Result<Arc<File>> {
        match self.open_perf_map_path() {
            Ok(f) => Ok(Arc::new(f)),
            Err(e) => self.perf_map.clone().ok_or(e),
        }
    }

    /// Opens the perf map inside the process's root: the last component is
    /// never a symbolic link, nothing resolves outside that root, and a FIFO
    /// planted there cannot block.
    fn open_perf_map_path(&self) -> std::io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let name = self.perf_map_name();
        let fd = match &self.root {
            Root::Ours => rustix::fs::openat2(rustix::fs::CWD, name.as_str(), flags, Mode::empty(), ResolveFlags::NO_MAGICLINKS)?,
            Root::Kept(root) => rustix::fs::openat2(
                root.as_ref(),
                name.trim_start_matches('/'),
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )?,
            Root::Gone => return Err(std::io::ErrorKind::NotFound.into()),
        };
        Ok(File::from(fd))
    }
}

/// A process's root directory: leaktrace's own (most processes: the same
/// root and mount namespace), or another (a container's), kept open so it
/// can be read after the process is gone.
#[derive(Debug, Clone)]
enum Root {
    Ours,
    Kept(Arc<OwnedFd>),
    Gone,
}

impl Root {
    fn of(pid: u32) -> Self {
        let Ok(fd) = rustix::fs::open(format!("/proc/{pid}/root"), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        else {
            return Self::Gone;
        };
        let id = |st: rustix::fs::Stat| (st.st_dev, st.st_ino);
        let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
        let same_ns = ns(&pid.to_string()).is_some_and(|theirs| Some(theirs) == ns("self"));
        match (rustix::fs::fstat(&fd), rustix::fs::stat("/")) {
            (Ok(theirs), Ok(ours)) if same_ns && id(theirs) == id(ours) => Self::Ours,
            _ => Self::Kept(Arc::new(fd)),
        }
    }
}

/// Field 22 of /proc/PID/stat (after the command, which may hold spaces and parentheses).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Wall-clock time of a start `ticks` after boot.
fn started_at(ticks: u64) -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks.saturating_mul(1000) / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitdump_names_follow_perfs_convention() {
        assert!(is_jitdump(Path::new("/srv/app/jit-1234.dump")));
        assert!(!is_jitdump(Path::new("/srv/app/jit-.dump")));
        assert!(!is_jitdump(Path::new("/srv/app/jit-12a.dump")));
        assert!(!is_jitdump(Path::new("/usr/lib/libjit.so")));
    }

    #[test]
    fn a_live_process_is_identified_by_pid_and_start() {
        let me = std::process::id();
        let a = JitSource::capture(me, &[]).unwrap();
        let b = JitSource::capture(me, &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.ns_pid, me, "the test runs in the initial pid namespace");
        let started = a.started.unwrap();
        assert!(started <= SystemTime::now() && started > SystemTime::now() - Duration::from_secs(3600), "{started:?}");
        assert_eq!(a.perf_map_name(), format!("/tmp/perf-{me}.map"));
    }
}
