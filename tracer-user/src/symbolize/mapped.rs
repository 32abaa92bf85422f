//! A module file mapped into leaktrace's memory (never read whole), opened
//! through what the target really mapped: /proc/PID/map_files/START-END, or
//! the path inside the target's root. The path in /proc/PID/maps is a name
//! only: the file there may have been replaced, or be another mount
//! namespace's.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use object::elf::{FileHeader64, ELF_NOTE_GNU, NT_GNU_BUILD_ID, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// Identity of a file as the kernel lists it in /proc/PID/maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

/// A mapped regular file. Clones share one mapping.
pub struct MappedFile {
    map: Mmap,
    build_id: Option<Box<[u8]>>,
    /// Owner of the file.
    uid: u32,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile").field("len", &self.map.len()).field("build_id", &self.build_id).finish()
    }
}

impl MappedFile {
    /// Maps a regular file. Opened without blocking (a FIFO planted at the
    /// path must not stall leaktrace) and refused unless it is a regular file.
    pub fn open(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
        Self::from_file(&file)
    }

    /// Like [`Self::open`], and without following a symbolic link at the last component.
    pub fn open_no_follow(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW).open(path)?;
        Self::from_file(&file)
    }

    pub fn from_file(file: &File) -> std::io::Result<Arc<Self>> {
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if meta.len() == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "empty file"));
        }
        // SAFETY: the mapping is read-only and private. Its contents can change
        // under us only if someone writes to the file itself; every reader
        // (object, gimli) treats the bytes as untrusted input and
        // bounds-checks them, so changed bytes give wrong names, not undefined
        // behaviour. (A file truncated after mapping is the one case that
        // remains: the access faults, as for every mmap-based symbolizer.)
        let map = unsafe { Mmap::map(file)? };
        let build_id = note_build_id(&map).map(Box::from);
        Ok(Arc::new(Self { map, build_id, uid: std::os::unix::fs::MetadataExt::uid(&meta) }))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The GNU build-id, from the PT_NOTE segments (the first page of the file).
    pub fn build_id(&self) -> Option<&[u8]> {
        self.build_id.as_deref()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The owner of the file (debug files found next to a module must share it).
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

/// The GNU build-id of a 64-bit ELF image, read from its program headers'
/// notes only: the section headers (at the end of the file) are not touched.
pub fn note_build_id(data: &[u8]) -> Option<&[u8]> {
    let header = FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    for ph in header.program_headers(endian, data).ok()? {
        if ph.p_type(endian) != PT_NOTE {
            continue;
        }
        let Ok(Some(mut notes)) = ph.notes(endian, data) else { continue };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == ELF_NOTE_GNU && note.n_type(endian) == NT_GNU_BUILD_ID {
                return Some(note.desc());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_build_id_comes_from_its_note() {
        let libc = MappedFile::open(Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let via_sections = object::Object::build_id(&object::File::parse(&*data).unwrap()).unwrap().unwrap();
        assert_eq!(libc.build_id(), Some(via_sections));
        assert_eq!(libc.len(), data.len());
    }

    #[test]
    fn only_regular_files_are_mapped() {
        assert!(MappedFile::open(Path::new("/dev/null")).is_err());
        assert!(MappedFile::open(Path::new("/proc/self")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(MappedFile::open(&fifo).is_err(), "a FIFO neither blocks nor maps");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/libc.so.6", &link).unwrap();
        assert!(MappedFile::open_no_follow(&link).is_err());
        assert!(note_build_id(b"\x7fELF short").is_none());
    }
}
