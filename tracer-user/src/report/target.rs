//! The traced program in a report: which process, in what state, how it
//! ended; and how it was traced.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Target {
    pub pid: u32,
    pub command: String,
    pub state: TargetState,
    /// How it ended, once it has (run only): `{code, signal}`, one of them set.
    pub exit: Option<ExitStatus>,
    pub duration_secs: f64,
    pub allocator: Option<String>,
    /// How its heap is traced: "in-process" (leaktrace's recorder in the
    /// process) or "uprobes" (probes on the allocator).
    pub heap_probes: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    #[default]
    Running,
    Exited,
    Detached,
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Exited => "exited",
            Self::Detached => "detached",
        })
    }
}

/// How the target ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self.code == Some(0) && self.signal.is_none()
    }

    /// As a shell reports it: the exit code, or 128 + the signal's number.
    pub fn shell_status(self) -> i32 {
        match (self.code, self.signal) {
            (_, Some(s)) => 128 + s,
            (Some(c), None) => c,
            (None, None) => 0,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (_, Some(s)) => write!(f, "killed by signal {s}"),
            (Some(c), None) => write!(f, "exit code {c}"),
            (None, None) => f.write_str("exit status unknown"),
        }
    }
}

/// How descriptors are traced (the probes' word for it, as the session gives it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DescriptorTracing {
    pub mechanism: &'static str,
    /// System calls with a program on their exit tracepoint.
    pub syscalls: usize,
    /// Calls of the table this kernel does not have.
    pub not_on_this_kernel: Vec<&'static str>,
}

impl std::fmt::Display for DescriptorTracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} system calls", self.mechanism, self.syscalls)?;
        if !self.not_on_this_kernel.is_empty() {
            write!(f, " (not on this kernel: {})", self.not_on_this_kernel.join(", "))?;
        }
        Ok(())
    }
}
