//! A stopped thread's registers (PTRACE_GETREGS): its stack pointer, its
//! thread pointer (fs_base, where glibc keeps the thread's control block and
//! TLS) and every general-purpose register, each a possible root.

use nix::sys::ptrace;
use nix::unistd::Pid;

use super::Thread;

/// Reads the registers of `tid`, a ptrace-stopped thread of the calling thread.
pub fn registers(tid: u32) -> nix::Result<Thread> {
    let r = ptrace::getregs(Pid::from_raw(tid as i32))?;
    let registers = vec![r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15];
    // orig_rax is the system call's number inside one, -1 outside.
    Ok(Thread { tid, sp: r.rsp, fs_base: r.fs_base, in_syscall: r.orig_rax as i64 >= 0, registers })
}
