//! `cargo xtask setup`: installs what building and testing leaktrace needs on a
//! fresh Debian machine. Each step says what it checks, skips what is already
//! there, and stops with the reason when an install fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod node;

/// Debian packages: LLVM 22 for bpf-linker, C and C++ tools for the fixture
/// and the test programs, valgrind for the oracles, tmux for the TUI's
/// end-to-end test, strace for the bad-input test (no bpf() call before a
/// refusal), gdb to hold a report build open (ingestion goes on); for the symbolizer: binutils (strip) and libc6-dbg
/// (libc's separate debug information); the programs leaktrace is tested
/// on that the project did not write (curl, python3, redis, nginx: the
/// pre-fork server compared with valgrind process by process); jemalloc and
/// tcmalloc for the kernel tests of other allocators (preloaded); libuv's
/// headers and library for the event-loop tests; and the
/// consumers the tests hand leaktrace's other outputs to: Go's pprof
/// (golang-go) and a Prometheus server; for the kernel matrix, QEMU (its
/// virtiofsd too: Debian 12 has no separate package), a static busybox and
/// cpio for the guests' initramfs, kmod (depmod) and xz-utils for the
/// kernels' modules.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "gcc",
    "g++",
    "binutils",
    "make",
    "valgrind",
    "tmux",
    "strace",
    "gdb",
    "libc6-dbg",
    "curl",
    "python3",
    "redis-server",
    "redis-tools",
    "nginx",
    "libjemalloc2",
    "libtcmalloc-minimal4",
    "libuv1-dev",
    "golang-go",
    "prometheus",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13";

fn step(what: &str) {
    eprintln!("setup: {what}");
}

/// Runs `cmd`; its failure names the command and its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

pub fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    home.join("bin")
}

fn apt_packages(extra: &[&str]) -> Result<()> {
    let all: Vec<&str> = PACKAGES.iter().chain(extra).copied().collect();
    let missing: Vec<&str> = all.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        step(&format!("Debian packages ({}) already installed", all.join(" ")));
        return Ok(());
    }
    step(&format!("installing Debian packages: {} (apt-get)", missing.join(" ")));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("apt-get install failed: setup needs root and access to Debian's package archive")
}

fn rust_src() -> Result<()> {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().context("rustc not found")?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if Path::new(&sysroot).join("lib/rustlib/src/rust/library/core").is_dir() {
        step("rust-src (standard library sources for the BPF target) already installed");
        return Ok(());
    }
    step("installing rust-src for the active toolchain (rustup component add rust-src)");
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn bpf_linker() -> Result<()> {
    let exe = cargo_bin().join("bpf-linker");
    let current = Command::new(&exe).arg("--version").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if current.as_deref().is_some_and(|v| v.contains(&format!(" {BPF_LINKER_VERSION}."))) {
        step(&format!("bpf-linker {BPF_LINKER_VERSION} already installed"));
        return Ok(());
    }
    step(&format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (cargo install; about a minute)"));
    run(Command::new("cargo")
        .args([
            "install",
            "--locked",
            "bpf-linker",
            "--version",
            &format!("^{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .env("LLVM_PREFIX", LLVM_PREFIX))
}

/// A cargo-installed tool at a pinned version (`cargo install --locked`).
fn cargo_tool(krate: &str, exe: &str, version: &str, why: &str) -> Result<()> {
    let current = Command::new(cargo_bin().join(exe)).arg("--version").output().ok();
    if current.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(version)) {
        step(&format!("{krate} {version} already installed"));
        return Ok(());
    }
    step(&format!("installing {krate} {version} ({why}; cargo install)"));
    run(Command::new("cargo").args(["install", "--locked", krate, "--version", &format!("={version}")]))
}

fn tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        step("tracefs mounted at /sys/kernel/tracing");
        return Ok(());
    }
    step("mounting tracefs at /sys/kernel/tracing");
    run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
}

/// Everything; `extra` are Debian packages a particular job needs on top.
pub fn setup(extra: &[&str]) -> Result<()> {
    apt_packages(extra)?;
    rust_src()?;
    bpf_linker()?;
    cargo_tool("cargo-machete", "cargo-machete", "0.9.2", "CI's check for unused dependencies")?;
    cargo_tool("cargo-fuzz", "cargo-fuzz", "0.13.2", "the fuzz targets CI runs")?;
    tracefs()?;
    node::node_for_tests(Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask lives in the workspace")?)?;
    step("done");
    Ok(())
}
