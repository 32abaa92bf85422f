//! `cargo xtask dist`: one `leaktrace` to copy to a host that has no Rust,
//! LLVM or bpf-linker — statically linked (the C library included, the eBPF
//! object embedded as always) — with shell completions and man pages
//! generated from its own clap definitions (by `leaktrace-docs`, built
//! beside it and not shipped).
//!
//! The static C runtime is asked for with an explicit `--target` (the
//! host's), so that only leaktrace's own code is linked statically: build
//! scripts and proc-macros, built for the host without it, are unaffected.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The ELF program header type of the dynamic linker's path.
const PT_INTERP: u32 = 3;

/// Where `dist` writes, under the workspace.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target/dist")
}

/// Builds the static binary and writes it, the completions and the man
/// pages to `target/dist`; prints where each went.
pub fn dist(root: &Path, cargo: &Path, path: &std::ffi::OsStr) -> Result<()> {
    let triple = host_triple()?;
    eprintln!("dist: building leaktrace (release, {triple}, statically linked)");
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", "tracer-user", "--bin", "leaktrace", "--bin", "leaktrace-docs", "--target", &triple])
        .env("PATH", path)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the static leaktrace failed ({status})");
    }
    let built = root.join("target").join(&triple).join("release");
    let out = dir(root);
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    let binary = out.join("leaktrace");
    std::fs::copy(built.join("leaktrace"), &binary).with_context(|| format!("copying {}", built.display()))?;
    if let Some(interp) = interpreter(&std::fs::read(&binary)?)? {
        bail!("{} is dynamically linked (it asks for {interp})", binary.display());
    }
    let size = std::fs::metadata(&binary)?.len();
    println!("{}  (statically linked, {:.1} MiB)", binary.display(), size as f64 / (1 << 20) as f64);
    // Running it is the proof that it starts without a dynamic linker.
    let version = Command::new(&binary).arg("--version").output().context("running the built leaktrace")?;
    if !version.status.success() {
        bail!("{} --version failed: {}", binary.display(), String::from_utf8_lossy(&version.stderr));
    }
    let docs = Command::new(built.join("leaktrace-docs")).arg(&out).output().context("running leaktrace-docs")?;
    if !docs.status.success() {
        bail!("leaktrace-docs failed: {}", String::from_utf8_lossy(&docs.stderr));
    }
    print!("{}", String::from_utf8_lossy(&docs.stdout));
    Ok(())
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output().context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_owned).context("rustc -vV names no host")
}

/// The dynamic linker an ELF64 little-endian executable asks for (its
/// PT_INTERP), or None: a static executable runs without one.
fn interpreter(elf: &[u8]) -> Result<Option<String>> {
    let bytes = |at: usize, n: usize| elf.get(at..at + n).context("truncated ELF file");
    if bytes(0, 4)? != b"\x7fELF" || bytes(4, 2)? != [2, 1] {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |at| bytes(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |at| bytes(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32::from_le_bytes(bytes(ph, 4)?.try_into().expect("4 bytes")) == PT_INTERP {
            let (offset, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
            let path = bytes(offset, size)?;
            return Ok(Some(String::from_utf8_lossy(path).trim_end_matches('\0').to_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_linker() {
        let elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&elf).unwrap().expect("test binaries are dynamically linked");
        assert!(interp.contains("ld-linux"), "{interp}");
        assert!(interpreter(b"#!/bin/sh\n").is_err());
    }
}
