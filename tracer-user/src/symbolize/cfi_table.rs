//! Compiling a module's call-frame information (`.eh_frame`, else
//! `.debug_frame`) into the compact rows both walkers read: one row per change
//! of rule, keyed by file offset, with the rules the walkers implement
//! (CFA from rsp, from rbp, from the word at rbp+N, PLT stubs, signal
//! trampolines, the outermost frame), "unsupported" for any other rule, and
//! "none" where no CFI covers the code (frame pointers are tried there).

use gimli::{BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection, X86_64};
use object::{Object, ObjectSection, ObjectSegment};
use tracer_common::{CfaKind, UnwindRow};

type Reader<'a> = gimli::EndianSlice<'a, LittleEndian>;

/// A module's rows, sorted by offset, consecutive duplicates merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CfiTable {
    pub rows: Vec<UnwindRow>,
}

impl CfiTable {
    /// Builds the table of an ELF file's bytes; empty when it has no CFI.
    pub fn build(data: &[u8]) -> Result<Self, String> {
        let file = object::File::parse(data).map_err(|e| format!("not an ELF file: {e}"))?;
        // Executable PT_LOAD segments: (vaddr, file offset, size) to turn addresses into offsets.
        let segments: Vec<(u64, u64, u64)> = file.segments().map(|s| (s.address(), s.file_range().0, s.file_range().1)).collect();
        // Segment fields come from the file: no arithmetic on them may overflow.
        let to_offset = |addr: u64| {
            let (v, o, _) = segments.iter().find(|(v, _, n)| addr.checked_sub(*v).is_some_and(|d| d < *n))?;
            u32::try_from((addr - v).checked_add(*o)?).ok()
        };
        let mut raw = Vec::new();
        let addr_of = |name: &str| file.section_by_name(name).map(|s| s.address());
        let mut bases = BaseAddresses::default();
        if let Some(a) = addr_of(".text") {
            bases = bases.set_text(a);
        }
        if let Some(a) = addr_of(".got") {
            bases = bases.set_got(a);
        }
        if let Some(sec) = file.section_by_name(".eh_frame") {
            let bytes = sec.data().map_err(|e| e.to_string())?;
            let mut eh = EhFrame::new(bytes, LittleEndian);
            eh.set_address_size(8);
            collect(&eh, &bases.clone().set_eh_frame(sec.address()), &to_offset, &mut raw);
        }
        if raw.is_empty() {
            if let Some(sec) = file.section_by_name(".debug_frame") {
                let bytes = sec.data().map_err(|e| e.to_string())?;
                let mut df = DebugFrame::new(bytes, LittleEndian);
                df.set_address_size(8);
                collect(&df, &bases, &to_offset, &mut raw);
            }
        }
        let mut table = Self { rows: compact(raw) };
        // The entry point is the outermost frame even where no CFI says so
        // (the dynamic linker's _start and _dl_start_user).
        if let Some(entry) = to_offset(file.entry()).filter(|_| !table.rows.is_empty()) {
            if table.row_at(entry.into()).is_none_or(|r| r.kind == CfaKind::None as u8) {
                let at = table.rows.partition_point(|r| r.offset < entry);
                let end = UnwindRow { offset: entry, cfa: 0, rbp: 0, kind: CfaKind::End as u8 };
                match table.rows.get_mut(at) {
                    Some(r) if r.offset == entry => *r = end,
                    _ => table.rows.insert(at, end),
                }
            }
        }
        Ok(table)
    }

    /// The row in force at file offset `offset`.
    pub fn row_at(&self, offset: u64) -> Option<UnwindRow> {
        let i = self.rows.partition_point(|r| u64::from(r.offset) <= offset);
        self.rows[..i].last().copied()
    }
}

/// (offset, row, is the end of an FDE's range) before sorting.
type RawRow = (u32, UnwindRow, bool);

fn collect<'a, S: UnwindSection<Reader<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    to_offset: &dyn Fn(u64) -> Option<u32>,
    out: &mut Vec<RawRow>,
) where
    S::Offset: gimli::UnwindOffset<usize>,
{
    let mut ctx = Box::new(UnwindContext::new());
    let mut entries = section.entries(bases);
    while let Ok(Some(entry)) = entries.next() {
        let CieOrFde::Fde(partial) = entry else { continue };
        let Ok(fde) = partial.parse(S::cie_from_offset) else { continue };
        let signal = fde.cie().is_signal_trampoline();
        let Ok(mut table) = fde.rows(section, bases, &mut ctx) else { continue };
        let mut end = None;
        while let Ok(Some(row)) = table.next_row() {
            let Some(offset) = to_offset(row.start_address()) else { continue };
            let rule =
                if signal { UnwindRow { offset, cfa: 0, rbp: 0, kind: CfaKind::Signal as u8 } } else { convert(section, row, offset) };
            out.push((offset, rule, false));
            end = to_offset(row.end_address()).or(end);
        }
        if let Some(offset) = end {
            out.push((offset, UnwindRow { offset, cfa: 0, rbp: 0, kind: CfaKind::None as u8 }, true));
        }
    }
}

/// One CFI row as a walker rule; anything the walkers cannot do is "unsupported".
fn convert<'a, S: UnwindSection<Reader<'a>>>(section: &S, row: &gimli::UnwindTableRow<usize>, offset: u32) -> UnwindRow {
    let none = UnwindRow { offset, cfa: 0, rbp: 0, kind: CfaKind::Unsupported as u8 };
    match row.register(X86_64::RA) {
        RegisterRule::Undefined => return UnwindRow { kind: CfaKind::End as u8, ..none },
        RegisterRule::Offset(-8) => {}
        _ => return none,
    }
    let rbp = match row.register(X86_64::RBP) {
        RegisterRule::Undefined | RegisterRule::SameValue => 0,
        RegisterRule::Offset(o) if o % 8 == 0 && o != 0 => match i8::try_from(o / 8) {
            Ok(v) => v,
            Err(_) => return none,
        },
        _ => return none,
    };
    let eighths = |o: i64| (o % 8 == 0).then(|| i16::try_from(o / 8).ok()).flatten();
    let (kind, cfa) = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => (CfaKind::Rsp, eighths(*offset)),
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RBP => (CfaKind::Rbp, eighths(*offset)),
        CfaRule::Expression(e) => match e.get(section).ok().and_then(|x| expression(x.0.slice())) {
            Some((kind, cfa)) => (kind, Some(cfa)),
            None => (CfaKind::None, None),
        },
        _ => (CfaKind::None, None),
    };
    match cfa {
        Some(cfa) if kind != CfaKind::None => UnwindRow { offset, cfa, rbp, kind: kind as u8 },
        _ => none,
    }
}

/// The two CFA expressions compilers emit on x86-64: a realigned frame's
/// `DW_OP_breg6 N; DW_OP_deref` and the PLT's
/// `breg7 8; breg16 0; lit15; and; litK; ge; lit3; shl; plus`.
fn expression(b: &[u8]) -> Option<(CfaKind, i16)> {
    const BREG6: u8 = 0x76;
    const DEREF: u8 = 0x06;
    match b {
        [BREG6, rest @ ..] if rest.last() == Some(&DEREF) => {
            let mut r = gimli::EndianSlice::new(&rest[..rest.len() - 1], LittleEndian);
            let off = gimli::Reader::read_sleb128(&mut r).ok().filter(|o| r.is_empty() && o % 8 == 0)?;
            Some((CfaKind::DerefRbp, i16::try_from(off / 8).ok()?))
        }
        [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, lit @ 0x30..=0x4f, 0x2a, 0x33, 0x24, 0x22] => Some((CfaKind::Plt, i16::from(lit - 0x30))),
        _ => None,
    }
}

/// Sorted by offset; at one offset a rule wins over the end of another FDE's
/// range; consecutive equal rules merged.
fn compact(mut raw: Vec<RawRow>) -> Vec<UnwindRow> {
    // Ends sort first at an offset, so the rule pushed after them wins.
    raw.sort_by_key(|(offset, _, is_end)| (*offset, !*is_end));
    let mut by_offset: Vec<UnwindRow> = Vec::with_capacity(raw.len());
    for (offset, row, _) in raw {
        match by_offset.last_mut() {
            Some(last) if last.offset == offset => *last = row,
            _ => by_offset.push(row),
        }
    }
    by_offset.dedup_by(|next, kept| (next.kind, next.cfa, next.rbp) == (kept.kind, kept.cfa, kept.rbp));
    by_offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::ObjectSymbol;

    fn libc() -> (Vec<u8>, CfiTable) {
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let t = CfiTable::build(&data).unwrap();
        (data, t)
    }

    fn symbol_offset(data: &[u8], name: &str) -> u64 {
        let file = object::File::parse(data).unwrap();
        let sym = file.dynamic_symbols().find(|s| s.name() == Ok(name)).unwrap();
        // libc's text is mapped at the offset equal to its address.
        file.segments()
            .find(|s| sym.address() >= s.address() && sym.address() < s.address() + s.size())
            .map(|s| sym.address() - s.address() + s.file_range().0)
            .unwrap()
    }

    #[test]
    fn libc_compiles_to_sorted_rules() {
        let (data, t) = libc();
        assert!(t.rows.len() > 5_000, "{} rows", t.rows.len());
        assert!(t.rows.windows(2).all(|w| w[0].offset < w[1].offset), "sorted, one row per offset");
        // At malloc's first instruction the return address is on top of the stack.
        let at = t.row_at(symbol_offset(&data, "malloc")).unwrap();
        assert_eq!((CfaKind::from_u8(at.kind), at.cfa, at.rbp), (CfaKind::Rsp, 1, 0));
        // Signal trampolines and the outermost frames are recognised.
        let kinds: std::collections::HashSet<CfaKind> = t.rows.iter().map(|r| CfaKind::from_u8(r.kind)).collect();
        for k in [CfaKind::Rsp, CfaKind::Signal, CfaKind::End, CfaKind::None] {
            assert!(kinds.contains(&k), "{k:?} missing");
        }
    }

    #[test]
    fn expressions_are_recognised_exactly() {
        assert_eq!(expression(&[0x76, 0x78, 0x06]), Some((CfaKind::DerefRbp, -1)));
        assert_eq!(expression(&[0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22]), Some((CfaKind::Plt, 11)));
        assert_eq!(expression(&[0x76, 0x78, 0x06, 0x06]), None, "a double deref is not ours");
        assert_eq!(expression(&[0x76, 0x7c, 0x06]), None, "rbp-4 is no word of a stack");
        assert_eq!(expression(&[]), None);
    }

    #[test]
    fn ends_of_ranges_and_duplicates_compact() {
        let r = |offset, kind: CfaKind, cfa| UnwindRow { offset, cfa, rbp: 0, kind: kind as u8 };
        let raw = vec![
            (10, r(10, CfaKind::Rsp, 1), false),
            (14, r(14, CfaKind::Rsp, 1), false),
            (20, r(20, CfaKind::None, 0), true),
            (20, r(20, CfaKind::Rsp, 1), false),
            (30, r(30, CfaKind::None, 0), true),
        ];
        let rows = compact(raw);
        assert_eq!(rows, vec![r(10, CfaKind::Rsp, 1), r(30, CfaKind::None, 0)]);
    }

    #[test]
    fn garbage_is_an_error_and_no_cfi_is_empty() {
        assert!(CfiTable::build(b"not elf").is_err());
        assert_eq!(CfiTable::default().row_at(5), None);
    }
}
