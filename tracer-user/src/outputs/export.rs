//! The live view's `e`: the report as JSON, and beside it every profile
//! format, in files that did not exist before.
//!
//! The names are generated (`leaktrace-PID-SECONDS.json`, `.pb.gz`, ...), so
//! in a shared directory another user could plant a link at one: every file
//! is created with O_EXCL and O_NOFOLLOW, and when any name of the set is
//! taken (file or link) the whole set moves on to `-1`, `-2`, ... instead of
//! opening what is there.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;

use super::{flamegraph, folded, pprof};
use crate::report::Report;

/// Stems tried before giving up.
const ATTEMPTS: u32 = 100;

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o644).custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits()).open(path)
}

/// Creates `dir/STEM{suffix}` for every suffix, or with `STEM-N` when any of
/// those names is taken; never opens an existing entry. The files, in order.
pub fn create_new(dir: &Path, stem: &str, suffixes: &[&str]) -> std::io::Result<Vec<(PathBuf, File)>> {
    let mut last = None;
    for n in 0..ATTEMPTS {
        let base = if n == 0 { stem.to_owned() } else { format!("{stem}-{n}") };
        let mut made: Vec<(PathBuf, File)> = Vec::new();
        let mut failed = None;
        for suffix in suffixes {
            let path = dir.join(format!("{base}{suffix}"));
            match create(&path) {
                Ok(f) => made.push((path, f)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failed else { return Ok(made) };
        for (path, _) in &made {
            let _ = std::fs::remove_file(path); // ours: created just now
        }
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        last = Some(e);
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// Writes the report and its profiles into `dir`; what was written, or why not.
pub fn export(report: &Report, dir: &Path) -> Result<String, String> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let mut contents = vec![(".json", json.into_bytes())];
    contents.extend(profiles(report).map_err(|e| e.to_string())?);
    let suffixes: Vec<&str> = contents.iter().map(|(s, _)| *s).collect();
    let stem = format!("leaktrace-{}-{secs}", report.target.pid);
    let files = create_new(dir, &stem, &suffixes).map_err(|e| format!("{}/{stem}.json: {e}", dir.display()))?;
    for ((path, mut file), (_, body)) in files.iter().map(|(p, f)| (p, f)).zip(&contents) {
        file.write_all(body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let json_path = files[0].0.display().to_string();
    Ok(format!("{json_path} (and .pb.gz, .folded, .svg)"))
}

/// (suffix, contents) of `.pb.gz`, `.folded` and `.svg` (and `.handles.svg`
/// when handles are outstanding).
pub fn profiles(report: &Report) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let graphs = flamegraph::render(report)?;
    let mut out = vec![(".pb.gz", pprof::encode(report)?), (".folded", folded::render(report).into_bytes()), (".svg", graphs.bytes)];
    if let Some(h) = graphs.handles {
        out.push((".handles.svg", h));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Target;

    #[test]
    fn every_format_with_its_suffix() {
        let r = Report::of_sites(Target::default(), Vec::new(), 0);
        let all = profiles(&r).unwrap();
        let suffixes: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
        assert_eq!(suffixes, [".pb.gz", ".folded", ".svg"]);
        assert!(String::from_utf8_lossy(&all[2].1).contains("no bytes outstanding"));
    }

    #[test]
    fn create_new_gives_up_rather_than_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let first = create_new(dir.path(), "x", &[".a", ".b"]).unwrap();
        let second = create_new(dir.path(), "x", &[".a", ".b"]).unwrap();
        assert_eq!(first[1].0, dir.path().join("x.b"));
        assert_eq!(second[0].0, dir.path().join("x-1.a"));
        let missing = dir.path().join("missing");
        assert!(create_new(&missing, "x", &[".a"]).is_err(), "no directory is created for an export");
    }
}
