//! The source around a site's line, read as the target would read it.
//!
//! The paths come from the target's DWARF, which the target's author
//! controls (`#line 1 "/etc/shadow"`), while leaktrace runs as root. So each
//! file is opened by a short-lived thread that first takes the target's
//! credentials (file-system uid and gid, supplementary groups: per thread on
//! Linux, set with the raw system calls, not glibc's process-wide wrappers),
//! and resolves the path inside the target's root directory
//! (/proc/PID/root, for a target in another mount namespace or a chroot).
//! The kernel then refuses what the target could not read.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::process::{Gid, Uid};

/// The largest source file read.
pub const MAX_SOURCE_BYTES: u64 = 8 << 20;
/// How long a read may take (a hung network file system) before it is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

/// The file-system uid and gid and the groups, from /proc/PID/status.
fn credentials(pid: u32) -> Option<Credentials> {
    credentials_in(&format!("/proc/{pid}/status"))
}

fn credentials_in(status: &str) -> Option<Credentials> {
    let status = std::fs::read_to_string(status).ok()?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::split_whitespace);
    let fs_id = |name: &str| field(name)?.nth(3)?.parse().ok(); // real, effective, saved, file system
    let groups = field("Groups:")?.map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
    Some(Credentials { uid: fs_id("Uid:")?, gid: fs_id("Gid:")?, groups })
}

/// Reads source files on behalf of one target. Without a target (or once it
/// cannot be inspected) nothing is read.
#[derive(Default)]
pub struct SourceReader {
    pid: u32,
    /// The target's root directory, opened while it ran.
    root: Option<OwnedFd>,
    /// Its working directory inside that root, for relative paths.
    cwd: Option<PathBuf>,
    creds: Option<Credentials>,
}

impl SourceReader {
    /// For the process `pid`, which must still be running.
    pub fn for_process(pid: u32) -> Self {
        let root = rustix::fs::open(format!("/proc/{pid}/root"), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        let mut reader = Self { pid, root, cwd, creds: None };
        reader.refresh();
        reader
    }

    /// Follows the target's credentials while it runs (a daemon dropping privileges).
    pub fn refresh(&mut self) {
        if self.root.is_some() {
            if let Some(c) = credentials(self.pid) {
                self.creds = Some(c);
            }
        }
    }

    /// The file's lines, or None when the target could not read it (or it is
    /// not a regular file of at most [`MAX_SOURCE_BYTES`]).
    pub fn read_lines(&self, file: &str) -> Option<Vec<String>> {
        let (root, creds) = (self.root.as_ref()?.try_clone().ok()?, self.creds.clone()?);
        let path = match (Path::new(file).is_absolute(), &self.cwd) {
            (true, _) => PathBuf::from(file),
            (false, Some(cwd)) => cwd.join(file),
            (false, None) => return None,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("leaktrace-source".into())
            .spawn(move || {
                let _ = tx.send(read_as(&root, &path, &creds));
            })
            .ok()?;
        let text = rx.recv_timeout(READ_TIMEOUT).ok()??;
        Some(text.lines().map(|l| l.trim_end().to_owned()).collect())
    }
}

/// On a thread of its own, which it leaves with the target's credentials
/// (it ends right after): opens `path` inside `root` and reads it.
fn read_as(root: &OwnedFd, path: &Path, creds: &Credentials) -> Option<String> {
    let groups: Vec<Gid> = creds.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let (uid, gid) = (Uid::from_raw(creds.uid), Gid::from_raw(creds.gid));
    // Already the target's (leaktrace and its `run` target as the same user):
    // nothing to change, and no CAP_SETGID needed for it.
    if credentials_in("/proc/thread-self/status").as_ref() != Some(creds) {
        // Groups and gid first: changing them needs the privileges the uid change drops.
        rustix::thread::set_thread_groups(&groups).ok()?;
        rustix::thread::set_thread_res_gid(gid, gid, gid).ok()?;
        rustix::thread::set_thread_res_uid(uid, uid, uid).ok()?;
    }
    let relative = path.strip_prefix("/").unwrap_or(path);
    let fd = rustix::fs::openat2(
        root,
        relative,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Up to one line of context on each side of `line`: (number, text).
pub fn context(lines: &[String], line: u32) -> Vec<(u32, String)> {
    let first = line.saturating_sub(1).max(1);
    (first..=line.saturating_add(1)).filter_map(|n| lines.get(n as usize - 1).map(|t| (n, t.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_file_system_ids_and_groups() {
        let c = credentials(std::process::id()).unwrap();
        assert_eq!(c.uid, rustix::process::getuid().as_raw());
        assert_eq!(c.gid, rustix::process::getgid().as_raw());
        assert!(credentials(0).is_none());
    }

    #[test]
    fn a_reader_without_a_target_reads_nothing() {
        assert_eq!(SourceReader::default().read_lines("/etc/hostname"), None);
    }

    #[test]
    fn devices_and_directories_are_not_sources() {
        let reader = SourceReader::for_process(std::process::id());
        assert!(reader.read_lines("/etc/hostname").is_some() || !Path::new("/etc/hostname").exists());
        assert_eq!(reader.read_lines("/dev/zero"), None);
        assert_eq!(reader.read_lines("/etc"), None);
    }

    #[test]
    fn context_stays_in_the_file() {
        let lines: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(context(&lines, 1), vec![(1, "a".into()), (2, "b".into())]);
        assert_eq!(context(&lines, 3), vec![(2, "b".into()), (3, "c".into())]);
        assert!(context(&lines, u32::MAX).is_empty());
    }
}
