//! The live view's `e`: the view as JSON, in a file that did not exist before.
//!
//! The name is generated (`leaktrace-PID-SECONDS.json`), so in a shared
//! directory another user could plant a link at it: the file is created with
//! O_EXCL and O_NOFOLLOW, and a name already taken (file or link) moves on
//! to `-1`, `-2`, ... instead of opening what is there.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::App;

/// Names tried before giving up.
const ATTEMPTS: u32 = 100;

/// Creates `dir/STEM.json`, or `dir/STEM-N.json` when that name is taken; never opens an existing entry.
pub fn create_new(dir: &Path, stem: &str) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for n in 0..ATTEMPTS {
        let name = if n == 0 { format!("{stem}.json") } else { format!("{stem}-{n}.json") };
        let path = dir.join(name);
        let opened =
            OpenOptions::new().write(true).create_new(true).mode(0o644).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path);
        match opened {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// Writes the view's report into `dir`; the path written, or why not.
pub fn export(app: &App, dir: &Path) -> Result<String, String> {
    let report = app.view_report().ok_or("nothing to export yet")?;
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    let stem = format!("leaktrace-{}-{secs}", report.target.pid);
    let (path, mut file) = create_new(dir, &stem).map_err(|e| format!("{}/{stem}.json: {e}", dir.display()))?;
    file.write_all(json.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.display().to_string())
}
