//! `cargo xtask`: the project's own orchestration.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xtask::{fixture, setup};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "leaktrace's set-up, demo, tests and benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: LLVM 22, bpf-linker 0.13, rust-src, gcc, valgrind, tmux, strace, gdb, cargo-machete, cargo-fuzz, QEMU and the kernel matrix's tools.
    Setup,
    /// The main job: set up, build, and run leaktrace over the fixture's leaky and fixed builds.
    Demo,
    /// Set up, lint (fmt, clippy, unused dependencies), build, and run every test (unit, oracle, and the privileged kernel tests), the kernel matrix, then each fuzz target for a fixed time.
    Test,
    /// Formatting, the size rules, no file cycle in tracer-user/src, clippy (host and eBPF target, -D warnings) and unused dependencies, as CI runs them.
    Lint,
    /// Run each fuzz target for a fixed time (part of `test`).
    Fuzz,
    /// The kernel smoke suite inside QEMU guests running Debian 12's own kernels, 6.1 and 6.12 (part of `test`).
    Matrix {
        /// Only this kernel series (6.1 or 6.12).
        #[arg(long)]
        kernel: Option<String>,
        /// Only the tests whose item, test binary or name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Seconds a guest may run before it is killed and fails.
        #[arg(long, default_value_t = MATRIX_TIMEOUT_SECS)]
        timeout: u64,
    },
    /// Set up, then write a statically linked leaktrace, its shell completions and man pages to target/dist.
    Dist,
    /// Check the fixture against valgrind (the oracle independent of leaktrace).
    Oracle,
    /// Overhead and throughput: leaktrace against the probe floor, bpftrace, valgrind and heaptrack (writes bench/results.md).
    Bench {
        /// A short smoke run.
        #[arg(long)]
        quick: bool,
        /// Only these rows: printed and judged, bench/results.md left as it is.
        #[arg(long, value_enum, value_name = "ROWS")]
        only: Option<xtask::bench::Rows>,
    },
}

/// A whole guest's time limit: booting and the suite, emulated.
const MATRIX_TIMEOUT_SECS: u64 = 900;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let status =
        Command::new(env!("CARGO")).current_dir(root).args(args).env("PATH", path_with_cargo_bin()).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    paths.push(setup::cargo_bin());
    std::env::join_paths(paths).expect("PATH entries")
}

fn demo(root: &Path) -> Result<()> {
    setup::setup(&[])?;
    fixture::build(root)?;
    cargo(root, &["build", "--release", "-p", "tracer-user"])?;
    let leaktrace = root.join("target/release/leaktrace");
    let manifest = root.join("fixtures/manifest.json");
    for variant in ["leaky", "fixed"] {
        let driver = fixture::driver(root, variant);
        eprintln!("\n=== leaktrace run --ci --focus fixtures/net/ -- {} ({variant} build)", driver.display());
        let mut cmd = Command::new(&leaktrace);
        cmd.args(["run", "--ci", "--focus", "fixtures/net/"]);
        if variant == "leaky" {
            cmd.arg("--expect").arg(&manifest);
        }
        let status = cmd.arg("--").arg(&driver).status().context("running leaktrace")?;
        eprintln!(
            "=== exit code {} ({variant}: expected 0 — {})",
            status.code().unwrap_or(-1),
            if variant == "leaky" { "leaks equal the manifest" } else { "nothing leaks" }
        );
        if !status.success() {
            bail!("leaktrace over the {variant} fixture did not give the expected verdict");
        }
    }
    Ok(())
}

fn test(root: &Path) -> Result<()> {
    setup::setup(&[])?;
    xtask::lint::lint(root, Path::new(env!("CARGO")), &path_with_cargo_bin())?;
    fixture::build(root)?;
    cargo(root, &["test"])?;
    // The library's privileged unit tests, ignored by a plain `cargo test --lib` (no root needed there).
    cargo(root, &["test", "-p", "tracer-user", "--lib", "--", "--ignored"])?;
    matrix(root, None, None, MATRIX_TIMEOUT_SECS)?;
    xtask::fuzz::run(root, &path_with_cargo_bin())
}

fn matrix(root: &Path, kernel: Option<String>, filter: Option<String>, timeout: u64) -> Result<()> {
    let opts = xtask::vm::MatrixOptions { kernel, filter, timeout: std::time::Duration::from_secs(timeout) };
    xtask::vm::run(root, Path::new(env!("CARGO")), &path_with_cargo_bin(), &opts)
}

fn main() -> Result<()> {
    let root = root();
    match Cli::parse().cmd {
        Cmd::Setup => setup::setup(&[]),
        Cmd::Demo => demo(&root),
        Cmd::Test => test(&root),
        Cmd::Lint => xtask::lint::lint(&root, Path::new(env!("CARGO")), &path_with_cargo_bin()),
        Cmd::Fuzz => {
            setup::setup(&[])?;
            xtask::fuzz::run(&root, &path_with_cargo_bin())
        }
        Cmd::Matrix { kernel, filter, timeout } => matrix(&root, kernel, filter, timeout),
        Cmd::Dist => {
            setup::setup(&[])?;
            xtask::dist::dist(&root, Path::new(env!("CARGO")), &path_with_cargo_bin())
        }
        Cmd::Bench { quick, only } => xtask::bench::run(&root, &xtask::bench::BenchOptions { quick, only }),
        Cmd::Oracle => {
            setup::setup(&[])?;
            println!("{}", fixture::check(&root)?);
            Ok(())
        }
    }
}
