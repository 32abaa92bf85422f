//! How much of the kernel's 512-byte BPF stack each program can use: the
//! frames of its deepest call chain, global functions and the callbacks it
//! hands to `bpf_loop` and `bpf_find_vma` included, added up the way the
//! verifier adds them (each frame rounded up to 32 bytes). Kernels without
//! private BPF stacks refuse a program over 512; leaktrace keeps every
//! program within [`BUDGET`] so that a compiler's or a kernel's variation
//! does not tip one over.
//!
//! Read from the object itself, with no kernel involved: the calls are
//! linked the way the loader links them (aya-obj), each function's frame is
//! the lowest stack address its instructions reach (every stack address in
//! BPF code is the frame pointer r10 plus a constant).

use aya_obj::generated::bpf_insn;

use super::object::OBJECT;

/// The verifier's limit for one call chain.
pub const KERNEL_LIMIT: u32 = 512;
/// What leaktrace allows itself.
pub const BUDGET: u32 = 416;

const FRAME_POINTER: u8 = 10;
/// `src_reg` of a call to another BPF function.
const PSEUDO_CALL: u8 = 1;
/// `src_reg` of a 64-bit load of a function's address (a callback).
const PSEUDO_FUNC: u8 = 4;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;

/// A program's deepest call chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub program: String,
    /// Each function along the chain with its frame as the verifier rounds it.
    pub chain: Vec<(String, u32)>,
    /// The chain's frames added up.
    pub bytes: u32,
    /// Instructions loaded for the program (its functions linked in).
    pub instructions: usize,
}

impl Budget {
    /// `fd_new 224 > lt_walk 64 > ...`
    pub fn chain_text(&self) -> String {
        self.chain.iter().map(|(name, bytes)| format!("{name} {bytes}")).collect::<Vec<_>>().join(" > ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("the eBPF object does not parse: {0}")]
    Parse(String),
    #[error("linking the object's calls failed: {0}")]
    Link(String),
    #[error("program {0} has no code or no function records (built without BTF?)")]
    NoCode(String),
    #[error("a call in {program} leads outside its code (instruction {at})")]
    BadCall { program: String, at: usize },
}

/// Every program of `object`, by name.
pub fn budgets(object: &[u8]) -> Result<Vec<Budget>, BudgetError> {
    let mut obj = aya_obj::Object::parse(object).map_err(|e| BudgetError::Parse(e.to_string()))?;
    let originals = originals(&obj);
    let text = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_calls(&text).map_err(|e| BudgetError::Link(e.to_string()))?;
    let mut out = Vec::new();
    for (name, program) in &obj.programs {
        let f = obj.functions.get(&program.function_key()).ok_or_else(|| BudgetError::NoCode(name.clone()))?;
        let mut offsets: Vec<usize> = f.func_info.func_info.iter().map(|fi| fi.insn_off as usize).collect();
        offsets.push(f.instructions.len());
        let starts: Vec<(usize, String)> = offsets
            .windows(2)
            .map(|w| (w[0], name_of(&f.instructions[w[0]..w[1]], &originals).unwrap_or_else(|| format!("insn {}", w[0]))))
            .collect();
        let (chain, bytes) = deepest(&f.instructions, &starts).ok_or_else(|| BudgetError::NoCode(name.clone()))??;
        out.push(Budget {
            program: name.clone(),
            chain: chain.into_iter().map(|(i, b)| (if i == 0 { name.clone() } else { starts[i].1.clone() }, b)).collect(),
            bytes,
            instructions: f.instructions.len(),
        });
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.program.cmp(&b.program)));
    Ok(out)
}

/// The embedded object's programs (empty in a stub build).
pub fn embedded() -> Result<Vec<Budget>, BudgetError> {
    if OBJECT.is_empty() {
        return Ok(Vec::new());
    }
    budgets(OBJECT)
}

/// Every function of the object as compiled, before linking: its readable
/// name and its opcodes (what linking leaves alone).
fn originals(obj: &aya_obj::Object) -> Vec<(String, Vec<u8>)> {
    obj.functions
        .values()
        .map(|f| {
            let name = format!("{:#}", rustc_demangle::demangle(&f.name));
            let short = name.strip_prefix("tracer_ebpf::").unwrap_or(&name).to_owned();
            (short, f.instructions.iter().map(|i| i.code).collect())
        })
        .collect()
}

/// The function a linked copy of code came from.
fn name_of(code: &[bpf_insn], originals: &[(String, Vec<u8>)]) -> Option<String> {
    originals.iter().find(|(_, ops)| ops.len() == code.len() && ops.iter().zip(code).all(|(a, b)| *a == b.code)).map(|(n, _)| n.clone())
}

/// A chain of (function index, rounded frame) and its total.
type Chain = (Vec<(usize, u32)>, u32);

/// One function of a linked program: its instructions [start, end).
struct Sub {
    start: usize,
    end: usize,
}

/// The deepest chain from the program's entry.
fn deepest(insns: &[bpf_insn], starts: &[(usize, String)]) -> Option<Result<Chain, BudgetError>> {
    if starts.first()?.0 != 0 {
        return None;
    }
    let subs: Vec<Sub> =
        starts.iter().enumerate().map(|(i, (s, _))| Sub { start: *s, end: starts.get(i + 1).map_or(insns.len(), |n| n.0) }).collect();
    let frames: Vec<u32> = subs.iter().map(|s| frame(&insns[s.start..s.end])).collect();
    let mut callees = Vec::with_capacity(subs.len());
    for s in &subs {
        let mut to = Vec::new();
        for at in s.start..s.end {
            let Some(target) = call_target(insns, at) else { continue };
            match subs.iter().position(|c| c.start == target) {
                Some(c) => to.push(c),
                None => return Some(Err(BudgetError::BadCall { program: starts[0].1.clone(), at })),
            }
        }
        to.sort_unstable();
        to.dedup();
        callees.push(to);
    }
    let mut memo = vec![None; subs.len()];
    Some(Ok(chain_from(0, &frames, &callees, &mut memo, 0)))
}

/// The deepest chain from function `i` (BPF has no recursion; `depth` guards a malformed object).
fn chain_from(i: usize, frames: &[u32], callees: &[Vec<usize>], memo: &mut Vec<Option<Chain>>, depth: usize) -> Chain {
    if let Some(done) = &memo[i] {
        return done.clone();
    }
    let mut best: Chain = (Vec::new(), 0);
    if depth < 16 {
        for &c in &callees[i] {
            let below = chain_from(c, frames, callees, memo, depth + 1);
            if below.1 > best.1 {
                best = below;
            }
        }
    }
    let mut chain = vec![(i, frames[i])];
    chain.extend(best.0);
    let result = (chain, frames[i] + best.1);
    memo[i] = Some(result.clone());
    result
}

/// Where instruction `at` calls or takes the address of another function.
fn call_target(insns: &[bpf_insn], at: usize) -> Option<usize> {
    let insn = insns.get(at)?;
    let linked = (insn.code == CALL && insn.src_reg() == PSEUDO_CALL) || (insn.code == LD_IMM64 && insn.src_reg() == PSEUDO_FUNC);
    linked.then(|| (at as i64 + 1 + i64::from(insn.imm)) as usize)
}

/// A function's frame as the verifier counts it: the deepest stack byte its
/// instructions reach, rounded up to 32 (and at least 32).
pub fn frame(insns: &[bpf_insn]) -> u32 {
    // Registers holding r10 + k, from a copy of r10 and the constants added to it.
    let mut derived: [Option<i64>; 11] = [None; 11];
    let mut lowest: i64 = 0;
    let mut skip = false;
    for insn in insns {
        if std::mem::take(&mut skip) {
            continue; // the second half of a 64-bit load
        }
        let (dst, src) = (insn.dst_reg() as usize, insn.src_reg() as usize);
        let base = |r: usize| if r == FRAME_POINTER as usize { Some(0) } else { derived.get(r).copied().flatten() };
        let (class, op) = (insn.code & 0x07, insn.code & 0xf0);
        let off = i64::from(insn.off);
        match class {
            // Loads through a register: an address below the frame pointer reaches that deep.
            0x01 => {
                if let Some(k) = base(src) {
                    lowest = lowest.min(k + off);
                }
            }
            // Stores (immediate or register).
            0x02 | 0x03 => {
                if let Some(k) = base(dst) {
                    lowest = lowest.min(k + off);
                }
            }
            // 64-bit ALU: a copy of r10, or a constant added to a copy.
            0x07 if dst < derived.len() => {
                let from_reg = insn.code & 0x08 != 0;
                derived[dst] = match (op, from_reg) {
                    (0xb0, true) => base(src),                                      // mov dst, src
                    (0x00, false) => derived[dst].map(|k| k + i64::from(insn.imm)), // add dst, imm
                    (0x10, false) => derived[dst].map(|k| k - i64::from(insn.imm)), // sub dst, imm
                    _ => None,
                };
                if let Some(k) = derived[dst] {
                    lowest = lowest.min(k);
                }
            }
            0x00 if insn.code == LD_IMM64 => {
                skip = true;
                if dst < derived.len() {
                    derived[dst] = None;
                }
            }
            // 32-bit ALU writes its destination; calls clobber r0-r5.
            0x04 if dst < derived.len() => derived[dst] = None,
            0x05 if insn.code == CALL => derived[..6].fill(None),
            _ => {}
        }
    }
    let depth = lowest.unsigned_abs().max(1) as u32;
    depth.div_ceil(32) * 32
}

#[cfg(test)]
#[path = "stack_budget_tests.rs"]
mod tests;
