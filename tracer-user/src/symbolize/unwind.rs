//! Repairing kernel frame-pointer stacks whose innermost frames are frameless.
//!
//! The kernel walks frame pointers from the user rbp. Frameless code breaks
//! that walk: the caller of a frameless leaf (glibc's `socket` wrapper) is not
//! in the chain, and a frameless function that reuses rbp (glibc's `strdup`
//! around its malloc call) makes every kernel frame after the first garbage.
//! From a copy of the stack top, CFI steps recover the frameless frames until a
//! frame-pointer frame is reached; from there the kernel's chain is valid when
//! that frame's rbp is the one the kernel started from.

/// What the kernel captured.
pub struct UnwindInput<'a> {
    /// `[0]` is the user instruction pointer, then the kernel's frame-pointer walk from `bp`.
    pub kernel_frames: &'a [u64],
    pub sp: u64,
    pub bp: u64,
    /// Words at sp, sp+8, ...
    pub stack_top: &'a [u64],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwound {
    pub frames: Vec<u64>,
    /// Frames past the last could not be recovered.
    pub truncated: bool,
}

use super::module::{CfaRule, UnwindRow};

/// Steps at most this many frameless frames.
const MAX_STEPS: usize = 16;

/// Runs the algorithm with `row_at(pc)` giving the CFI row for the
/// instruction before a return address or at an instruction pointer.
pub fn unwind(input: &UnwindInput, mut row_at: impl FnMut(u64) -> Option<UnwindRow>) -> Unwound {
    let kf = input.kernel_frames;
    let Some(&pc0) = kf.first() else { return Unwound { frames: Vec::new(), truncated: false } };
    let word = |addr: u64| -> Option<u64> {
        let off = addr.checked_sub(input.sp)?;
        if off % 8 != 0 {
            return None;
        }
        input.stack_top.get((off / 8) as usize).copied()
    };
    let (mut pc, mut sp, mut bp) = (pc0, input.sp, input.bp);
    let mut frames = vec![pc0];
    for _ in 0..MAX_STEPS {
        let Some(row) = row_at(pc) else {
            // No CFI: only the kernel's chain is left, valid if nothing was stepped.
            return if frames.len() == 1 { Unwound { frames: kf.to_vec(), truncated: false } } else { Unwound { frames, truncated: true } };
        };
        if let CfaRule::Bp(_) = row.cfa {
            // A frame-pointer frame: the kernel chain continues from it if its rbp is the kernel's.
            if bp == input.bp {
                frames.extend_from_slice(&kf[1..]);
                return Unwound { frames, truncated: false };
            }
            return walk_frame_pointers(frames, bp, word);
        }
        let CfaRule::Sp(off) = row.cfa else { unreachable!() };
        let cfa = sp.wrapping_add_signed(off);
        let Some(ra) = word(cfa.wrapping_add_signed(row.ra)) else { return Unwound { frames, truncated: true } };
        if let Some(at) = row.bp {
            match word(cfa.wrapping_add_signed(at)) {
                Some(saved) => bp = saved,
                None => return Unwound { frames, truncated: true },
            }
        }
        if ra == 0 {
            return Unwound { frames, truncated: false };
        }
        frames.push(ra);
        pc = ra;
        sp = cfa;
    }
    Unwound { frames, truncated: true }
}

/// Frame-pointer walk within the stack copy, from a restored rbp.
fn walk_frame_pointers(mut frames: Vec<u64>, mut bp: u64, word: impl Fn(u64) -> Option<u64>) -> Unwound {
    for _ in 0..MAX_STEPS {
        let (Some(ra), Some(next)) = (word(bp.wrapping_add(8)), word(bp)) else { break };
        if ra == 0 {
            return Unwound { frames, truncated: false };
        }
        frames.push(ra);
        if next <= bp {
            break;
        }
        bp = next;
    }
    Unwound { frames, truncated: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: u64 = 0x7000;
    const LEAF: u64 = 0x1000; // frameless leaf: CFA = rsp+8
    const PUSHER: u64 = 0x2000; // frameless, saved rbp at CFA-16 and reused it: CFA = rsp+24
    const FP_FN: u64 = 0x3000; // frame-pointer code
    const OUTER: u64 = 0x4000;

    fn rows(pc: u64) -> Option<UnwindRow> {
        match pc & !0xfff {
            LEAF => Some(UnwindRow { cfa: CfaRule::Sp(8), ra: -8, bp: None }),
            PUSHER => Some(UnwindRow { cfa: CfaRule::Sp(24), ra: -8, bp: Some(-16) }),
            FP_FN | OUTER => Some(UnwindRow { cfa: CfaRule::Bp(16), ra: -8, bp: Some(-16) }),
            _ => None,
        }
    }

    #[test]
    fn a_frameless_leafs_caller_is_recovered_and_the_kernel_chain_kept() {
        // socket wrapper at LEAF, called from FP_FN (rbp untouched).
        let kf = [LEAF + 5, OUTER + 9, 0x5009];
        let top = [FP_FN + 0x10];
        let u = unwind(&UnwindInput { kernel_frames: &kf, sp: SP, bp: 0x7100, stack_top: &top }, rows);
        assert_eq!(u, Unwound { frames: vec![LEAF + 5, FP_FN + 0x10, OUTER + 9, 0x5009], truncated: false });
    }

    #[test]
    fn a_clobbered_rbp_is_restored_from_the_copy_and_walked() {
        // strdup-like PUSHER reused rbp; its caller FP_FN's frame is at 0x7020.
        let kf = [PUSHER + 1, 0xdead, 0xbeef]; // garbage past [0]
        let mut top = vec![0u64; 8];
        top[1] = 0x7020; // saved rbp at CFA-16 = SP+8
        top[2] = FP_FN + 0x20; // return address at CFA-8 = SP+16
        top[4] = 0x7030; // FP_FN's frame: [rbp] = caller's rbp
        top[5] = OUTER + 4; // [rbp+8] = FP_FN's return address
        top[6] = 0x7038;
        top[7] = 0; // OUTER's caller: end of stack
        let u = unwind(&UnwindInput { kernel_frames: &kf, sp: SP, bp: 0x55aa, stack_top: &top }, rows);
        assert_eq!(u.frames, vec![PUSHER + 1, FP_FN + 0x20, OUTER + 4]);
        assert!(!u.frames.contains(&0xdead));
    }

    #[test]
    fn frame_pointer_code_at_frame_zero_keeps_the_kernel_stack() {
        let kf = [FP_FN + 1, OUTER + 1];
        let u = unwind(&UnwindInput { kernel_frames: &kf, sp: SP, bp: 0x7100, stack_top: &[] }, rows);
        assert_eq!(u, Unwound { frames: kf.to_vec(), truncated: false });
    }

    #[test]
    fn unknown_code_keeps_the_kernel_stack_and_short_copies_truncate() {
        let kf = [0x9000, 0x9100];
        assert_eq!(unwind(&UnwindInput { kernel_frames: &kf, sp: SP, bp: 1, stack_top: &[] }, rows).frames, kf.to_vec());
        let kf = [LEAF];
        let u = unwind(&UnwindInput { kernel_frames: &kf, sp: SP, bp: 1, stack_top: &[] }, rows);
        assert_eq!(u, Unwound { frames: vec![LEAF], truncated: true });
        assert_eq!(unwind(&UnwindInput { kernel_frames: &[], sp: SP, bp: 1, stack_top: &[] }, rows).frames, Vec::<u64>::new());
    }
}
