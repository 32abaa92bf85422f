use aya_obj::generated::bpf_insn;

use super::{chain_from, frame};

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
    bpf_insn { code, _bitfield_align_1: [], _bitfield_1: bpf_insn::new_bitfield_1(dst, src), off, imm }
}

const STX_DW: u8 = 0x7b;
const ST_DW: u8 = 0x7a;
const LDX_DW: u8 = 0x79;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const MOV64_IMM: u8 = 0xb7;
const EXIT: u8 = 0x95;

#[test]
fn a_frame_is_the_deepest_byte_reached_rounded_to_32() {
    // *(u64 *)(r10 - 8) = 0
    assert_eq!(frame(&[insn(ST_DW, 10, 0, -8, 0), insn(EXIT, 0, 0, 0, 0)]), 32);
    // No stack at all still takes 32 bytes in the verifier's sum.
    assert_eq!(frame(&[insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]), 32);
    // r1 = r10; r1 += -200 (an array's address handed to a helper)
    let array = [insn(MOV64_REG, 1, 10, 0, 0), insn(ADD64_IMM, 1, 0, 0, -200), insn(0x85, 0, 0, 0, 4), insn(EXIT, 0, 0, 0, 0)];
    assert_eq!(frame(&array), 224);
    // A load through a derived pointer below its base: r2 = r10; r2 += -64; r0 = *(u64 *)(r2 - 40)
    let below = [insn(MOV64_REG, 2, 10, 0, 0), insn(ADD64_IMM, 2, 0, 0, -64), insn(LDX_DW, 0, 2, -40, 0), insn(EXIT, 0, 0, 0, 0)];
    assert_eq!(frame(&below), 128);
    // A register overwritten after the copy no longer points into the stack.
    let clobbered = [insn(MOV64_REG, 1, 10, 0, 0), insn(MOV64_IMM, 1, 0, 0, 7), insn(STX_DW, 1, 2, -300, 0), insn(EXIT, 0, 0, 0, 0)];
    assert_eq!(frame(&clobbered), 32);
}

#[test]
fn the_deepest_chain_follows_calls_and_callbacks() {
    // 0 → 1 (a call) → 3 (a callback); 0 → 2 (a call, a bigger frame but no callee).
    let frames = [128, 64, 256, 96];
    let callees = vec![vec![1, 2], vec![3], vec![], vec![]];
    let mut memo = vec![None; 4];
    let (chain, bytes) = chain_from(0, &frames, &callees, &mut memo, 0);
    assert_eq!(bytes, 384);
    assert_eq!(chain, vec![(0, 128), (2, 256)]);
    let frames = [128, 64, 160, 200];
    let mut memo = vec![None; 4];
    let (chain, bytes) = chain_from(0, &frames, &callees, &mut memo, 0);
    assert_eq!((chain, bytes), (vec![(0, 128), (1, 64), (3, 200)], 392));
}

#[test]
fn a_linked_program_names_its_chain() {
    // main: r1 = callback (ld_imm64 pseudo func, 2 slots); call sub; exit. sub: 100 bytes. callback: 300 bytes.
    let insns = [
        insn(0x18, 1, 4, 0, 5), // → 0 + 1 + 5 = 6 (the callback)
        insn(0, 0, 0, 0, 0),
        insn(0x85, 0, 1, 0, 1), // → 2 + 1 + 1 = 4 (sub)
        insn(EXIT, 0, 0, 0, 0),
        insn(ST_DW, 10, 0, -100, 0),
        insn(EXIT, 0, 0, 0, 0),
        insn(ST_DW, 10, 0, -300, 0),
        insn(EXIT, 0, 0, 0, 0),
    ];
    let starts = vec![(0, "main".to_owned()), (4, "sub".to_owned()), (6, "callback".to_owned())];
    let (chain, bytes) = super::deepest(&insns, &starts).expect("starts at 0").expect("calls land on functions");
    assert_eq!(chain, vec![(0, 32), (2, 320)]);
    assert_eq!(bytes, 352);
}
