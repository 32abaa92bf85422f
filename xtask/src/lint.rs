//! The checks CI runs before any test: formatting, the size rules, no
//! cycle between the files of tracer-user/src, clippy (host and the eBPF
//! target) with warnings as errors, and unused dependencies.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

fn check(root: &Path, what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("lint: {what}");
    let status = cmd.current_dir(root).status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

pub fn lint(root: &Path, cargo: &Path, path: &std::ffi::OsStr) -> Result<()> {
    let cargo_cmd = |args: &[&str]| {
        let mut c = Command::new(cargo);
        c.args(args).env("PATH", path);
        c
    };
    check(root, "cargo fmt --check", &mut cargo_cmd(&["fmt", "--all", "--check"]))?;
    check(root, "cargo fmt --check (recorder)", &mut cargo_cmd(&["fmt", "--manifest-path", "tracer-recorder/Cargo.toml", "--check"]))?;
    eprintln!("lint: size rules (files <= {} lines, functions <= {})", crate::size::MAX_FILE_LINES, crate::size::MAX_FN_LINES);
    crate::size::check(root)?;
    eprintln!("lint: no cycle between the files of tracer-user/src");
    crate::cycles::check(root)?;
    check(root, "cargo clippy (host, -D warnings)", &mut cargo_cmd(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let mut bpf = cargo_cmd(&[
        "clippy",
        "-p",
        "tracer-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
        "target/ebpf-clippy",
        "--",
        "-D",
        "warnings",
    ]);
    bpf.env("RUSTC_BOOTSTRAP", "1");
    check(root, "cargo clippy (eBPF target, -D warnings)", &mut bpf)?;
    // The recorder is a workspace of its own (no_std, never unwinds).
    let recorder = &mut cargo_cmd(&[
        "clippy",
        "--manifest-path",
        "tracer-recorder/Cargo.toml",
        "--all-targets",
        "--target-dir",
        "target/recorder-clippy",
        "--",
        "-D",
        "warnings",
    ]);
    check(root, "cargo clippy (recorder, -D warnings)", recorder)?;
    let mut machete = Command::new("cargo-machete");
    machete.arg(".").env("PATH", path);
    check(root, "cargo machete (unused dependencies)", &mut machete)
}
