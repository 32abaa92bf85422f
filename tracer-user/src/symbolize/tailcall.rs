//! Frames elided by tail calls. A function that ends in `jmp malloc`
//! (`return calloc(..)` at -O2) leaves no frame: its caller's return address
//! follows the callee's. The call instruction before each return address
//! names the function that was called; when that is not the function of the
//! frame below it, the called function tail-called its way there, and is put
//! back as an inferred frame — at the line of its tail jump when the jump can
//! be found in its code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable, RelocationTarget, SymbolKind};

use super::{MappedFile, Mapping, ProcessMaps};

/// What a call instruction called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    /// A function of the same module, by its address there (an SVMA).
    Local(u64),
    /// An imported function, by its symbol name (through the PLT or the GOT).
    Imported(String),
}

struct Code {
    data: Arc<MappedFile>,
    /// (vaddr, file offset, size) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
    /// Virtual address ranges of the PLT sections.
    plt: Vec<(u64, u64)>,
    /// GOT slot → imported symbol.
    got: HashMap<u64, String>,
    /// Function symbols: (start, size, name), sorted; aliases are separate entries.
    functions: Vec<(u64, u64, String)>,
}

/// The modules' code, read on demand, by (path, build-id).
#[derive(Default)]
pub struct Calls {
    modules: HashMap<(PathBuf, Option<Vec<u8>>), Option<Code>>,
}

fn open(m: &Mapping) -> Option<Code> {
    let data = m.open_file()?;
    let file = object::File::parse(data.bytes()).ok()?;
    let segments = file.segments().map(|s| (s.address(), s.file_range().0, s.file_range().1)).collect();
    let plt =
        file.sections().filter(|s| s.name().is_ok_and(|n| n.starts_with(".plt"))).map(|s| (s.address(), s.address() + s.size())).collect();
    let mut got = HashMap::new();
    if let Some(relocs) = file.dynamic_relocations() {
        for (slot, r) in relocs {
            if let RelocationTarget::Symbol(i) = r.target() {
                if let Some(name) =
                    file.dynamic_symbol_table().and_then(|t| t.symbol_by_index(i).ok()).and_then(|s| s.name().ok().map(str::to_owned))
                {
                    got.insert(slot, name);
                }
            }
        }
    }
    let mut functions: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0 && s.is_definition())
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
        .collect();
    // Aliases share an address: all are kept (a call by one name reaches the others).
    functions.sort();
    functions.dedup();
    drop(file);
    Some(Code { data, segments, plt, got, functions })
}

fn plain(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

impl Code {
    fn bytes(&self, vaddr: u64, len: usize) -> Option<Vec<u8>> {
        let (v, o, _) = self.segments.iter().find(|(v, _, n)| vaddr >= *v && vaddr + len as u64 <= v + n)?;
        let at = usize::try_from(vaddr - v + o).ok()?;
        self.data.bytes().get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
    }

    fn svma(&self, m: &Mapping, addr: u64) -> Option<u64> {
        let offset = addr.checked_sub(m.start)? + m.offset;
        self.segments.iter().find(|(_, o, n)| offset >= *o && offset < o + n).map(|(v, o, _)| offset - o + v)
    }

    /// The function symbol whose extent holds `svma`.
    fn function_at(&self, svma: u64) -> Option<&(u64, u64, String)> {
        let i = self.functions.partition_point(|f| f.0 <= svma);
        self.functions[..i].last().filter(|f| svma < f.0 + f.1.max(1))
    }

    /// The import a PLT stub at `svma` jumps through.
    fn plt_import(&self, svma: u64) -> Option<String> {
        let code = self.bytes(svma, 16)?;
        // endbr64 / bnd prefixes come first; the stub's jmp *disp32(%rip) is what matters.
        let at = code.windows(2).position(|w| w == [0xff, 0x25])?;
        let disp = i32::from_le_bytes(code.get(at + 2..at + 6)?.try_into().ok()?);
        let slot = (svma + at as u64 + 6).wrapping_add_signed(i64::from(disp));
        self.got.get(&slot).map(|n| plain(n).to_owned())
    }

    /// What the call instruction ending at `ret` (an SVMA) called.
    fn callee(&self, ret: u64) -> Option<Callee> {
        let code = self.bytes(ret.checked_sub(6)?, 6)?;
        if code[1] == 0xe8 {
            let target = ret.wrapping_add_signed(i64::from(i32::from_le_bytes(code[2..6].try_into().ok()?)));
            if self.plt.iter().any(|(s, e)| target >= *s && target < *e) {
                return self.plt_import(target).map(Callee::Imported);
            }
            return Some(Callee::Local(target));
        }
        if code[0] == 0xff && code[1] == 0x15 {
            let slot = ret.wrapping_add_signed(i64::from(i32::from_le_bytes(code[2..6].try_into().ok()?)));
            return self.got.get(&slot).map(|n| Callee::Imported(plain(n).to_owned()));
        }
        None
    }

    /// Every name of the function starting at `start` (aliases too).
    fn names_at(&self, start: u64) -> Vec<String> {
        let i = self.functions.partition_point(|f| f.0 < start);
        self.functions[i..].iter().take_while(|f| f.0 == start).map(|f| plain(&f.2).to_owned()).collect()
    }

    /// The names a jump or call to `dest` reaches: a PLT stub's import, else the local function.
    fn names_of_destination(&self, dest: u64) -> Vec<String> {
        if self.plt.iter().any(|(s, e)| dest >= *s && dest < *e) {
            self.plt_import(dest).into_iter().collect()
        } else {
            self.names_at(dest)
        }
    }

    /// Where the function at `start` tail-jumps to a function `is_target` accepts.
    fn tail_jump(&self, start: u64, is_target: &dyn Fn(&[String]) -> bool) -> Option<u64> {
        let (s, size, _) = self.function_at(start)?;
        let code = self.bytes(*s, (*size as usize).min(1 << 16))?;
        (0..code.len().saturating_sub(4)).find_map(|i| {
            if code[i] != 0xe9 {
                return None;
            }
            let rel = i32::from_le_bytes(code[i + 1..i + 5].try_into().ok()?);
            let dest = (*s + i as u64 + 5).wrapping_add_signed(i64::from(rel));
            is_target(&self.names_of_destination(dest)).then_some(*s + i as u64)
        })
    }
}

impl Calls {
    fn code(&mut self, m: &Mapping) -> Option<&Code> {
        let key = (m.path.clone()?, m.build_id.clone());
        self.modules.entry(key).or_insert_with(|| open(m)).as_ref()
    }

    /// What the call before return address `ret` called.
    pub fn callee_before(&mut self, maps: &ProcessMaps, ret: u64) -> Option<(Mapping, Callee)> {
        let m = maps.find(ret.checked_sub(1)?)?.clone();
        let code = self.code(&m)?;
        let callee = code.callee(code.svma(&m, ret)?)?;
        Some((m, callee))
    }

    /// The names of what a call reached.
    pub fn names_of(&mut self, caller: &Mapping, callee: &Callee) -> Vec<String> {
        match callee {
            Callee::Imported(name) => vec![name.clone()],
            Callee::Local(start) => self.code(caller).map(|c| c.names_at(*start)).unwrap_or_default(),
        }
    }

    /// Every name of the function running at `pc` (aliases too).
    pub fn names_at(&mut self, maps: &ProcessMaps, pc: u64) -> Vec<String> {
        let Some(m) = maps.find(pc).cloned() else { return Vec::new() };
        let Some(code) = self.code(&m) else { return Vec::new() };
        match code.svma(&m, pc).and_then(|s| code.function_at(s)) {
            Some(f) => code.names_at(f.0),
            None => Vec::new(),
        }
    }

    /// The runtime address of the tail jump inside the local function
    /// `start` of module `m` to a function `is_target` accepts, else of the
    /// function's entry.
    pub fn inferred_address(&mut self, m: &Mapping, start: u64, is_target: &dyn Fn(&[String]) -> bool) -> Option<u64> {
        let code = self.code(m)?;
        let at = code.tail_jump(start, is_target).unwrap_or(start);
        let (v, o, _) = code.segments.iter().find(|(v, _, n)| at >= *v && at < v + n)?;
        Some(at - v + o - m.offset + m.start)
    }
}
