//! A whole stack named: each address symbolized (return addresses at their
//! call instruction, exact pcs as they are), with the frames tail calls left
//! out put back (see [`super::tailcall`]).

use super::tailcall::{Callee, Calls};
use super::{Frame, ProcessMaps, Symbolizer};

/// The allocator's entry points, by the names code calls them through: a call
/// to one of these from frame 0 is the allocation itself, not a tail call.
const ALLOCATOR_ENTRIES: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__posix_memalign",
];

/// What tail-call recovery reads of the modules' code, kept across stacks.
#[derive(Default)]
pub struct StackCalls(Calls);

/// Names `frames` (innermost first; bit i of `exact`: frame i is an exact
/// pc). `allocation`: the stack was taken at an allocator's return, so frame
/// 0's call went to the allocator.
pub fn symbolize_stack(
    sym: &mut Symbolizer,
    calls: &mut StackCalls,
    maps: &ProcessMaps,
    frames: &[u64],
    exact: u32,
    allocation: bool,
) -> Vec<Frame> {
    let calls = &mut calls.0;
    let is_ret = |i: usize| i >= 32 || exact & (1 << i) == 0;
    let mut out = Vec::with_capacity(frames.len() + 2);
    for (i, &addr) in frames.iter().enumerate() {
        if is_ret(i) {
            // The chain's innermost function first, as frames go.
            for missing in elided(calls, maps, frames, i, allocation, is_ret(i.wrapping_sub(1))).into_iter().rev() {
                out.extend(sym.symbolize(maps, missing, false).into_iter().map(|f| Frame { inferred: true, ..f }));
            }
        }
        out.extend(sym.symbolize(maps, addr, is_ret(i)));
    }
    out
}

/// The addresses of frames elided between frame i and the frame below it
/// (for frame 0 of an allocation, the allocator), if the call frame i made
/// went elsewhere: the function it called at its tail jump, and each
/// function that one tail-jumped through (outermost first).
fn elided(calls: &mut Calls, maps: &ProcessMaps, frames: &[u64], i: usize, allocation: bool, below_is_ret: bool) -> Vec<u64> {
    let Some((module, callee)) = calls.callee_before(maps, frames[i]) else { return Vec::new() };
    let Callee::Local(start) = callee else {
        return Vec::new(); // an import reaches another module: nothing to read of its code here
    };
    let expected: Vec<String> = match i {
        0 if allocation => ALLOCATOR_ENTRIES.iter().map(|s| (*s).to_owned()).collect(),
        0 => return Vec::new(),
        _ => calls.names_at(maps, if below_is_ret { frames[i - 1].wrapping_sub(1) } else { frames[i - 1] }),
    };
    let called = calls.names_of(&module, &callee);
    if expected.is_empty() || called.is_empty() || called.iter().any(|n| expected.contains(n)) {
        return Vec::new(); // it called what runs below (or nothing can be told)
    }
    calls.inferred_addresses(&module, start, &|names: &[String]| names.iter().any(|n| expected.contains(n)))
}
