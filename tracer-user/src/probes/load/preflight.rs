//! Checks made before loading anything, so that a missing privilege or kernel
//! feature is one clear line rather than a verifier dump.

use std::path::Path;

use tracer_common::syscalls::SYSCALLS;

use super::tracefs::{syscall_exit_exists, TRACEFS};
use crate::probes::errors::ProbeError;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_owned())))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Privileges, BTF, tracefs (mounted here when absent) and the tracepoints.
pub fn preflight() -> Result<(), ProbeError> {
    if cfg!(ebpf_stub) {
        return Err(ProbeError::StubBuild);
    }
    let caps = effective_caps();
    if !(has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON))) {
        return Err(ProbeError::NotPermitted);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(ProbeError::KernelFeature { what: "BTF", detail: "/sys/kernel/btf/vmlinux is missing (CONFIG_DEBUG_INFO_BTF)".into() });
    }
    ensure_tracefs()?;
    syscall_tracepoints()?;
    for tp in ["sched/sched_process_exit", "sched/sched_process_exec"] {
        if !Path::new(TRACEFS).join("events").join(tp).exists() {
            return Err(ProbeError::KernelFeature { what: "a tracepoint", detail: format!("{tp} is not in {TRACEFS}/events") });
        }
    }
    Ok(())
}

/// The required calls' tracepoints exist (tracefs is mounted by then).
fn syscall_tracepoints() -> Result<(), ProbeError> {
    match SYSCALLS.iter().find(|s| s.required && !syscall_exit_exists(s.name)) {
        None => Ok(()),
        Some(s) => Err(ProbeError::KernelFeature {
            what: "syscall tracepoints (CONFIG_FTRACE_SYSCALLS)",
            detail: format!("syscalls/sys_exit_{} is not in {TRACEFS}/events", s.name),
        }),
    }
}

fn ensure_tracefs() -> Result<(), ProbeError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let status = std::process::Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).status();
    match status {
        Ok(s) if s.success() && Path::new(TRACEFS).join("events").is_dir() => Ok(()),
        _ => Err(ProbeError::KernelFeature { what: "tracefs", detail: format!("{TRACEFS} is not mounted and mounting it failed") }),
    }
}

/// Offset of `child_pid` in sched_process_fork records, from its format file.
pub fn fork_child_pid_offset() -> Result<u32, ProbeError> {
    let path = Path::new(TRACEFS).join("events/sched/sched_process_fork/format");
    let text = std::fs::read_to_string(&path).map_err(|source| ProbeError::Unreadable { path: path.clone(), source })?;
    parse_field_offset(&text, "child_pid")
        .ok_or(ProbeError::KernelFeature { what: "sched_process_fork's child_pid field", detail: path.display().to_string() })
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        if decl.split_whitespace().last()? != field {
            return None;
        }
        l.split(';').find_map(|p| p.trim().strip_prefix("offset:")).and_then(|v| v.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_child_pid_offset_from_format() {
        let fmt = "name: sched_process_fork\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_field_offset(fmt, "child_pid"), Some(20));
        assert_eq!(parse_field_offset(fmt, "parent_pid"), None);
    }
}
