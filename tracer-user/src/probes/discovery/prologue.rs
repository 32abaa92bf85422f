//! Choosing where an entry-only uprobe goes.
//!
//! The kernel emulates some instructions under a uprobe (jumps, calls, pushes,
//! nops) and single-steps the others, which costs several times more: glibc's
//! `free` starts with `test %rdi,%rdi`, single-stepped (~4.4 µs a hit), then an
//! emulated `je` (~0.85 µs). For a probe without a return probe, leading
//! instructions that only set flags may be skipped, so the probe lands on the
//! first emulated instruction with the arguments still intact. A return probe
//! must stay at the entry (it needs the return address on top of the stack).

/// How an instruction at the start of a function is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insn {
    /// Emulated by the kernel's x86 uprobe code: a good probe site.
    Emulated,
    /// Only sets flags (test/cmp with no memory write, no register change): skippable.
    FlagsOnly(usize),
    /// Anything else: stop looking.
    Other,
}

fn decode(code: &[u8]) -> Insn {
    match code {
        // jcc rel8, jmp rel8/rel32, call rel32
        [0x70..=0x7f, ..] | [0xeb, ..] | [0xe9, ..] | [0xe8, ..] => Insn::Emulated,
        // jcc rel32
        [0x0f, 0x80..=0x8f, ..] => Insn::Emulated,
        // push r64, with or without REX.B
        [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..] => Insn::Emulated,
        // nop
        [0x90, ..] => Insn::Emulated,
        // test r64, r64 (REX.W 85 /r, register form)
        [0x48 | 0x49 | 0x4c | 0x4d, 0x85, modrm, ..] if modrm >> 6 == 3 => Insn::FlagsOnly(3),
        // test r32, r32
        [0x85, modrm, ..] if modrm >> 6 == 3 => Insn::FlagsOnly(2),
        // cmpb $imm8, disp32(%rip)
        [0x80, 0x3d, ..] => Insn::FlagsOnly(7),
        _ => Insn::Other,
    }
}

/// The offset from the function's start at which an entry-only probe should
/// sit: 0 unless the first instructions only set flags and an emulated
/// instruction follows them.
pub fn entry_probe_offset(code: &[u8]) -> u64 {
    let mut at = 0usize;
    for _ in 0..4 {
        match decode(&code[at.min(code.len())..]) {
            Insn::Emulated => return at as u64,
            Insn::FlagsOnly(len) => at += len,
            Insn::Other => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_free_moves_past_its_test() {
        // test %rdi,%rdi ; je ... ; push %rbp
        assert_eq!(entry_probe_offset(&[0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0, 0, 0, 0x55]), 3);
    }

    #[test]
    fn an_emulated_first_instruction_stays_at_zero() {
        assert_eq!(entry_probe_offset(&[0x41, 0x54, 0x55]), 0); // push %r12
    }

    #[test]
    fn anything_unknown_stays_at_zero() {
        assert_eq!(entry_probe_offset(&[0x48, 0x89, 0xf8]), 0); // mov %rdi,%rax
        assert_eq!(entry_probe_offset(&[0x48, 0x85, 0x07, 0x74, 0x00]), 0); // test with memory operand
        assert_eq!(entry_probe_offset(&[0x48, 0x85]), 0); // truncated
        assert_eq!(entry_probe_offset(&[]), 0);
    }

    #[test]
    fn flag_setters_followed_by_something_else_stay_at_zero() {
        assert_eq!(entry_probe_offset(&[0x80, 0x3d, 1, 2, 3, 4, 0, 0x48, 0x89, 0xf8]), 0);
    }
}
