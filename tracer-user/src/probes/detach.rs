//! Detaching the descriptor probes without making anyone wait.
//!
//! Each syscall tracepoint's perf event, when its last reference goes, waits
//! for RCU grace periods under the kernel's event mutex: 40-100 ms each,
//! one after the other, some seconds for the whole table. So when the probes
//! are dropped, a detached grandchild process takes a copy of every
//! descriptor leaktrace holds and closes them at its own pace; leaktrace's
//! own closes then only drop references, and it exits at once. Until the
//! grandchild is done the programs stay attached and do nothing: the target
//! table is no longer filled.

/// Hands leaktrace's descriptors to a background process that closes them.
/// Without a process (fork failed) nothing happens: the caller's own drops
/// then detach, slowly but correctly.
pub fn in_background() {
    // SAFETY: after fork, the children only make async-signal-safe system
    // calls (fork, setsid, close_range, _exit) and never return: nothing of
    // this multithreaded process's state (locks, allocator) is used there.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            if libc::fork() == 0 {
                libc::setsid();
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            }
            libc::_exit(0);
        }
        if child > 0 {
            // The intermediate child exits at once: reaped here (or by a supervisor's waitpid(-1), which ignores it).
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
        }
    }
}
