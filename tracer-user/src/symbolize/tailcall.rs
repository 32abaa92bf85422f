//! Frames elided by tail calls. A function that ends in `jmp malloc`
//! (`return calloc(..)` at -O2) leaves no frame: its caller's return address
//! follows the callee's. The call instruction before each return address
//! names the function that was called; when that is not the function of the
//! frame below it, the called function tail-called its way there, and is put
//! back as an inferred frame — at the line of its tail jump when the jump can
//! be found in its code, with every function of a chain of tail jumps
//! between (`a: jmp b`, `b: jmp c`).

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

    /// The jumps out of the function at `start` (tail calls, `jmp rel32` and
    /// `jmp rel8`): (where the jump is, where it goes).
    fn jumps_out(&self, start: u64) -> Vec<(u64, u64)> {
        let Some((s, size, _)) = self.function_at(start) else { return Vec::new() };
        let (s, end) = (*s, *s + (*size).max(1));
        let Some(code) = self.bytes(s, (*size as usize).min(1 << 16)) else { return Vec::new() };
        let at = |i: usize| s + i as u64;
        let rel32 = |i: usize| Some(i64::from(i32::from_le_bytes(code.get(i + 1..i + 5)?.try_into().ok()?)));
        (0..code.len())
            .filter_map(|i| match code[i] {
                0xe9 => Some((at(i), at(i + 5).wrapping_add_signed(rel32(i)?))),
                0xeb => Some((at(i), at(i + 2).wrapping_add_signed(i64::from(*code.get(i + 1)? as i8)))),
                _ => None,
            })
            .filter(|&(_, dest)| dest < s || dest >= end)
            .collect()
    }

    /// The chain of tail jumps from the function at `start` to a function
    /// `is_target` accepts, through functions each reached by the jump
    /// before: the jumps' addresses, outermost first. Only what the
    /// instructions show: every link a jump to a function's first instruction.
    fn tail_chain(&self, start: u64, is_target: &dyn Fn(&[String]) -> bool, seen: &mut Vec<u64>) -> Option<Vec<u64>> {
        let jumps = self.jumps_out(start);
        if let Some(&(at, _)) = jumps.iter().find(|(_, dest)| is_target(&self.names_of_destination(*dest))) {
            return Some(vec![at]);
        }
        if seen.len() >= MAX_CHAIN {
            return None;
        }
        seen.push(start);
        for (at, dest) in jumps {
            if seen.contains(&dest) || self.names_at(dest).is_empty() {
                continue;
            }
            if let Some(mut rest) = self.tail_chain(dest, is_target, seen) {
                rest.insert(0, at);
                return Some(rest);
            }
        }
        None
    }
}

/// Functions a chain of tail calls is followed through.
const MAX_CHAIN: usize = 8;

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

    /// The runtime addresses of the tail jumps from the local function
    /// `start` of module `m` to a function `is_target` accepts, outermost
    /// first (several when the first jumps to another that jumps on); else
    /// the function's entry alone.
    pub fn inferred_addresses(&mut self, m: &Mapping, start: u64, is_target: &dyn Fn(&[String]) -> bool) -> Vec<u64> {
        let Some(code) = self.code(m) else { return Vec::new() };
        let chain = code.tail_chain(start, is_target, &mut Vec::new()).unwrap_or_else(|| vec![start]);
        let runtime = |at: u64| {
            let (v, o, _) = code.segments.iter().find(|(v, _, n)| at >= *v && at < v + n)?;
            Some(at - v + o - m.offset + m.start)
        };
        chain.into_iter().filter_map(runtime).collect()
    }
}
