//! One ELF module: its load segments, DWARF and symbols (through addr2line),
//! and its call-frame information for the unwinder.

use std::path::{Path, PathBuf};

use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindContext, UnwindSection};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// How the canonical frame address (CFA) of a frame is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfaRule {
    /// rsp + offset: frameless code (or a prologue).
    Sp(i64),
    /// rbp + offset: frame-pointer code.
    Bp(i64),
}

/// What the unwinder needs of one CFI row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindRow {
    pub cfa: CfaRule,
    /// Where the return address is saved, relative to the CFA.
    pub ra: i64,
    /// Where the caller's rbp is saved, relative to the CFA (None: unchanged).
    pub bp: Option<i64>,
}

struct Cfi {
    data: Vec<u8>,
    eh_frame: std::ops::Range<usize>,
    eh_frame_addr: u64,
    hdr: Option<(std::ops::Range<usize>, u64)>,
    text_addr: u64,
}

/// (function, file, line, column) of one (possibly inlined) frame.
pub type RawFrame = (Option<String>, Option<String>, Option<u32>, Option<u32>);

/// Where function names come from.
enum Names {
    /// DWARF lines and inlines, with the symbol table as fallback.
    Dwarf(Box<addr2line::Loader>),
    /// Symbols only, sorted by address: (address, size, name).
    Symbols(Vec<(u64, u64, String)>),
}

pub struct Module {
    /// (file offset, virtual address, size in file) of each PT_LOAD.
    segments: Vec<(u64, u64, u64)>,
    /// The file with the debug information (this one, or a separate one).
    debug_path: PathBuf,
    symbols_only: bool,
    /// Loaded on first use: unwinding needs only the CFI.
    names: std::cell::OnceCell<Option<Names>>,
    cfi: Option<Cfi>,
}

pub fn build_id_of(data: &[u8]) -> Option<Vec<u8>> {
    object::File::parse(data).ok()?.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// The largest module file read: a target may map any file executable, and
/// the whole file is read (the largest real binaries with debug information
/// are a few GiB).
pub const MAX_MODULE_BYTES: u64 = 4 << 30;

/// Reads at most [`MAX_MODULE_BYTES`] of `path`; a larger file is an error.
fn read_module(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut data = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    data.reserve_exact(file.metadata().map_or(0, |m| m.len().min(MAX_MODULE_BYTES)) as usize);
    file.take(MAX_MODULE_BYTES + 1).read_to_end(&mut data).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() as u64 > MAX_MODULE_BYTES {
        return Err(format!("{}: larger than {} GiB, not read", path.display(), MAX_MODULE_BYTES >> 30));
    }
    Ok(data)
}

const RSP: gimli::Register = gimli::X86_64::RSP;
const RBP: gimli::Register = gimli::X86_64::RBP;

impl Module {
    /// Parses `path`. `expected_build_id` is what was mapped; a different file
    /// on disk now (rebuilt) is an error, never a misreading. With
    /// `symbols_only` no DWARF is read (the C runtime's own modules: names from
    /// the symbol table, at a fraction of the memory).
    pub fn load(path: &Path, expected_build_id: Option<&[u8]>, symbols_only: bool) -> Result<Self, String> {
        let data = read_module(path)?;
        let file = object::File::parse(&*data).map_err(|e| format!("{}: not an ELF file: {e}", path.display()))?;
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        if let (Some(want), Some(have)) = (expected_build_id, build_id.as_deref()) {
            if want != have {
                return Err(format!("{} was rebuilt since it was mapped (build-id differs)", path.display()));
            }
        }
        let segments = file.segments().map(|s| (s.file_range().0, s.address(), s.file_range().1)).collect();
        let has_dwarf = file.section_by_name(".debug_info").is_some();
        let debug_path = if has_dwarf {
            path.to_path_buf()
        } else {
            separate_debug_file(path, &file, build_id.as_deref()).unwrap_or_else(|| path.to_path_buf())
        };
        let section =
            |name: &str| file.section_by_name(name).and_then(|s| s.file_range().map(|(o, n)| (o as usize..(o + n) as usize, s.address())));
        let text_addr = file.section_by_name(".text").map_or(0, |s| s.address());
        let cfi = section(".eh_frame").map(|(eh_frame, eh_frame_addr)| Cfi {
            eh_frame,
            eh_frame_addr,
            hdr: section(".eh_frame_hdr"),
            text_addr,
            data: Vec::new(),
        });
        let cfi = cfi.map(|mut c| {
            c.data = data;
            c
        });
        Ok(Self { segments, debug_path, symbols_only, names: std::cell::OnceCell::new(), cfi })
    }

    /// The ELF virtual address of a file offset.
    pub fn svma_of_offset(&self, offset: u64) -> Option<u64> {
        // Segment fields come from the file: no arithmetic on them may overflow
        // (nor on the address, which DWARF lookups take one past).
        let svma = |(o, v, _): &(u64, u64, u64)| v.checked_add(offset - o).filter(|a| *a < u64::MAX);
        self.segments.iter().find(|(o, _, n)| offset.checked_sub(*o).is_some_and(|d| d < *n)).and_then(svma)
    }

    fn names(&self) -> Option<&Names> {
        self.names
            .get_or_init(|| {
                if self.symbols_only {
                    let data = std::fs::read(&self.debug_path).ok()?;
                    let file = object::File::parse(&*data).ok()?;
                    // Several names per address (malloc, __libc_malloc,
                    // __GI___libc_malloc, or socket and __socket): the global
                    // one without leading underscores, the name callers use, wins.
                    let rank = |s: &object::Symbol| u8::from(!s.is_global()) * 2 + u8::from(s.name().is_ok_and(|n| n.starts_with('_')));
                    let mut syms: Vec<(u64, u8, u64, String)> = file
                        .symbols()
                        .chain(file.dynamic_symbols())
                        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
                        .filter_map(|s| Some((s.address(), rank(&s), s.size(), s.name().ok()?.to_owned())))
                        .collect();
                    syms.sort();
                    syms.dedup_by_key(|s| s.0);
                    Some(Names::Symbols(syms.into_iter().map(|(addr, _, size, name)| (addr, size, name)).collect()))
                } else {
                    addr2line::Loader::new(&self.debug_path).ok().map(|l| Names::Dwarf(Box::new(l)))
                }
            })
            .as_ref()
    }

    /// Frames at `svma`: innermost (inlined) first. Each: (function, file, line, column).
    pub fn frames(&self, svma: u64) -> Vec<RawFrame> {
        let debug = match self.names() {
            None => return Vec::new(),
            Some(Names::Symbols(syms)) => {
                let i = syms.partition_point(|s| s.0 <= svma);
                return syms[..i]
                    .last()
                    .filter(|s| s.1 == 0 || svma < s.0 + s.1)
                    .map(|s| vec![(Some(s.2.clone()), None, None, None)])
                    .unwrap_or_default();
            }
            Some(Names::Dwarf(d)) => d,
        };
        let mut out = Vec::new();
        if let Ok(mut iter) = debug.find_frames(svma) {
            while let Ok(Some(f)) = iter.next() {
                let function = f.function.as_ref().and_then(|n| n.demangle().ok()).map(|n| n.into_owned());
                let (file, line, column) = f.location.map_or((None, None, None), |l| (l.file.map(str::to_owned), l.line, l.column));
                out.push((function, file, line, column));
            }
        }
        if out.last().is_none_or(|f| f.0.is_none()) {
            if let Some(sym) = debug.find_symbol(svma) {
                let name = addr2line::demangle_auto(sym.into(), None).into_owned();
                match out.last_mut() {
                    Some(last) => last.0 = Some(name),
                    None => out.push((Some(name), None, None, None)),
                }
            }
        }
        out
    }

    /// The CFI row in force at `svma`.
    pub fn unwind_row(&self, svma: u64, ctx: &mut UnwindContext<usize>) -> Option<UnwindRow> {
        let cfi = self.cfi.as_ref()?;
        let eh = EhFrame::new(&cfi.data[cfi.eh_frame.clone()], LittleEndian);
        let mut bases = BaseAddresses::default().set_eh_frame(cfi.eh_frame_addr).set_text(cfi.text_addr);
        let row = match &cfi.hdr {
            Some((range, addr)) => {
                bases = bases.set_eh_frame_hdr(*addr);
                let hdr = EhFrameHdr::new(&cfi.data[range.clone()], LittleEndian).parse(&bases, 8).ok()?;
                match hdr.table() {
                    Some(table) => table.unwind_info_for_address(&eh, &bases, ctx, svma, EhFrame::cie_from_offset).ok()?.clone(),
                    None => eh.unwind_info_for_address(&bases, ctx, svma, EhFrame::cie_from_offset).ok()?.clone(),
                }
            }
            None => eh.unwind_info_for_address(&bases, ctx, svma, EhFrame::cie_from_offset).ok()?.clone(),
        };
        let cfa = match row.cfa() {
            gimli::CfaRule::RegisterAndOffset { register, offset } if *register == RSP => CfaRule::Sp(*offset),
            gimli::CfaRule::RegisterAndOffset { register, offset } if *register == RBP => CfaRule::Bp(*offset),
            _ => return None,
        };
        let ra = match row.register(gimli::X86_64::RA) {
            gimli::RegisterRule::Offset(o) => o,
            _ => return None,
        };
        let bp = match row.register(RBP) {
            gimli::RegisterRule::Offset(o) => Some(o),
            _ => None,
        };
        Some(UnwindRow { cfa, ra, bp })
    }
}

/// A separate debug file: by build-id under /usr/lib/debug/.build-id, then by
/// .gnu_debuglink next to the file, in .debug/, and under /usr/lib/debug.
fn separate_debug_file(path: &Path, file: &object::File, build_id: Option<&[u8]>) -> Option<PathBuf> {
    if let Some(id) = build_id.filter(|id| id.len() > 1) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let p = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
        if p.is_file() {
            return Some(p);
        }
    }
    let (name, crc) = file.gnu_debuglink().ok().flatten()?;
    let name = std::str::from_utf8(name).ok()?;
    let dir = path.parent()?;
    let candidates =
        [dir.join(name), dir.join(".debug").join(name), Path::new("/usr/lib/debug").join(dir.strip_prefix("/").unwrap_or(dir)).join(name)];
    candidates.into_iter().find(|c| std::fs::read(c).is_ok_and(|d| crc32(&d) == crc))
}

/// The CRC-32 .gnu_debuglink uses (IEEE, reflected).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn libc_has_symbols_and_cfi() {
        let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        let m = Module::load(libc, None, true).unwrap();
        let data = std::fs::read(libc).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let malloc = object::ObjectSymbolTable::symbols(&file.dynamic_symbol_table().unwrap()).find(|s| s.name() == Ok("malloc")).unwrap();
        let addr = malloc.address();
        let frames = m.frames(addr + 4);
        assert!(frames.last().and_then(|f| f.0.as_deref()).is_some_and(|n| n.contains("malloc")), "{frames:?}");
        let named = |name: &str| {
            let sym = object::ObjectSymbolTable::symbols(&file.dynamic_symbol_table().unwrap()).find(|s| s.name() == Ok(name)).unwrap();
            m.frames(sym.address()).last().and_then(|f| f.0.clone())
        };
        assert_eq!(named("socket").as_deref(), Some("socket"), "the exported name wins");
        let row = m.unwind_row(addr, &mut UnwindContext::new()).unwrap();
        assert_eq!(row, UnwindRow { cfa: CfaRule::Sp(8), ra: -8, bp: None }, "at entry the return address is on top of the stack");
    }

    #[test]
    fn a_rebuilt_file_is_refused() {
        let err = Module::load(Path::new("/lib/x86_64-linux-gnu/libc.so.6"), Some(b"not the same build"), false).err().unwrap();
        assert!(err.contains("rebuilt"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"\x7fELF garbage").unwrap();
        assert!(Module::load(f.path(), None, false).is_err());
    }
}
