//! Every program of the embedded eBPF object fits the kernel's stack with room
//! to spare, on kernels that give BPF programs no private stack (Debian 12's
//! 6.1 and 6.12, and many later builds): its deepest call chain, callbacks
//! and global functions included, within `BUDGET` of the verifier's 512
//! bytes. No root needed: the object is read, not loaded.

use leaktrace::probes::stack_budget::{embedded, BUDGET};

#[test]
fn every_programs_deepest_call_chain_fits_the_budget() {
    let budgets = embedded().expect("the embedded object is analysed");
    assert!(!budgets.is_empty(), "the embedded object has no programs (a LEAKTRACE_EBPF_STUB build cannot be checked)");
    println!("{:<22} {:>5} {:>6}  chain (frame bytes)", "program", "bytes", "insns");
    for b in &budgets {
        println!("{:<22} {:>5} {:>6}  {}", b.program, b.bytes, b.instructions, b.chain_text());
    }
    let over: Vec<String> =
        budgets.iter().filter(|b| b.bytes > BUDGET).map(|b| format!("{} ({} B: {})", b.program, b.bytes, b.chain_text())).collect();
    assert!(over.is_empty(), "over the {BUDGET}-byte stack budget: {}", over.join("; "));
    // The walker's programs are among those measured.
    for name in ["fd_new", "alloc_session", "alloc_exit"] {
        assert!(budgets.iter().any(|b| b.program == name && b.chain.len() >= 3), "{name}'s chain through the walker was not found");
    }
}
