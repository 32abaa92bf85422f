//! The recorder library, embedded in leaktrace at build time and written to
//! a memfd when needed: nothing is left on disk, and a command opens it by
//! leaktrace's /proc entry for the descriptor.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

use rustix::fs::{memfd_create, MemfdFlags};

/// The library's bytes (built by tracer-user's build script from tracer-recorder).
pub static RECORDER: &[u8] = include_bytes!(env!("LEAKTRACE_RECORDER"));

pub struct Library {
    file: File,
}

impl Library {
    pub fn create() -> std::io::Result<Self> {
        if RECORDER.is_empty() {
            return Err(std::io::Error::other("this leaktrace was built without its in-process recorder"));
        }
        let mut file = File::from(memfd_create("leaktrace-recorder", MemfdFlags::CLOEXEC)?);
        file.write_all(RECORDER)?;
        Ok(Self { file })
    }

    /// A path any process of leaktrace's mount and pid namespaces can open.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }
}
