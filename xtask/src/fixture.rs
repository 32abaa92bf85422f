//! The fixture: building it, and the oracle independent of leaktrace —
//! valgrind memcheck with --track-fds=yes must agree with the manifest.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use tracer_common::manifest::{ExpectedLeak, Manifest};
use tracer_common::valgrind;

pub const VARIANTS: [&str; 4] = ["leaky", "fixed", "leaky-nofp", "fixed-nofp"];

/// `make -C fixtures`: all four builds.
pub fn build(root: &Path) -> Result<()> {
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root.join("fixtures"))
        .status()
        .context("running make (cargo xtask setup installs it)")?;
    if !status.success() {
        bail!("building the fixture failed ({status})");
    }
    Ok(())
}

pub fn driver(root: &Path, variant: &str) -> PathBuf {
    root.join("fixtures/build").join(variant).join("net-driver")
}

pub fn manifest(root: &Path) -> Result<Manifest> {
    Ok(Manifest::load(&root.join("fixtures/manifest.json"))?)
}

pub use tracer_common::valgrind::Sites;

/// What valgrind reports still held at exit, attributed to the innermost
/// frame in the fixture's sources.
pub fn oracle(root: &Path, variant: &str) -> Result<Sites> {
    let out = Command::new("valgrind")
        .args(["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--num-callers=30"])
        .arg(driver(root, variant))
        .output()
        .context("running valgrind (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!("valgrind over the {variant} build failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(valgrind::parse(&String::from_utf8_lossy(&out.stderr), fixture_file)?)
}

/// The innermost frame in the fixture's sources (net_*.c).
fn fixture_file(file: &str) -> bool {
    file.starts_with("net_") && file.ends_with(".c")
}

pub fn expected_sites(expected: &[ExpectedLeak]) -> Sites {
    expected.iter().map(|e| ((e.kind.clone(), e.function.clone(), e.file.clone(), e.line), (e.count, e.bytes))).collect()
}

/// Builds, runs valgrind on the leaky and fixed builds, and returns a table;
/// fails with the differences when leaky ≠ manifest or fixed holds anything.
pub fn check(root: &Path) -> Result<String> {
    build(root)?;
    let expected = expected_sites(&manifest(root)?.expected(&[])?);
    let leaky = oracle(root, "leaky")?;
    let fixed = oracle(root, "fixed")?;
    let mut table = String::from("kind     site                                         manifest        valgrind (leaky)\n");
    for (k, v) in &expected {
        let got = leaky.get(k).copied().unwrap_or((0, 0));
        table +=
            &format!("{:<8} {:<44} x{:<3} {:>6} B   x{:<3} {:>6} B\n", k.0, format!("{} ({}:{})", k.1, k.2, k.3), v.0, v.1, got.0, got.1);
    }
    table += &format!("fixed build under valgrind: {} sites held at exit\n", fixed.len());
    if leaky != expected {
        bail!("valgrind disagrees with the manifest on the leaky build:\n{table}\nvalgrind: {leaky:#?}");
    }
    if !fixed.is_empty() {
        bail!("the fixed build holds resources at exit: {fixed:#?}");
    }
    Ok(table)
}
