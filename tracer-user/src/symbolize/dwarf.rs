//! DWARF over mapped files: uncompressed sections are read in place from the
//! mapping, compressed ones (Debian's debug files) are inflated once; only
//! the sections naming frames are loaded (no location lists, macros or CFI).
//! addr2line then parses units lazily, as addresses are asked for.

use std::ops::Deref;
use std::sync::Arc;

use gimli::{EndianReader, RunTimeEndian, SectionId};
use object::{Object, ObjectSection};

use super::mapped::MappedFile;

/// A compressed section larger than this once inflated is not loaded.
const MAX_INFLATED: u64 = 1 << 30;

enum Storage {
    Mapped(Arc<MappedFile>),
    Inflated(Vec<u8>),
}

/// Bytes of one DWARF section: a range of the mapping, or inflated data.
#[derive(Clone)]
pub struct Bytes {
    storage: Arc<Storage>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} at {})", self.len, self.start)
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let all: &[u8] = match &*self.storage {
            Storage::Mapped(m) => m.bytes(),
            Storage::Inflated(v) => v,
        };
        &all[self.start..self.start + self.len]
    }
}

// SAFETY: the bytes live in a memory mapping or a vector owned by the Arc;
// neither moves nor changes while any clone holds the Arc, so every deref of
// a value and of its clones yields the same address.
unsafe impl stable_deref_trait::StableDeref for Bytes {}
// SAFETY: as above; a clone shares the Arc and the range.
unsafe impl stable_deref_trait::CloneStableDeref for Bytes {}

pub type Reader = EndianReader<RunTimeEndian, Bytes>;
pub type Context = addr2line::Context<Reader>;

/// Sections addr2line needs to name frames and lines.
const WANTED: &[SectionId] = &[
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
];

fn section(file: &Arc<MappedFile>, obj: &object::File, id: SectionId) -> Bytes {
    let empty = Bytes { storage: Arc::new(Storage::Inflated(Vec::new())), start: 0, len: 0 };
    if !WANTED.contains(&id) {
        return empty;
    }
    let Some(sec) = obj.section_by_name(id.name()) else { return empty };
    let Ok(range) = sec.compressed_file_range() else { return empty };
    if range.format == object::CompressionFormat::None {
        let (start, len) = (range.offset as usize, range.uncompressed_size as usize);
        if start.checked_add(len).is_some_and(|end| end <= file.len()) {
            return Bytes { storage: Arc::new(Storage::Mapped(file.clone())), start, len };
        }
        return empty;
    }
    if range.uncompressed_size > MAX_INFLATED {
        return empty;
    }
    match sec.uncompressed_data() {
        Ok(data) => {
            let v = data.into_owned();
            let len = v.len();
            Bytes { storage: Arc::new(Storage::Inflated(v)), start: 0, len }
        }
        Err(_) => empty,
    }
}

/// A context over `file`'s DWARF, None when it has none.
pub fn load(file: &Arc<MappedFile>) -> Option<Context> {
    let obj = object::File::parse(file.bytes()).ok()?;
    obj.section_by_name(".debug_info")?;
    let endian = if obj.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    let dwarf = gimli::Dwarf::load(|id| Ok::<_, gimli::Error>(Reader::new(section(file, &obj, id), endian))).ok()?;
    Context::from_dwarf(dwarf).ok()
}

/// (function, file, line, column) of one (possibly inlined) frame.
pub type RawFrame = (Option<String>, Option<String>, Option<u32>, Option<u32>);

/// Frames at `svma`, innermost (inlined) first.
pub fn frames(ctx: &Context, svma: u64) -> Vec<RawFrame> {
    let mut out = Vec::new();
    if let Ok(mut iter) = ctx.find_frames(svma).skip_all_loads() {
        while let Ok(Some(f)) = iter.next() {
            let function = f.function.as_ref().and_then(|n| n.demangle().ok()).map(|n| n.into_owned());
            let (file, line, column) = f.location.map_or((None, None, None), |l| (l.file.map(str::to_owned), l.line, l.column));
            out.push((function, file, line, column));
        }
    }
    out
}

/// The compilation directory of the unit holding `svma`.
pub fn comp_dir(ctx: &Context, svma: u64) -> Option<String> {
    let unit = ctx.find_dwarf_and_unit(svma).skip_all_loads()?;
    let dir = unit.comp_dir.as_ref()?;
    use gimli::Reader as _;
    Some(dir.to_string_lossy().ok()?.into_owned())
}
