//! Privileged: the live view reads source files as the target would. Root
//! runs leaktrace; the target's DWARF may name any file, so what the target
//! could not read is never shown, and a target in another mount namespace
//! has its own files read.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use leaktrace::tui::SourceReader;

const NOBODY: &str = "65534";

struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `argv` as nobody (uid and gid 65534, no groups), once it has exec'd `comm`.
fn as_nobody(argv: &[&str], comm: &str) -> Target {
    let child = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .args(argv)
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv (util-linux)");
    let target = Target(child);
    wait_for_comm(target.0.id(), comm);
    target
}

fn wait_for_comm(pid: u32, comm: &str) {
    for _ in 0..200 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("pid {pid} never became {comm}");
}

/// A directory everyone may enter, with a file everyone may read and one only root may.
fn files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let public = dir.path().join("public.c");
    std::fs::write(&public, "PUBLIC-LINE-ONE\nPUBLIC-LINE-TWO\n").unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:TOPSECRET-LINE-ONE\nroot:TOPSECRET-LINE-TWO\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, public.display().to_string(), secret.display().to_string())
}

#[test]
fn a_file_the_target_cannot_read_is_not_read_for_it() {
    require_root();
    let (_dir, public, secret) = files();
    let target = as_nobody(&["sleep", "60"], "sleep");
    let reader = SourceReader::for_process(target.0.id());
    assert_eq!(reader.read_lines(&public), Some(vec!["PUBLIC-LINE-ONE".to_owned(), "PUBLIC-LINE-TWO".to_owned()]));
    assert!(std::fs::read_to_string(&secret).is_ok(), "root itself can read it");
    assert_eq!(reader.read_lines(&secret), None, "nobody cannot");
    assert_eq!(reader.read_lines("/etc/shadow"), None);
    // leaktrace's own threads keep root's credentials.
    assert!(std::fs::read_to_string(&secret).is_ok());
    let mine = SourceReader::for_process(std::process::id());
    assert!(mine.read_lines(&secret).is_some(), "a root target may read it");
}

#[test]
fn a_target_in_another_mount_namespace_has_its_own_files_read() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ns.c");
    std::fs::write(&file, "OUTSIDE\n").unwrap();
    let script = format!("mount -t tmpfs tmpfs {0} && echo INSIDE > {0}/ns.c && exec sleep 60", dir.path().display());
    let target = Target(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).stdin(Stdio::null()).spawn().unwrap(),
    );
    wait_for_comm(target.0.id(), "sleep");
    let reader = SourceReader::for_process(target.0.id());
    assert_eq!(reader.read_lines(&file.display().to_string()), Some(vec!["INSIDE".to_owned()]));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "OUTSIDE\n");
}

fn build_foreign_lines(dir: &Path, public: &str, secret: &str) -> String {
    let exe = dir.join("foreign_lines");
    let out = Command::new("cc")
        .args(["-g", "-O1", "-fno-omit-frame-pointer"])
        .arg(format!("-DPUBLIC_SOURCE=\"{public}\""))
        .arg(format!("-DSECRET_SOURCE=\"{secret}\""))
        .arg("-o")
        .arg(&exe)
        .arg(programs_src().join("foreign_lines.c"))
        .output()
        .expect("cc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    exe.display().to_string()
}

#[test]
fn the_live_view_shows_no_line_of_a_root_only_file_named_by_the_targets_dwarf() {
    require_root();
    let (dir, public, secret) = files();
    let exe = build_foreign_lines(dir.path(), &public, &secret);
    let target = as_nobody(&[&exe], "foreign_lines");
    let term = Tmux::new(&format!("leaktrace-source-{}", target.0.id()));
    term.type_line(&format!("{} attach --pid {} --tui; echo LEAKTRACE-EXITED-$?", env!("CARGO_BIN_EXE_leaktrace"), target.0.id()));
    // Largest first: from_public is selected, and its file is readable by the target.
    let s = term.wait_for("the public site's source line", |s| s.contains("PUBLIC-LINE-ONE"));
    assert!(s.contains("from_public"), "{s}");
    term.send("j");
    let s = term.wait_for("the secret site selected", |s| s.lines().any(|l| l.contains("from_secret  heap")));
    std::thread::sleep(Duration::from_millis(1200)); // two refreshes
    let s = term.screen().to_owned() + &s;
    assert!(!s.contains("TOPSECRET"), "a line of a file only root may read is on screen:\n{s}");
    term.send("q");
    term.wait_for("exit", |s| s.contains("LEAKTRACE-EXITED-0"));
}
