//! The file leaktrace shares with the recorder: created as a memfd, mapped
//! here and by each recording process (see `tracer_common::inprocess`).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{memfd_create, MemfdFlags};
use tracer_common::inprocess::{Layout, Shared, FOLLOW_FORKS};
use tracer_common::{ModuleKey, ModuleRows, UnwindRow};

use super::Library;

/// Ring and tables: `ring_bytes` of records (a power of two: twice
/// `--ring-size`; a recorder that finds it full waits) and the same rows
/// as the kernel's table. A memfd's pages are only allocated once written.
pub fn layout(ring_bytes: u64, rows: u32, pages: u32) -> Layout {
    Layout { ring_bytes, dir_slots: 8192, rows_capacity: u64::from(rows), pages_capacity: u64::from(pages) }
}

/// The ring is let go of by leaktrace in chunks of this many bytes.
pub const RING_CHUNK: u64 = 1 << 20;

pub struct SharedFile {
    file: File,
    map: MmapRaw,
    view: Shared,
    /// The library preloaded by `run` (None when leaktrace loaded it into a running process).
    library: Option<Library>,
}

impl SharedFile {
    /// For `run`: the file, and the library the command preloads.
    pub fn create(layout: &Layout, follow_forks: bool, max_frames: u32) -> std::io::Result<Self> {
        let library = Library::create()?;
        let file = File::from(memfd_create("leaktrace-shared", MemfdFlags::CLOEXEC)?);
        file.set_len(layout.total())?;
        Self::over(file, layout, follow_forks, max_frames, Some(library))
    }

    /// Over `file` (the target made it when leaktrace loads the recorder into
    /// a running process), `layout.total()` bytes long.
    pub fn over(file: File, layout: &Layout, follow_forks: bool, max_frames: u32, library: Option<Library>) -> std::io::Result<Self> {
        let map = MmapOptions::new().len(layout.total() as usize).map_raw(&file)?;
        let flags = if follow_forks { FOLLOW_FORKS } else { 0 };
        // SAFETY: a fresh zeroed mapping of the layout's size, ours alone until
        // a process is told its path; the view lives no longer than the map.
        let view = unsafe {
            Shared::init(map.as_mut_ptr(), layout, flags, max_frames, std::process::id());
            Shared::new(map.as_mut_ptr(), layout.total())
        }
        .ok_or_else(|| std::io::Error::other("the shared file's layout does not hold"))?;
        Ok(Self { file, map, view, library })
    }

    pub fn view(&self) -> &Shared {
        &self.view
    }

    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }

    /// What a command's environment gains: the library preloaded ahead of
    /// the user's own preloads (kept aside for the recorder to put back),
    /// and the shared file's path.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let Some(library) = &self.library else { return Vec::new() };
        let mut preload = OsString::from(library.path());
        let mut env = Vec::new();
        if let Some(user) = std::env::var_os("LD_PRELOAD") {
            if !user.is_empty() {
                preload.push(":");
                preload.push(&user);
            }
            env.push(("LEAKTRACE_LD_PRELOAD".into(), user));
        }
        env.push(("LD_PRELOAD".into(), preload));
        env.push(("LEAKTRACE_SHM".into(), self.path().into()));
        env
    }

    /// Whether `environ` (a process's /proc/PID/environ) preloads this
    /// session's recorder and names its file.
    pub fn is_in(&self, environ: &[u8]) -> bool {
        let shm = format!("LEAKTRACE_SHM={}", self.path());
        let Some(library) = self.library.as_ref().map(Library::path) else { return false };
        let mut vars = environ.split(|&b| b == 0);
        let preloads = |e: &[u8]| {
            e.strip_prefix(b"LD_PRELOAD=").is_some_and(|v| v.split(|&b| b == b':' || b == b' ').any(|p| p == library.as_bytes()))
        };
        let (mut named, mut preloaded) = (false, false);
        for e in vars.by_ref() {
            named |= e == shm.as_bytes();
            preloaded |= preloads(e);
        }
        named && preloaded
    }

    /// Publishes a module's rows for the recorders (the kernel's table holds the same).
    pub fn publish(&self, key: ModuleKey, rows: &[UnwindRow], pages: &[u32], at: (u32, u32)) -> bool {
        // SAFETY: leaktrace is the tables' one writer; the slots written here
        // were never published and are published only below.
        let (all_rows, all_pages) = unsafe { self.view.tables_mut() };
        let (first, pages_first) = (at.0 as usize, at.1 as usize);
        let (Some(r), Some(p)) = (all_rows.get_mut(first..first + rows.len()), all_pages.get_mut(pages_first..pages_first + pages.len()))
        else {
            return false;
        };
        r.copy_from_slice(rows);
        p.copy_from_slice(pages);
        let entry = ModuleRows { first: at.0, count: rows.len() as u32, pages_first: at.1, pages: pages.len() as u32 };
        self.view.publish(key, entry)
    }

    /// Drops leaktrace's own mapping of the ring's chunk `chunk` (of
    /// [`RING_CHUNK`] bytes), read to its end: the recorders' mappings keep the
    /// pages, and leaktrace's memory holds no more of the ring than it is reading.
    pub fn forget_chunk(&self, chunk: u64) {
        let h = self.view.header();
        let offset = h.ring_offset + (chunk * RING_CHUNK) % h.ring_bytes;
        // SAFETY: a page-aligned range inside our own mapping of the ring,
        // which leaktrace has read to its end; MADV_DONTNEED on a shared
        // mapping only drops this process's page table entries (the file keeps its data).
        unsafe {
            let _ = rustix::mm::madvise(
                self.map.as_mut_ptr().add(offset as usize).cast(),
                RING_CHUNK as usize,
                rustix::mm::Advice::LinuxDontNeed,
            );
        }
    }

    /// Stops every recorder: from now on they forward to the allocator only.
    pub fn disable(&self) {
        self.view.header().enabled.0.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}
