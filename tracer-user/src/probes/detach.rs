//! Detaching the descriptor probes without making anyone wait.
//!
//! Each syscall tracepoint's perf event, when its last reference goes, waits
//! for RCU grace periods under the kernel's event mutex: 40-100 ms each,
//! one after the other, some seconds for the whole table. So when the probes
//! are dropped, a detached grandchild process takes a copy of every
//! descriptor leaktrace holds and closes them once leaktrace has exited:
//! leaktrace's own closes, and its exit, then only drop references. (Were
//! the grandchild to close first, leaktrace's closes would be the last
//! references, and the slow ones.) Until the grandchild is done the programs
//! stay attached and do nothing: the target table is no longer filled.

/// Hands leaktrace's descriptors to a background process that closes them
/// once leaktrace has exited; false without one (pipe or fork failed): the
/// caller's own drops then detach, slowly but correctly.
pub fn in_background() -> bool {
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given. The write end
    // is close-on-exec: no command leaktrace starts holds it.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    let [gone, alive] = ends;
    // SAFETY: after fork, the children only make async-signal-safe system
    // calls (fork, setsid, close, read, close_range, _exit) and never return:
    // nothing of this multithreaded process's state (locks, allocator) is
    // used there.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            if libc::fork() == 0 {
                libc::setsid();
                libc::close(alive);
                // Whoever reads leaktrace's output sees its end when leaktrace exits.
                for fd in 0..=2 {
                    libc::close(fd);
                }
                // The write end's only holder is leaktrace: end of file once it has exited.
                let mut byte = 0u8;
                while libc::read(gone, (&raw mut byte).cast(), 1) < 0 && *libc::__errno_location() == libc::EINTR {}
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            }
            libc::_exit(0);
        }
        if child > 0 {
            // The intermediate child exits at once: reaped here (or by a supervisor's waitpid(-1), which ignores it).
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
        }
        // The write end stays open for as long as leaktrace lives.
        libc::close(gone);
        child > 0
    }
}
