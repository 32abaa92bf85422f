//! Calling functions in a stopped thread of another process: its registers
//! (general and extended) saved, the call made on its own stack below the
//! red zone with a return address of 0, so the return faults and stops it
//! again, and the registers put back after each call. An interrupted system
//! call then restarts as it would have.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::libc;

/// NT_X86_XSTATE: the extended state (vector registers and the rest) XSAVE writes.
const NT_X86_XSTATE: libc::c_int = 0x202;
/// Room for any XSAVE layout (11,008 bytes with AVX-512 and AMX tiles).
const XSTATE_MAX: usize = 64 << 10;
const RED_ZONE: u64 = 256;

/// How a remote call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("ptrace on thread {tid}: {detail}")]
    Ptrace { tid: u32, detail: std::io::Error },
    #[error("the target exited during the call")]
    Gone,
    #[error("the call stopped with signal {signal} at {pc:#x}")]
    Fault { signal: i32, pc: u64 },
    #[error("the call did not return within {0:?} (a stopped thread may hold a lock it needs)")]
    Timeout(Duration),
}

/// An argument: a value, or bytes copied to the thread's stack (their address is passed).
pub enum Arg<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// A stopped thread the tracer runs calls in.
pub struct Remote {
    tid: u32,
    regs: libc::user_regs_struct,
    xstate: Vec<u8>,
    mem: File,
    /// Signals that arrived during calls, for the thread to receive when it goes.
    pub signals: Vec<i32>,
    timeout: Duration,
}

fn last_error(tid: u32) -> CallError {
    CallError::Ptrace { tid, detail: std::io::Error::last_os_error() }
}

impl Remote {
    /// Saves the registers of `tid`, a thread the caller has stopped under ptrace.
    pub fn new(tid: u32, timeout: Duration) -> Result<Self, CallError> {
        let mem =
            File::options().read(true).write(true).open(format!("/proc/{tid}/mem")).map_err(|detail| CallError::Ptrace { tid, detail })?;
        let mut remote = Self { tid, regs: get_regs(tid)?, xstate: vec![0; XSTATE_MAX], mem, signals: Vec::new(), timeout };
        let mut iov = libc::iovec { iov_base: remote.xstate.as_mut_ptr().cast(), iov_len: XSTATE_MAX };
        // SAFETY: the kernel writes at most iov_len bytes into our buffer and sets iov_len to what it wrote.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGSET, tid as libc::pid_t, NT_X86_XSTATE as usize, &mut iov) } != 0 {
            return Err(last_error(tid));
        }
        remote.xstate.truncate(iov.iov_len);
        Ok(remote)
    }

    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// Reads `len` bytes of the target's memory at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.mem.read_exact_at(&mut buf, addr)?;
        Ok(buf)
    }

    /// A NUL-terminated string of at most `max` bytes at `addr`.
    pub fn read_c_string(&self, addr: u64, max: usize) -> String {
        let mut buf = vec![0; max];
        let n = self.mem.read_at(&mut buf, addr).unwrap_or(0);
        let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }

    /// Calls `func(args)` in the thread and returns its rax; the thread's
    /// registers are as they were after, whatever the outcome.
    pub fn call(&mut self, func: u64, args: &[Arg]) -> Result<u64, CallError> {
        let result = self.run(func, args);
        let restored = self.restore();
        let value = result?;
        restored.map(|()| value)
    }

    fn run(&mut self, func: u64, args: &[Arg]) -> Result<u64, CallError> {
        let mut regs = self.regs;
        let mut sp = (regs.rsp - RED_ZONE) & !15;
        let mut values = [0u64; 6];
        for (v, arg) in values.iter_mut().zip(args) {
            *v = match arg {
                Arg::Int(x) => *x,
                Arg::Bytes(b) => {
                    sp = (sp - b.len() as u64) & !15;
                    self.mem.write_all_at(b, sp).map_err(|detail| CallError::Ptrace { tid: self.tid, detail })?;
                    sp
                }
            };
        }
        // The return address: 0, so the return stops the thread with SIGSEGV.
        sp -= 8;
        self.mem.write_all_at(&0u64.to_ne_bytes(), sp).map_err(|detail| CallError::Ptrace { tid: self.tid, detail })?;
        [regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9] = values;
        regs.rip = func;
        regs.rsp = sp;
        // No vector registers for a variadic callee; no restart of the interrupted call on these registers.
        regs.rax = 0;
        regs.orig_rax = u64::MAX;
        set_regs(self.tid, &regs)?;
        self.resume(0)?;
        self.wait_return()
    }

    fn resume(&self, sig: i32) -> Result<(), CallError> {
        // SAFETY: a request on our own stopped tracee; no pointer is passed.
        if unsafe { libc::ptrace(libc::PTRACE_CONT, self.tid as libc::pid_t, 0usize, sig as libc::c_long) } != 0 {
            return Err(last_error(self.tid));
        }
        Ok(())
    }

    /// Waits for the return to address 0; other stops are let through.
    fn wait_return(&mut self) -> Result<u64, CallError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let Some(status) = self.wait_until(deadline)? else {
                return Err(CallError::Timeout(self.timeout));
            };
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Err(CallError::Gone);
            }
            let sig = libc::WSTOPSIG(status);
            if status >> 16 == libc::PTRACE_EVENT_STOP {
                // The interrupt that stopped it, or a group-stop: go on.
                self.resume(0)?;
                continue;
            }
            if [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS, libc::SIGABRT].contains(&sig) {
                let regs = get_regs(self.tid)?;
                if sig == libc::SIGSEGV && regs.rip == 0 {
                    return Ok(regs.rax);
                }
                return Err(CallError::Fault { signal: sig, pc: regs.rip });
            }
            // A signal for the program: it gets it when the thread goes.
            self.signals.push(sig);
            self.resume(0)?;
        }
    }

    /// The thread's next stop, or None at the deadline (the thread is stopped again then).
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<i32>, CallError> {
        let mut status = 0;
        loop {
            // SAFETY: waits for our own tracee; `status` is a valid out-pointer.
            let got = unsafe { libc::waitpid(self.tid as libc::pid_t, &mut status, libc::WNOHANG | libc::__WALL) };
            match got {
                0 if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                0 => break,
                -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                -1 => return Err(CallError::Gone),
                _ => return Ok(Some(status)),
            }
        }
        // SAFETY: a request on our own tracee; no pointer is passed.
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, self.tid as libc::pid_t, 0usize, 0usize) };
        loop {
            // SAFETY: as above.
            let got = unsafe { libc::waitpid(self.tid as libc::pid_t, &mut status, libc::__WALL) };
            if got == self.tid as libc::pid_t {
                if libc::WIFSTOPPED(status) && status >> 16 != libc::PTRACE_EVENT_STOP {
                    self.signals.push(libc::WSTOPSIG(status));
                }
                return if libc::WIFSTOPPED(status) { Ok(None) } else { Err(CallError::Gone) };
            }
            if got == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(CallError::Gone);
            }
        }
    }

    /// Puts back the registers and extended state saved at the start.
    fn restore(&mut self) -> Result<(), CallError> {
        set_regs(self.tid, &self.regs)?;
        let mut iov = libc::iovec { iov_base: self.xstate.as_mut_ptr().cast(), iov_len: self.xstate.len() };
        // SAFETY: the kernel reads iov_len bytes of our buffer, the state it gave us.
        if unsafe { libc::ptrace(libc::PTRACE_SETREGSET, self.tid as libc::pid_t, NT_X86_XSTATE as usize, &mut iov) } != 0 {
            return Err(last_error(self.tid));
        }
        Ok(())
    }
}

fn get_regs(tid: u32) -> Result<libc::user_regs_struct, CallError> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one user_regs_struct into `regs`.
    if unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid as libc::pid_t, 0usize, &mut regs) } != 0 {
        return Err(last_error(tid));
    }
    Ok(regs)
}

fn set_regs(tid: u32, regs: &libc::user_regs_struct) -> Result<(), CallError> {
    // SAFETY: the kernel reads one user_regs_struct from `regs`.
    if unsafe { libc::ptrace(libc::PTRACE_SETREGS, tid as libc::pid_t, 0usize, regs) } != 0 {
        return Err(last_error(tid));
    }
    Ok(())
}
