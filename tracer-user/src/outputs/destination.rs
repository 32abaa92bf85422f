//! `--output FILE`, opened before tracing so that a bad destination costs no
//! run: its directory is created when missing, a directory, a symbolic link,
//! a FIFO or a read-only file system is refused. When the final write still
//! fails, the report goes to stdout with a line saying so.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("--output {path}: {what}")]
    Refused { path: String, what: String },
}

/// The file the report will be written to.
pub struct Destination {
    path: PathBuf,
    file: File,
    /// Created by leaktrace: removed again if no report reaches it.
    created: bool,
    delivered: bool,
}

fn refused(path: &Path, what: impl Into<String>) -> DestinationError {
    DestinationError::Refused { path: path.display().to_string(), what: what.into() }
}

fn describe(path: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ELOOP) => "is a symbolic link; name the file itself".into(),
        Some(Errno::EISDIR) => "is a directory".into(),
        Some(Errno::EROFS) => "is on a read-only file system".into(),
        Some(Errno::ENXIO) => "is a FIFO or socket with no reader".into(),
        _ => format!("cannot be written: {e}{}", if path.as_os_str().is_empty() { " (empty path)" } else { "" }),
    }
}

/// The report on stdout. A reader gone (`| head`) is not an error worth a
/// word: the command's own status says how it went.
pub fn to_stdout(body: &[u8]) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(body) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the report to stdout"),
    }
}

impl Destination {
    /// Checks and opens `path` for writing, creating its directory when missing.
    /// An existing file is kept as it is until the report replaces it.
    pub fn open(path: &Path) -> Result<Self, DestinationError> {
        if path.is_dir() {
            return Err(refused(path, "is a directory"));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::create_dir_all(dir).map_err(|e| refused(path, format!("cannot create its directory {}: {e}", dir.display())))?;
        }
        let open = |create_new: bool| {
            OpenOptions::new()
                .write(true)
                .create_new(create_new)
                .mode(0o644)
                .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY).bits())
                .open(path)
        };
        let (file, created) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (open(false).map_err(|e| refused(path, describe(path, &e)))?, false),
            Err(e) => return Err(refused(path, describe(path, &e))),
        };
        let dest = Self { path: path.to_path_buf(), file, created, delivered: false };
        let kind = dest.file.metadata().map_err(|e| refused(path, e.to_string()))?.file_type();
        if !(kind.is_file() || kind.is_char_device()) {
            return Err(refused(path, "is not a regular file"));
        }
        Ok(dest)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, body: &[u8]) -> std::io::Result<()> {
        if self.file.metadata()?.is_file() {
            self.file.set_len(0)?;
            self.file.rewind()?;
        }
        self.file.write_all(body)?;
        self.file.flush()?;
        self.file.sync_data().or_else(|e| if e.raw_os_error() == Some(Errno::EINVAL as i32) { Ok(()) } else { Err(e) })
    }

    /// Writes the report; when that fails, says so and prints it on stdout
    /// (binary formats never to a terminal). Whether the file has it.
    pub fn deliver(mut self, body: &[u8]) -> bool {
        let Err(e) = self.write(body) else {
            self.delivered = true;
            return true;
        };
        let shown = self.path.display();
        if std::str::from_utf8(body).is_err() && std::io::stdout().is_terminal() {
            eprintln!("leaktrace: writing {shown} failed ({e}); the report is binary and stdout a terminal: it is lost");
            return false;
        }
        eprintln!("leaktrace: writing {shown} failed ({e}); the report follows on stdout");
        if let Err(e) = to_stdout(body) {
            eprintln!("leaktrace: {e:#}: the report is lost");
        }
        false
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        if self.created && !self.delivered {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path) -> String {
        Destination::open(path).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_missing_directory_is_created_and_a_report_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/report.json");
        assert!(Destination::open(&path).unwrap().deliver(b"{}\n"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        std::fs::write(&path, "an older and longer report\n").unwrap();
        assert!(Destination::open(&path).unwrap().deliver(b"new\n"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n", "an existing file is replaced, not appended to");
    }

    #[test]
    fn directories_links_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(err(dir.path()).ends_with("is a directory"), "{}", err(dir.path()));
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(err(&link).ends_with("is a symbolic link; name the file itself"), "{}", err(&link));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        assert!(err(&fifo).contains("FIFO"), "{}", err(&fifo));
        let under_file = target.join("report.json");
        assert!(err(&under_file).contains("cannot"), "{}", err(&under_file));
    }

    #[test]
    fn a_destination_never_written_is_removed_if_leaktrace_created_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        drop(Destination::open(&path).unwrap());
        assert!(!path.exists());
        std::fs::write(&path, "previous").unwrap();
        drop(Destination::open(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous", "a file that was there stays");
    }

    #[test]
    fn a_failed_write_is_reported_not_lost() {
        let dest = Destination::open(Path::new("/dev/full")).unwrap();
        let mut d = dest;
        assert!(d.write(b"report").is_err(), "/dev/full refuses every write");
    }
}
