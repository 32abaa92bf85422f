//! `leaktrace run --node-perf-map` / `--node-jitdump` `-- node ...`: V8
//! names its JIT code only when asked. This passes node the flags that make
//! it write `/tmp/perf-PID.map` (function names and where they start) or a
//! jitdump `jit-PID.dump` in its working directory (the same, with the
//! source position of each instruction of compiled code: the line of a
//! call), interpreted functions included, and once the report is made
//! removes what they made it write: that file and the
//! `isolate-0x...-PID-v8.log` V8 leaves in its working directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::bail;

use crate::process::resolve_program;

/// Which of V8's JIT symbol files node is asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeNames {
    /// `--node-perf-map`: a perf map.
    PerfMap,
    /// `--node-jitdump`: a jitdump with debug records.
    Jitdump,
}

impl NodeNames {
    /// The flags, in the order node takes them; the first makes V8 write the file.
    pub fn flags(self) -> [&'static str; 2] {
        match self {
            Self::PerfMap => ["--perf-basic-prof", "--interpreted-frames-native-stack"],
            Self::Jitdump => ["--perf-prof", "--interpreted-frames-native-stack"],
        }
    }

    fn option(self) -> &'static str {
        match self {
            Self::PerfMap => "--node-perf-map",
            Self::Jitdump => "--node-jitdump",
        }
    }

    /// The file the first flag makes the process `pid` write.
    fn file(self, pid: u32) -> PathBuf {
        match self {
            Self::PerfMap => format!("/tmp/perf-{pid}.map").into(),
            Self::Jitdump => format!("jit-{pid}.dump").into(),
        }
    }
}

/// Files to remove after the report: those the flags made the target write.
#[derive(Debug)]
pub struct NodeFiles {
    names: NodeNames,
    since: SystemTime,
}

/// The executable's name is node's (`node`, Debian's `nodejs`), or the file it links to is.
fn is_node(program: &Path) -> bool {
    let named = |p: &Path| p.file_name().is_some_and(|n| n == "node" || n == "nodejs");
    named(program) || std::fs::canonicalize(program).is_ok_and(|p| named(&p))
}

/// The command with the flags inserted after the program (those it already has are not repeated).
pub fn with_node_flags(mut argv: Vec<OsString>, names: NodeNames) -> anyhow::Result<(Vec<OsString>, Option<NodeFiles>)> {
    let program = resolve_program(&argv[0])?;
    let flags = names.flags();
    if !is_node(&program) {
        bail!(
            "{}: {} is not node (run node itself, or give it {} yourself, e.g. through NODE_OPTIONS)",
            names.option(),
            program.display(),
            flags.join(" ")
        );
    }
    // node's own options come before the script; what follows it is the script's.
    let options: Vec<&OsString> = argv[1..].iter().take_while(|a| a.as_bytes().starts_with(b"-") && *a != "--").collect();
    let missing: Vec<OsString> = flags.iter().filter(|f| !options.iter().any(|a| *a == OsStr::new(f))).map(OsString::from).collect();
    let asked = missing.iter().any(|f| f == flags[0]);
    argv.splice(1..1, missing);
    Ok((argv, asked.then(|| NodeFiles { names, since: SystemTime::now() })))
}

impl NodeFiles {
    /// Removes the symbol file and V8's log of `pid`, when they are regular
    /// files written since the target started.
    pub fn remove(&self, pid: u32) {
        let log_suffix = format!("-{pid}-v8.log");
        let logs =
            std::fs::read_dir(".").into_iter().flatten().flatten().map(|e| e.path()).filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("isolate-0x") && n.ends_with(&log_suffix))
            });
        for path in std::iter::once(self.names.file(pid)).chain(logs) {
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
        let map = NodeNames::PerfMap;
        let (argv, files) = with_node_flags(args(&[exe.to_str().unwrap(), "app.js", "--perf-basic-prof"]), map).unwrap();
        let want = [exe.to_str().unwrap(), map.flags()[0], map.flags()[1], "app.js", "--perf-basic-prof"];
        assert_eq!(argv, args(&want), "an argument of the script is not node's");
        assert!(files.is_some());
        let (argv, files) = with_node_flags(args(&[exe.to_str().unwrap(), "--perf-basic-prof", "app.js"]), map).unwrap();
        assert_eq!(argv.len(), 4);
        assert!(files.is_none(), "node was asked already: its perf map is the user's to keep");
        let err = with_node_flags(args(&["/bin/true"]), map).unwrap_err().to_string();
        assert!(err.starts_with("--node-perf-map: /bin/true is not node"), "{err}");
        let (argv, files) = with_node_flags(args(&[exe.to_str().unwrap(), "--perf-basic-prof", "app.js"]), NodeNames::Jitdump).unwrap();
        let want = [exe.to_str().unwrap(), "--perf-prof", "--interpreted-frames-native-stack", "--perf-basic-prof", "app.js"];
        assert_eq!(argv, args(&want), "a jitdump asked for: the perf map the user asked for stays the user's");
        assert!(files.is_some_and(|f| f.names.file(7) == Path::new("jit-7.dump")));
        let err = with_node_flags(args(&["/bin/true"]), NodeNames::Jitdump).unwrap_err().to_string();
        assert!(err.starts_with("--node-jitdump: /bin/true is not node") && err.contains("--perf-prof"), "{err}");
    }
}
