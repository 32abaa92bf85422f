//! A program for the loader's kernel test, never attached by leaktrace: it
//! passes a callback to bpf_loop, which the kernel accepts only with the
//! object's BTF func_info (the callback a static function). It proves that
//! leaktrace's own loader for uprobe_multi and session programs (the path
//! aya cannot take) carries them, as the stack unwinder's callbacks need.

use aya_ebpf::{helpers::generated::bpf_loop, macros::uprobe, programs::ProbeContext};

/// Counts its calls into the u64 behind `ctx`.
extern "C" fn step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the caller's stack slot, as bpf_loop passes it back.
    unsafe { *ctx.cast::<u64>() += 1 };
    0
}

#[uprobe]
pub fn loader_check(_ctx: ProbeContext) -> u32 {
    let mut steps: u64 = 0;
    // SAFETY: a callback of bpf_loop's shape and a pointer to this stack slot.
    unsafe { bpf_loop(4, step as *const () as *mut core::ffi::c_void, (&raw mut steps).cast(), 0) };
    steps as u32
}
