//! One executable mapping of a process, with the file it really mapped.

use std::path::PathBuf;
use std::sync::Arc;

use super::mapped::{FileId, MappedFile};

/// One executable mapping of /proc/PID/maps.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The path the kernel shows: a name (bytes, any encoding), not the file.
    pub path: Option<PathBuf>,
    pub file_id: FileId,
    /// GNU build-id of the file actually mapped.
    pub build_id: Option<Vec<u8>>,
    /// The file actually mapped (through /proc/PID/map_files), when it could be opened.
    pub file: Option<Arc<MappedFile>>,
}

impl Mapping {
    /// The file mapped here: the one the target mapped when it could be
    /// opened, else the file at its path if it is the same build.
    pub fn open_file(&self) -> Option<Arc<MappedFile>> {
        if let Some(f) = &self.file {
            return Some(f.clone());
        }
        let file = MappedFile::open(self.path.as_deref()?).ok()?;
        match (&self.build_id, file.build_id()) {
            (Some(want), have) if have != Some(want.as_slice()) => None,
            _ => Some(file),
        }
    }
}

impl PartialEq for Mapping {
    fn eq(&self, o: &Self) -> bool {
        (self.start, self.end, self.offset, &self.path, self.file_id, &self.build_id)
            == (o.start, o.end, o.offset, &o.path, o.file_id, &o.build_id)
    }
}

impl Eq for Mapping {}
