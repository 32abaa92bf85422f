//! The kernel walker's tables: each mapped module's CFI rows written into the
//! row array (through a shared memory mapping of the map: no system call per
//! row) and published in the module table keyed by the file's device and
//! inode, as the kernel sees them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, MapData};
use memmap2::{MmapMut, MmapOptions};
use tracer_common::{ModuleKey, ModuleRows, UnwindRow};

use aya::EbpfLoader;

use super::btf::KernelBtf;
use super::ProbeError;
use crate::symbolize::CfiTable;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("the unwind table is full ({0} rows): {1} is walked in userspace, from stack copies")]
    Full(u32, String),
    #[error("publishing the unwind table of {0}: {1}")]
    Publish(String, String),
    #[error("mapping the unwind row table: {0}")]
    Map(std::io::Error),
}

/// The kernel's dev_t encoding (MAJOR << 20 | MINOR) of a userspace st_dev.
pub fn kernel_dev(st_dev: u64) -> u64 {
    (u64::from(rustix::fs::major(st_dev)) << 20) | u64::from(rustix::fs::minor(st_dev))
}

/// The module key of an open file.
pub fn module_key(file: &File) -> std::io::Result<ModuleKey> {
    let st = rustix::fs::fstat(file)?;
    Ok(ModuleKey { dev: kernel_dev(st.st_dev), ino: st.st_ino })
}

/// How user stacks are walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UnwindMode {
    /// The modules' own CFI, walked in the kernel (frame pointers only where
    /// a module has no unwind information).
    #[default]
    Cfi,
    /// The kernel's frame-pointer walk: cheaper, wrong in code built without
    /// frame pointers (Debian's own libraries among it).
    #[value(name = "fp")]
    FramePointers,
}

/// Rows the kernel's table holds unless told otherwise: 8 MiB.
pub const DEFAULT_UNWIND_ROWS: u32 = 1 << 20;

/// Load-time settings of the walker: kernel structure offsets (from the
/// kernel's BTF), the mode, the row table's size.
pub struct UnwindSettings {
    offsets: [(&'static str, u32); 8],
    frame_pointers: u32,
    rows: u32,
}

impl UnwindSettings {
    pub fn new(mode: UnwindMode, rows: u32) -> Result<Self, ProbeError> {
        let btf = KernelBtf::load().map_err(|e| ProbeError::KernelFeature { what: "BTF", detail: e.to_string() })?;
        let mut offsets = [("", 0); 8];
        let members = [
            ("VMA_START", "vm_area_struct", "vm_start"),
            ("VMA_END", "vm_area_struct", "vm_end"),
            ("VMA_PGOFF", "vm_area_struct", "vm_pgoff"),
            ("VMA_FILE", "vm_area_struct", "vm_file"),
            ("FILE_INODE", "file", "f_inode"),
            ("INODE_INO", "inode", "i_ino"),
            ("INODE_SB", "inode", "i_sb"),
            ("SB_DEV", "super_block", "s_dev"),
        ];
        for (slot, (global, ty, member)) in offsets.iter_mut().zip(members) {
            let off = btf
                .member_offset(ty, member)
                .map_err(|e| ProbeError::KernelFeature { what: "a kernel structure member", detail: e.to_string() })?;
            *slot = (global, off);
        }
        Ok(Self { offsets, frame_pointers: u32::from(mode == UnwindMode::FramePointers), rows: rows.max(1) })
    }

    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, off) in &self.offsets {
            loader.override_global(name, off, true);
        }
        loader.override_global("UNWIND_FRAME_POINTERS", &self.frame_pointers, true);
        loader.map_max_entries("UNWIND_ROWS", self.rows);
    }
}

pub struct KernelTables {
    rows: MmapMut,
    /// The map behind `rows`.
    _map: MapData,
    capacity: u32,
    next: u32,
    modules: BpfHashMap<MapData, ModuleKey, ModuleRows>,
    /// Published modules, and those that could not be (said once).
    done: HashMap<ModuleKey, ModuleRows>,
    refused: HashSet<ModuleKey>,
}

impl KernelTables {
    /// Over the loaded object's row array (`capacity` rows, BPF_F_MMAPABLE) and module table.
    pub fn new(map: MapData, capacity: u32, modules: BpfHashMap<MapData, ModuleKey, ModuleRows>) -> Result<Self, TableError> {
        let bytes = capacity as usize * std::mem::size_of::<UnwindRow>();
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: the map is an mmapable BPF array of exactly `capacity`
        // rows that only this process writes; the kernel reads rows of a
        // module only after its entry is published, once they are written.
        let rows = unsafe { MmapOptions::new().len(bytes).map_mut(fd) }.map_err(TableError::Map)?;
        Ok(Self { rows, _map: map, capacity, next: 0, modules, done: HashMap::new(), refused: HashSet::new() })
    }

    /// Rows in use, and the capacity.
    pub fn usage(&self) -> (u32, u32) {
        (self.next, self.capacity)
    }

    pub fn is_loaded(&self, key: &ModuleKey) -> bool {
        self.done.contains_key(key) || self.refused.contains(key)
    }

    /// Loads the table of the file `name` opened as `file` (a path, or
    /// /proc/PID/map_files/… for what a process really mapped).
    pub fn load(&mut self, file: &File, name: &str) -> Result<ModuleKey, TableError> {
        let key = module_key(file).map_err(|e| TableError::Read(name.to_owned(), e))?;
        if self.is_loaded(&key) {
            return Ok(key);
        }
        let data = read_all(file).map_err(|e| TableError::Read(name.to_owned(), e))?;
        let table = CfiTable::build(&data).map_err(|e| TableError::Parse(name.to_owned(), e))?;
        self.publish(key, &table.rows, name)?;
        Ok(key)
    }

    pub fn load_path(&mut self, path: &Path) -> Result<ModuleKey, TableError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| TableError::Read(name.clone(), e))?;
        self.load(&file, &name)
    }

    /// Every executable file mapping of `pid`, as it mapped them. Returns what could not be loaded.
    pub fn load_process(&mut self, pid: u32) -> Vec<TableError> {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { return Vec::new() };
        let mut errors = Vec::new();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
            let path = f.nth(3).unwrap_or("");
            if perms.as_bytes().get(2) != Some(&b'x') || !path.starts_with('/') {
                continue;
            }
            let Ok(file) = File::open(format!("/proc/{pid}/map_files/{range}")) else { continue };
            if let Err(e) = self.load(&file, path) {
                errors.push(e);
            }
        }
        errors
    }

    fn publish(&mut self, key: ModuleKey, rows: &[UnwindRow], name: &str) -> Result<(), TableError> {
        let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        if count > self.capacity - self.next {
            self.refused.insert(key);
            return Err(TableError::Full(self.capacity, name.to_owned()));
        }
        let first = self.next;
        let size = std::mem::size_of::<UnwindRow>();
        let dst = &mut self.rows[first as usize * size..(first + count) as usize * size];
        for (chunk, row) in dst.chunks_exact_mut(size).zip(rows) {
            chunk[0..4].copy_from_slice(&row.offset.to_ne_bytes());
            chunk[4..6].copy_from_slice(&row.cfa.to_ne_bytes());
            chunk[6] = row.rbp as u8;
            chunk[7] = row.kind;
        }
        let entry = ModuleRows { first, count };
        self.modules.insert(key, entry, 0).map_err(|e| TableError::Publish(name.to_owned(), e.to_string()))?;
        self.next += count;
        self.done.insert(key, entry);
        Ok(())
    }
}

fn read_all(mut file: &File) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_take_the_kernel_encoding() {
        // The root file system's MAJOR:MINOR as the kernel prints it in mountinfo.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = info.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|f| f[4] == "/").unwrap();
        let (major, minor) = root[2].split_once(':').unwrap();
        let want = (major.parse::<u64>().unwrap() << 20) | minor.parse::<u64>().unwrap();
        let st = rustix::fs::stat("/").unwrap();
        assert_eq!(kernel_dev(st.st_dev), want);
    }
}
