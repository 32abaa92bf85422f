//! Where the kernel's tracepoints are listed, and whether a system call's
//! exit tracepoint is among them. A leaf.

use std::path::Path;

/// tracefs's mount point (preflight mounts it when absent).
pub(crate) const TRACEFS: &str = "/sys/kernel/tracing";

/// Whether the kernel has the tracepoint `syscalls/sys_exit_NAME`.
pub(crate) fn syscall_exit_exists(name: &str) -> bool {
    Path::new(TRACEFS).join("events/syscalls").join(format!("sys_exit_{name}")).is_dir()
}
