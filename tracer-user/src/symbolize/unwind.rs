//! The userspace half of stack walking: where the kernel's walk stopped for
//! want of a module's table (or a busy memory map), go on over the copy of the
//! stack it attached, with the same rules (`tracer_common::unwind`). A pure
//! algorithm: what code lies at an address is passed in.

use tracer_common::unwind::{step_frame_pointer, step_rule, Caller, Regs, StackMemory};
use tracer_common::{StopReason, UnwindRow};

/// What the walker knows of the code at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A module with unwind information: the row in force (None: no row
    /// covers it, and frame pointers are tried).
    Rule(Option<UnwindRow>),
    /// Anonymous memory or a module without unwind information.
    FramePointers,
    /// The walk cannot go on (no mapping, unreadable module).
    Unknown(StopReason),
}

/// Words of a stack from `base` upward.
pub struct StackCopy<'a> {
    pub base: u64,
    pub words: &'a [u64],
}

impl StackMemory for StackCopy<'_> {
    fn word(&self, addr: u64) -> Option<u64> {
        let off = addr.checked_sub(self.base)?;
        if off % 8 != 0 {
            return None;
        }
        self.words.get(usize::try_from(off / 8).ok()?).copied()
    }
}

/// A frame found by the walk: its address and whether that is an exact pc
/// (a signal interrupted it) rather than a return address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub pc: u64,
    pub exact: bool,
}

/// The callers of the frame `start` (whose pc is exact when `exact`), at most
/// `max` of them, and why the walk ended.
pub fn walk(
    start: Regs,
    exact: bool,
    mem: &impl StackMemory,
    max: usize,
    mut code_at: impl FnMut(u64) -> Code,
) -> (Vec<Found>, StopReason) {
    let mut out = Vec::new();
    let (mut here, mut exact) = (start, exact);
    loop {
        let lookup = if exact { here.pc } else { here.pc.wrapping_sub(1) };
        let step: Result<Caller, StopReason> = match code_at(lookup) {
            Code::Rule(Some(row)) => step_rule(row, lookup, here, mem),
            Code::Rule(None) | Code::FramePointers => step_frame_pointer(here, mem),
            Code::Unknown(reason) => Err(reason),
        };
        let caller = match step {
            Ok(c) => c,
            Err(reason) => return (out, reason),
        };
        if out.len() >= max {
            return (out, StopReason::MaxDepth);
        }
        out.push(Found { pc: caller.regs.pc, exact: caller.exact });
        (here, exact) = (caller.regs, caller.exact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::CfaKind;

    const SP: u64 = 0x7000;
    const LEAF: u64 = 0x1000; // frameless: CFA = rsp + 8
    const FRAMED: u64 = 0x2000; // CFA = rbp + 16, rbp at CFA-16
    const START: u64 = 0x3000; // _start: the outermost frame

    fn code(addr: u64) -> Code {
        let row = |kind: CfaKind, cfa, rbp| Code::Rule(Some(UnwindRow { offset: 0, cfa, rbp, kind: kind as u8 }));
        match addr & !0xfff {
            LEAF => row(CfaKind::Rsp, 1, 0),
            FRAMED => row(CfaKind::Rbp, 2, -2),
            START => row(CfaKind::End, 0, 0),
            0x5000 => Code::FramePointers,
            _ => Code::Unknown(StopReason::NoMapping),
        }
    }

    #[test]
    fn walks_frameless_and_framed_code_to_the_outermost_frame() {
        // LEAF (sp = SP) returns into FRAMED, whose frame (rbp = SP+16) returns into START.
        let words = [FRAMED + 5, 0, 0x7fff, START + 9];
        let (found, why) = walk(Regs { pc: LEAF + 3, sp: SP, bp: SP + 16 }, false, &StackCopy { base: SP, words: &words }, 32, code);
        assert_eq!(found.iter().map(|f| f.pc).collect::<Vec<_>>(), vec![FRAMED + 5, START + 9]);
        assert_eq!(why, StopReason::End);
    }

    #[test]
    fn stops_where_the_copy_or_the_depth_ends() {
        let words = [FRAMED + 5];
        let (found, why) = walk(Regs { pc: LEAF + 3, sp: SP, bp: SP + 16 }, false, &StackCopy { base: SP, words: &words }, 32, code);
        assert_eq!((found.len(), why), (1, StopReason::ReadFault), "the copy ends before FRAMED's frame");
        let words = [FRAMED + 5, 0, 0x7fff, START + 9];
        let (found, why) = walk(Regs { pc: LEAF + 3, sp: SP, bp: SP + 16 }, false, &StackCopy { base: SP, words: &words }, 1, code);
        assert_eq!((found.len(), why), (1, StopReason::MaxDepth));
        let (found, why) = walk(Regs { pc: 0x9000, sp: SP, bp: 0 }, false, &StackCopy { base: SP, words: &words }, 32, code);
        assert_eq!((found.len(), why), (0, StopReason::NoMapping));
    }

    #[test]
    fn frame_pointers_serve_code_without_tables() {
        // JIT code at 0x5000 with rbp = SP+8: [rbp] = next rbp, [rbp+8] = return into START.
        let words = [0, 0x7fff, START + 1];
        let (found, why) = walk(Regs { pc: 0x5004, sp: SP, bp: SP + 8 }, true, &StackCopy { base: SP, words: &words }, 32, code);
        assert_eq!(found, vec![Found { pc: START + 1, exact: false }]);
        assert_eq!(why, StopReason::End);
    }
}
