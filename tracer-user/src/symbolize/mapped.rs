//! A module file mapped into leaktrace's memory (never read whole), opened
//! through what the target really mapped: /proc/PID/map_files/START-END, or
//! the path inside the target's root. The path in /proc/PID/maps is a name
//! only: the file there may have been replaced, or be another mount
//! namespace's.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use memmap2::Mmap;
use nix::fcntl::OFlag;
use object::elf::{FileHeader64, ELF_NOTE_GNU, NT_GNU_BUILD_ID, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// Files mapped so far, by (device, inode, size, mtime seconds, mtime ns).
type OpenKey = (u64, u64, u64, i64, i64);
static OPEN: Mutex<BTreeMap<OpenKey, Weak<MappedFile>>> = Mutex::new(BTreeMap::new());
/// Entries kept before the dropped files' are swept out.
const PRUNE_AT: usize = 256;

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
        let file = std::fs::OpenOptions::new().read(true).custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()).open(path)?;
        Self::from_file(&file)
    }

    /// Like [`Self::open`], and without following a symbolic link at the last component.
    pub fn open_no_follow(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).bits())
            .open(path)?;
        Self::from_file(&file)
    }

    /// Maps an open regular file; a file already mapped (the same inode,
    /// size and modification time) shares its mapping: every process of a
    /// `--follow-forks` run maps the C library, and one mapping per image
    /// would grow without bound (in mappings, and in resident pages counted
    /// once per mapping).
    pub fn from_file(file: &File) -> std::io::Result<Arc<Self>> {
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if meta.len() == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "empty file"));
        }
        use std::os::unix::fs::MetadataExt;
        let key = (meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec());
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(shared);
        }
        let mapped = Self::map(file, &meta)?;
        if open.len() >= PRUNE_AT {
            open.retain(|_, w| w.strong_count() > 0);
        }
        open.insert(key, Arc::downgrade(&mapped));
        Ok(mapped)
    }

    fn map(file: &File, meta: &std::fs::Metadata) -> std::io::Result<Arc<Self>> {
        // SAFETY: the mapping is read-only and private. Its contents can change
        // under us only if someone writes to the file itself; every reader
        // (object, gimli) treats the bytes as untrusted input and
        // bounds-checks them, so changed bytes give wrong names, not undefined
        // behaviour. (A file truncated after mapping is the one case that
        // remains: the access faults, as for every mmap-based symbolizer.)
        let map = unsafe { Mmap::map(file)? };
        let build_id = note_build_id(&map).map(Box::from);
        Ok(Arc::new(Self { map, build_id, uid: std::os::unix::fs::MetadataExt::uid(meta) }))
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
    fn a_file_mapped_twice_shares_one_mapping_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"first").unwrap();
        std::fs::write(&b, b"first").unwrap();
        let one = MappedFile::open(&a).unwrap();
        // Through another name (a hard link, as /proc/PID/map_files is).
        std::fs::hard_link(&a, dir.path().join("link")).unwrap();
        assert!(Arc::ptr_eq(&one, &MappedFile::open(&dir.path().join("link")).unwrap()), "the same inode, one mapping");
        assert!(!Arc::ptr_eq(&one, &MappedFile::open(&b).unwrap()), "same bytes, another file");
        std::fs::write(&a, b"second, longer").unwrap();
        let changed = MappedFile::open(&a).unwrap();
        assert!(!Arc::ptr_eq(&one, &changed) && changed.bytes() == b"second, longer", "a rewritten file is mapped anew");
        drop((one, changed));
        assert_eq!(MappedFile::open(&a).unwrap().bytes(), b"second, longer", "dropped mappings are not handed out");
    }

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
