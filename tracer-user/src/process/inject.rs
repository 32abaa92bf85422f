//! Loading leaktrace's in-process recorder into a running process
//! (`attach --heap-probes inprocess`), and making it inert again.
//!
//! Every thread is stopped; one runs the calls (`remote`). The target itself
//! creates the files it needs (memfd_create), which leaktrace fills or maps
//! through /proc/PID/fd: nothing has to exist in the target's mount
//! namespace. The session goes: [`Injection::load`] →
//! [`Injection::create_shared`] (leaktrace maps and lays out the file) →
//! [`Injection::attach`] → [`Injection::redirect`] →
//! [`Injection::close_in_target`] → [`Injection::resume`]; at the end,
//! [`Injection::detach_recorder`]. Whatever fails, the target's registers
//! are put back and its threads let go (the drop does it).

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use super::images::{regions, Image, Region};
use super::pause::{PauseError, Stopped};
use super::remote::{Arg, CallError, Remote};
use nix::errno::Errno;
use rustix::fs::MemfdFlags;

/// Long enough for dlopen of a large library on a loaded machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const ATTACH: &str = "leaktrace_recorder_attach";
const REDIRECT: &str = "leaktrace_recorder_redirect";
const DETACH: &str = "leaktrace_recorder_detach";

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("{0}")]
    Stop(#[from] PauseError),
    #[error("pid {0} maps no glibc (a static or non-glibc program): the recorder cannot be loaded into it")]
    NotGlibc(u32),
    #[error("{file} in pid {pid} has no function {name}")]
    NoSymbol { pid: u32, file: String, name: &'static str },
    #[error("reading {what} of pid {pid}: {detail}")]
    Read { pid: u32, what: String, detail: std::io::Error },
    #[error("calling {func} in pid {pid}: {source}")]
    Call { pid: u32, func: &'static str, source: CallError },
    #[error("{func} in pid {pid} failed: {detail}")]
    Failed { pid: u32, func: &'static str, detail: String },
}

/// The libc functions the injection calls in the target.
struct Libc {
    dlopen: u64,
    dlerror: u64,
    memfd_create: u64,
    close: u64,
    errno_location: u64,
}

/// The recorder's entry points in the target.
#[derive(Clone, Copy)]
struct Recorder {
    base: u64,
    attach: u64,
    redirect: u64,
}

/// A file the target created, open on leaktrace's side too.
pub struct TargetFile {
    pub file: File,
    /// The target's descriptor for it.
    pub target_fd: i32,
}

impl TargetFile {
    /// The path the target opens it by.
    pub fn target_path(&self) -> String {
        format!("/proc/self/fd/{}", self.target_fd)
    }
}

/// A process with every thread stopped and the recorder loaded.
pub struct Injection {
    pid: u32,
    remote: Remote,
    libc: Libc,
    recorder: Recorder,
    /// Let go at the drop, once the calling thread's registers are back.
    stopped: Option<Stopped>,
}

fn fn_in(pid: u32, image: &Image, name: &'static str) -> Result<u64, InjectError> {
    image.symbol(name).ok_or_else(|| InjectError::NoSymbol { pid, file: image.shown.clone(), name })
}

fn read_regions(pid: u32) -> Result<Vec<Region>, InjectError> {
    regions(pid).map_err(|detail| InjectError::Read { pid, what: "/proc/PID/maps".into(), detail })
}

fn image(pid: u32, found: Option<std::io::Result<Image>>, what: &str) -> Result<Option<Image>, InjectError> {
    found.transpose().map_err(|detail| InjectError::Read { pid, what: what.into(), detail })
}

impl Libc {
    fn find(pid: u32, regions: &[Region]) -> Result<Self, InjectError> {
        let libc = image(pid, Image::named(pid, regions, |n| n.starts_with("libc.so")), "glibc")?;
        let libc = libc.filter(Image::is_dynamic).ok_or(InjectError::NotGlibc(pid))?;
        // Before glibc 2.34, dlopen was in libdl.
        let dl = match libc.symbol("dlopen") {
            Some(_) => None,
            None => image(pid, Image::named(pid, regions, |n| n.starts_with("libdl.so")), "libdl")?,
        };
        let dl = dl.as_ref().unwrap_or(&libc);
        Ok(Self {
            dlopen: fn_in(pid, dl, "dlopen")?,
            dlerror: fn_in(pid, dl, "dlerror")?,
            memfd_create: fn_in(pid, &libc, "memfd_create")?,
            close: fn_in(pid, &libc, "close")?,
            errno_location: fn_in(pid, &libc, "__errno_location")?,
        })
    }
}

impl Injection {
    /// Stops every thread of `pid` and loads `library` (the recorder's bytes) into it.
    pub fn load(pid: u32, library: &[u8]) -> Result<Self, InjectError> {
        let libc = Libc::find(pid, &read_regions(pid)?)?;
        let stopped = Stopped::stop(pid)?;
        let tid = stopped.tids()[0];
        let stopped = Some(stopped);
        let remote = Remote::new(tid, CALL_TIMEOUT).map_err(|source| InjectError::Call { pid, func: "ptrace", source })?;
        let recorder = Recorder { base: 0, attach: 0, redirect: 0 };
        let mut injection = Self { pid, remote, libc, recorder, stopped };
        let lib = injection.target_memfd("leaktrace-recorder", library.len() as u64)?;
        let loaded = (|| {
            lib.file.try_clone().and_then(|mut f| f.write_all(library)).map_err(|detail| InjectError::Read {
                pid,
                what: "the recorder's memfd".into(),
                detail,
            })?;
            injection.dlopen(&lib.target_path())
        })();
        injection.close_in_target(lib.target_fd)?;
        injection.recorder = injection.entry_points(loaded?)?;
        Ok(injection)
    }

    /// Where the recorder is mapped: what [`Injection::detach_recorder`] takes.
    pub fn library_base(&self) -> u64 {
        self.recorder.base
    }

    /// A file of `len` bytes the target creates (memfd_create), open on both
    /// sides: leaktrace maps it and lays it out before [`Injection::attach`].
    pub fn create_shared(&mut self, len: u64) -> Result<TargetFile, InjectError> {
        self.target_memfd("leaktrace-shared", len)
    }

    /// Connects the recorder to `shared`.
    pub fn attach(&mut self, shared: &TargetFile) -> Result<(), InjectError> {
        let path = format!("{}\0", shared.target_path());
        let rc = self.call(ATTACH, self.recorder.attach, &[Arg::Bytes(path.as_bytes())])? as i32;
        if rc != 0 {
            return Err(self.failed(ATTACH, std::io::Error::from_raw_os_error(rc).to_string()));
        }
        Ok(())
    }

    /// Redirects the target's malloc family to the recorder; the number of GOT slots redirected.
    pub fn redirect(&mut self) -> Result<u32, InjectError> {
        let n = self.call(REDIRECT, self.recorder.redirect, &[])? as i32;
        if n < 0 {
            return Err(self.failed(REDIRECT, std::io::Error::from_raw_os_error(-n).to_string()));
        }
        Ok(n as u32)
    }

    /// Closes the target's descriptor `fd` (the shared file's, once the recorder has mapped it).
    pub fn close_in_target(&mut self, fd: i32) -> Result<(), InjectError> {
        self.call("close", self.libc.close, &[Arg::Int(fd as u64)]).map(drop)
    }

    /// Lets every thread go on (the drop does the same).
    pub fn resume(self) {}

    /// Makes the recorder loaded at `library_base` in `pid` inert: every GOT
    /// slot it redirected put back. The number of slots put back.
    pub fn detach_recorder(pid: u32, library_base: u64) -> Result<u32, InjectError> {
        let regions = read_regions(pid)?;
        let found = image(pid, Image::at(pid, &regions, library_base), "the recorder")?;
        let recorder = found.ok_or_else(|| InjectError::NoSymbol { pid, file: format!("{library_base:#x}"), name: DETACH })?;
        let detach = fn_in(pid, &recorder, DETACH)?;
        // Another thread may be redirecting what it just loaded: let it finish and try again.
        for _ in 0..50 {
            let stopped = Stopped::stop(pid)?;
            let mut remote =
                Remote::new(stopped.tids()[0], CALL_TIMEOUT).map_err(|source| InjectError::Call { pid, func: "ptrace", source })?;
            let rc = remote.call(detach, &[]).map_err(|source| InjectError::Call { pid, func: DETACH, source });
            keep_signals(stopped, &remote);
            let rc = rc? as i32;
            if rc >= 0 {
                return Ok(rc as u32);
            }
            if rc != -(Errno::EBUSY as i32) {
                return Err(InjectError::Failed { pid, func: DETACH, detail: std::io::Error::from_raw_os_error(-rc).to_string() });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(InjectError::Failed { pid, func: DETACH, detail: "a thread of the target kept redirecting modules".into() })
    }

    fn call(&mut self, func: &'static str, addr: u64, args: &[Arg]) -> Result<u64, InjectError> {
        self.remote.call(addr, args).map_err(|source| InjectError::Call { pid: self.pid, func, source })
    }

    fn failed(&self, func: &'static str, detail: String) -> InjectError {
        InjectError::Failed { pid: self.pid, func, detail }
    }

    /// The target's errno, as text.
    fn errno(&mut self) -> String {
        let errno = self.call("__errno_location", self.libc.errno_location, &[]).ok().and_then(|at| self.remote.read(at, 4).ok());
        match errno.map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])) {
            Some(e) if e == Errno::EPERM as i32 || e == Errno::ENOSYS as i32 => format!("{} (a seccomp filter?)", Errno::EPERM.desc()),
            Some(e) => std::io::Error::from_raw_os_error(e).to_string(),
            None => "unknown error".into(),
        }
    }

    /// A memfd the target creates, `len` bytes long, open on leaktrace's side.
    fn target_memfd(&mut self, name: &str, len: u64) -> Result<TargetFile, InjectError> {
        let name = format!("{name}\0");
        let fd = self.call(
            "memfd_create",
            self.libc.memfd_create,
            &[Arg::Bytes(name.as_bytes()), Arg::Int(u64::from(MemfdFlags::CLOEXEC.bits()))],
        )?;
        let fd = fd as i32;
        if fd < 0 {
            let detail = self.errno();
            return Err(self.failed("memfd_create", detail));
        }
        let pid = self.pid;
        let opened = File::options().read(true).write(true).open(format!("/proc/{pid}/fd/{fd}"));
        let file = opened.and_then(|f| f.set_len(len).map(|()| f));
        match file {
            Ok(file) => Ok(TargetFile { file, target_fd: fd }),
            Err(detail) => {
                self.close_in_target(fd)?;
                Err(InjectError::Read { pid, what: format!("the target's memfd {fd}"), detail })
            }
        }
    }

    /// dlopen(path, RTLD_NOW | RTLD_LOCAL) in the target: the library's load bias.
    fn dlopen(&mut self, path: &str) -> Result<u64, InjectError> {
        let path = format!("{path}\0");
        let mode = (nix::libc::RTLD_NOW | nix::libc::RTLD_LOCAL) as u64;
        let handle = self.call("dlopen", self.libc.dlopen, &[Arg::Bytes(path.as_bytes()), Arg::Int(mode)])?;
        if handle == 0 {
            let message = self.call("dlerror", self.libc.dlerror, &[])?;
            let text = if message == 0 { "no reason given".into() } else { self.remote.read_c_string(message, 512) };
            return Err(self.failed("dlopen", text));
        }
        // A handle is the library's struct link_map, whose first field is its load bias.
        let bias = self.remote.read(handle, 8).map_err(|detail| InjectError::Read { pid: self.pid, what: "link_map".into(), detail })?;
        Ok(u64::from_ne_bytes(bias.try_into().unwrap_or_default()))
    }

    fn entry_points(&self, base: u64) -> Result<Recorder, InjectError> {
        let pid = self.pid;
        let found = image(pid, Image::at(pid, &read_regions(pid)?, base), "the recorder")?;
        let lib = found.ok_or_else(|| InjectError::NoSymbol { pid, file: format!("{base:#x}"), name: ATTACH })?;
        // Looked up now so a recorder that could not be detached is never loaded.
        fn_in(pid, &lib, DETACH)?;
        Ok(Recorder { base, attach: fn_in(pid, &lib, ATTACH)?, redirect: fn_in(pid, &lib, REDIRECT)? })
    }
}

/// Hands the signals that arrived during calls to the threads' detach.
fn keep_signals(mut stopped: Stopped, remote: &Remote) {
    if let Some(&sig) = remote.signals.first() {
        stopped.keep_signal(remote.tid(), sig);
    }
}

impl Drop for Injection {
    fn drop(&mut self) {
        if let Some(stopped) = self.stopped.take() {
            keep_signals(stopped, &self.remote);
        }
    }
}
