//! `leaktrace run --node-perf-map -- node ...`: V8 names its JIT code only
//! when asked. This passes node the flags that make it write
//! `/tmp/perf-PID.map` (interpreted functions included), and once the
//! report is made removes what they made it write: the perf map and the
//! `isolate-0x...-PID-v8.log` V8 leaves in its working directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::bail;

use crate::process::resolve_program;

/// The flags, in the order node takes them.
pub const PERF_MAP_FLAGS: [&str; 2] = ["--perf-basic-prof", "--interpreted-frames-native-stack"];

/// Files to remove after the report: those the flags made the target write.
#[derive(Debug)]
pub struct PerfMapFiles {
    since: SystemTime,
}

/// The executable's name is node's (`node`, Debian's `nodejs`), or the file it links to is.
fn is_node(program: &Path) -> bool {
    let named = |p: &Path| p.file_name().is_some_and(|n| n == "node" || n == "nodejs");
    named(program) || std::fs::canonicalize(program).is_ok_and(|p| named(&p))
}

/// The command with the flags inserted after the program (those it already has are not repeated).
pub fn with_perf_map(mut argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Option<PerfMapFiles>)> {
    let program = resolve_program(&argv[0])?;
    if !is_node(&program) {
        bail!(
            "--node-perf-map: {} is not node (run node itself, or give it {} yourself, e.g. through NODE_OPTIONS)",
            program.display(),
            PERF_MAP_FLAGS.join(" ")
        );
    }
    // node's own options come before the script; what follows it is the script's.
    let options: Vec<&OsString> = argv[1..].iter().take_while(|a| a.as_bytes().starts_with(b"-") && *a != "--").collect();
    let missing: Vec<OsString> =
        PERF_MAP_FLAGS.iter().filter(|f| !options.iter().any(|a| *a == OsStr::new(f))).map(OsString::from).collect();
    let asked = missing.iter().any(|f| f == PERF_MAP_FLAGS[0]);
    argv.splice(1..1, missing);
    Ok((argv, asked.then(|| PerfMapFiles { since: SystemTime::now() })))
}

impl PerfMapFiles {
    /// Removes the perf map and V8's log of `pid`, when they are regular
    /// files written since the target started.
    pub fn remove(&self, pid: u32) {
        let log_suffix = format!("-{pid}-v8.log");
        let logs =
            std::fs::read_dir(".").into_iter().flatten().flatten().map(|e| e.path()).filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("isolate-0x") && n.ends_with(&log_suffix))
            });
        for path in std::iter::once(format!("/tmp/perf-{pid}.map").into()).chain(logs) {
            let fresh = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t >= self.since));
            if fresh {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_flags_go_after_node_once() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("node");
        std::fs::copy("/bin/true", &exe).unwrap();
        let (argv, files) = with_perf_map(args(&[exe.to_str().unwrap(), "app.js", "--perf-basic-prof"])).unwrap();
        let want = [exe.to_str().unwrap(), PERF_MAP_FLAGS[0], PERF_MAP_FLAGS[1], "app.js", "--perf-basic-prof"];
        assert_eq!(argv, args(&want), "an argument of the script is not node's");
        assert!(files.is_some());
        let (argv, files) = with_perf_map(args(&[exe.to_str().unwrap(), "--perf-basic-prof", "app.js"])).unwrap();
        assert_eq!(argv.len(), 4);
        assert!(files.is_none(), "node was asked already: its perf map is the user's to keep");
        let err = with_perf_map(args(&["/bin/true"])).unwrap_err().to_string();
        assert!(err.starts_with("--node-perf-map: /bin/true is not node"), "{err}");
    }
}
