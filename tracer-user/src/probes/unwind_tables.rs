//! The kernel walker's tables: each mapped module's CFI rows written into the
//! row array (through a shared memory mapping of the pages written: no
//! system call per row) and published in the module table keyed by the file's device and
//! inode, as the kernel sees them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use aya::Ebpf;
use memmap2::MmapOptions;
use tracer_common::unwind::page_index;
use tracer_common::{ModuleKey, ModuleRows, UnwindRow};

use crate::inprocess::SharedFile;
use crate::probes::errors::ProbeError;
use crate::probes::load::object;
use crate::probes::load::unwind_settings::PAGES_PER_ROW;
use crate::symbolize::{CfiTable, MappedFile, ProcessMaps};

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
    tracer_common::unwind::kernel_dev(rustix::fs::major(st_dev), rustix::fs::minor(st_dev))
}

/// The module key of an open file.
pub fn module_key(file: &File) -> std::io::Result<ModuleKey> {
    let st = rustix::fs::fstat(file)?;
    Ok(ModuleKey { dev: kernel_dev(st.st_dev), ino: st.st_ino })
}

/// An mmapable BPF array, written through a mapping of just the pages an
/// append touches (mapping the whole array would make every page of it
/// resident in leaktrace at once: the kernel maps them all up front).
struct Mapped {
    map: MapData,
    /// Bytes per element.
    elem: usize,
    capacity: u32,
    next: u32,
}

impl Mapped {
    fn new(map: MapData, capacity: u32, elem: usize) -> Self {
        Self { map, elem, capacity, next: 0 }
    }

    /// Room for `n` more elements.
    fn fits(&self, n: usize) -> bool {
        n <= (self.capacity - self.next) as usize
    }

    /// Appends `bytes` (whole elements); returns the first index.
    fn append(&mut self, bytes: &[u8]) -> Result<u32, TableError> {
        let first = self.next;
        if !bytes.is_empty() {
            let start = first as usize * self.elem;
            let page = rustix::param::page_size();
            let window = start - start % page;
            let fd = self.map.fd().as_fd().as_raw_fd();
            // SAFETY: a window of an mmapable BPF array (in bounds: `fits`
            // checked the elements) that only this process writes; the kernel
            // reads a module's elements only after the module is published,
            // once they are written.
            let mut mem = unsafe { MmapOptions::new().offset(window as u64).len(start - window + bytes.len()).map_mut(fd) }
                .map_err(TableError::Map)?;
            mem[start - window..].copy_from_slice(bytes);
        }
        self.next += (bytes.len() / self.elem) as u32;
        Ok(first)
    }
}

pub struct KernelTables {
    rows: Mapped,
    pages: Mapped,
    modules: BpfHashMap<MapData, ModuleKey, ModuleRows>,
    /// Published modules, and those that could not be (said once).
    done: HashMap<ModuleKey, ModuleRows>,
    refused: HashSet<ModuleKey>,
    /// The in-process recorders' copy of the tables, at the same indices.
    mirror: Option<Arc<SharedFile>>,
}

impl KernelTables {
    /// Over the loaded object's row and page arrays (`capacity` rows,
    /// BPF_F_MMAPABLE, pages a quarter of that) and module table.
    pub fn new(rows: MapData, pages: MapData, capacity: u32, modules: BpfHashMap<MapData, ModuleKey, ModuleRows>) -> Self {
        Self {
            rows: Mapped::new(rows, capacity, ROW),
            pages: Mapped::new(pages, (capacity / PAGES_PER_ROW).max(1), 8),
            modules,
            done: HashMap::new(),
            refused: HashSet::new(),
            mirror: None,
        }
    }

    /// Over the tables of the loaded object, taken out of it (`capacity`
    /// rows, as the object was loaded with).
    pub fn take_from(ebpf: &mut Ebpf, capacity: u32) -> Result<Self, ProbeError> {
        let mut array = |name: &'static str| match object::take_map(ebpf, name)? {
            Map::Array(a) => Ok(a),
            _ => Err(ProbeError::MapKind { name, source: None }),
        };
        let (rows, pages) = (array("UNWIND_ROWS")?, array("UNWIND_PAGES")?);
        Ok(Self::new(rows, pages, capacity, object::map(ebpf, "MODULES")?))
    }

    /// Publishes every table for the in-process recorders too, from now on.
    pub fn mirror_into(&mut self, file: Arc<SharedFile>) {
        self.mirror = Some(file);
    }

    /// Rows in use, and the capacity.
    pub fn usage(&self) -> (u32, u32) {
        (self.rows.next, self.rows.capacity)
    }

    pub fn is_loaded(&self, key: &ModuleKey) -> bool {
        self.done.contains_key(key) || self.refused.contains(key)
    }

    /// Loads the table of the file `name` opened as `file`.
    pub fn load(&mut self, file: &File, name: &str) -> Result<ModuleKey, TableError> {
        let key = module_key(file).map_err(|e| TableError::Read(name.to_owned(), e))?;
        if !self.is_loaded(&key) {
            // Mapped, not read: a module may be hundreds of MB.
            let data = MappedFile::from_file(file).map_err(|e| TableError::Read(name.to_owned(), e))?;
            self.publish_file(key, &data, name)?;
        }
        Ok(key)
    }

    pub fn load_path(&mut self, path: &Path) -> Result<ModuleKey, TableError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| TableError::Read(name.clone(), e))?;
        self.load(&file, &name)
    }

    /// Every executable file mapping of `pid`, as it mapped them (the same
    /// files the symbolizer reads). Returns what could not be loaded.
    pub fn load_process(&mut self, pid: u32) -> Vec<TableError> {
        let Ok(maps) = ProcessMaps::capture(pid) else { return Vec::new() };
        let mut errors = Vec::new();
        for m in maps.mappings() {
            let (Some(path), Some(file)) = (&m.path, &m.file) else { continue };
            // /proc/PID/maps names the file as the kernel's walker sees it: its super block's device and inode.
            let key = ModuleKey { dev: ((m.file_id.dev >> 32) << 20) | (m.file_id.dev & 0xffff_ffff), ino: m.file_id.inode };
            if !self.is_loaded(&key) {
                if let Err(e) = self.publish_file(key, file, &path.display().to_string()) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    fn publish_file(&mut self, key: ModuleKey, data: &MappedFile, name: &str) -> Result<(), TableError> {
        let table = CfiTable::build(data.bytes()).map_err(|e| {
            self.refused.insert(key);
            TableError::Parse(name.to_owned(), e)
        })?;
        self.publish(key, &table.rows, name)
    }

    fn publish(&mut self, key: ModuleKey, rows: &[UnwindRow], name: &str) -> Result<(), TableError> {
        if !self.rows.fits(rows.len()) {
            self.refused.insert(key);
            return Err(TableError::Full(self.rows.capacity, name.to_owned()));
        }
        let bytes: Vec<u8> = rows.iter().flat_map(row_bytes).collect();
        let first = self.rows.append(&bytes)?;
        // Without room for its page index, a module's rows are searched whole.
        let index = page_index(rows);
        let (pages_first, pages) = if self.pages.fits(index.len()) {
            // Array elements take 8 bytes each in the map, whatever their size.
            let bytes: Vec<u8> = index.iter().flat_map(|&i| u64::from(i).to_ne_bytes()).collect();
            (self.pages.append(&bytes)?, index.len() as u32)
        } else {
            (0, 0)
        };
        let entry = ModuleRows { first, count: rows.len() as u32, pages_first, pages };
        if let Some(m) = &self.mirror {
            let index = if pages > 0 { &index[..] } else { &[] };
            if !m.publish(key, rows, index, (first, pages_first)) {
                return Err(TableError::Publish(name.to_owned(), "the in-process recorders' module directory is full".into()));
            }
        }
        self.modules.insert(key, entry, 0).map_err(|e| TableError::Publish(name.to_owned(), e.to_string()))?;
        self.done.insert(key, entry);
        Ok(())
    }
}

const ROW: usize = std::mem::size_of::<UnwindRow>();

/// A row as the kernel reads it (its #[repr(C)] layout).
fn row_bytes(r: &UnwindRow) -> [u8; ROW] {
    let mut b = [0u8; ROW];
    b[0..4].copy_from_slice(&r.offset.to_ne_bytes());
    b[4..6].copy_from_slice(&r.cfa.to_ne_bytes());
    b[6] = r.rbp as u8;
    b[7] = r.kind;
    b
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
