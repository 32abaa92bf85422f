//! The files a process has mapped, each reachable as the process maps it:
//! through `/proc/PID/map_files/`, which opens the very inode mapped, never
//! by resolving the path the kernel shows again. A library replaced on disk
//! (a package upgrade), a deleted executable (a redeploy), a file in the
//! process's own mount namespace or chroot, and a name that is not UTF-8
//! are then reached like any other.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::probes::errors::ProbeError;
use crate::symbolize::ProcessMaps;

/// One mapped file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedObject {
    /// The name the kernel shows (bytes, as mapped; " (deleted)" removed): for people and for name matching.
    pub shown: PathBuf,
    /// Where leaktrace opens it, and where probes on it are attached.
    pub open: PathBuf,
}

/// The files behind `pid`'s executable mappings, in address order, each once.
pub fn mapped_objects(pid: u32) -> Result<Vec<MappedObject>, ProbeError> {
    let path = PathBuf::from(format!("/proc/{pid}/maps"));
    let text = std::fs::read(&path).map_err(|source| ProbeError::Unreadable { path, source })?;
    let maps = ProcessMaps::parse_bytes(&text).map_err(|source| ProbeError::Mappings { pid, source })?;
    let mut seen = HashSet::new();
    Ok(maps
        .mappings()
        .iter()
        .filter(|m| seen.insert(m.file_id))
        .filter_map(|m| {
            let shown = m.path.clone()?;
            Some(MappedObject { shown, open: PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)) })
        })
        .collect())
}

/// The executable of `pid`: its name, and the file itself through `/proc/PID/exe`.
pub fn executable(pid: u32) -> Result<MappedObject, ProbeError> {
    let link = PathBuf::from(format!("/proc/{pid}/exe"));
    let name = std::fs::read_link(&link).map_err(|source| ProbeError::Unreadable { path: link.clone(), source })?;
    Ok(MappedObject { shown: without_deleted(name), open: link })
}

/// The name of a file deleted since it was mapped, as it was.
pub fn without_deleted(name: PathBuf) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = name.as_os_str().as_bytes();
    match bytes.strip_suffix(b" (deleted)") {
        Some(kept) => PathBuf::from(std::ffi::OsString::from_vec(kept.to_vec())),
        None => name,
    }
}
