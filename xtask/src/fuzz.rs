//! The fuzz targets (`fuzz/`, cargo-fuzz and libFuzzer), each run for a fixed
//! time: what leaktrace parses comes from programs that may be crafted.
//!
//! cargo-fuzz needs nightly compiler flags; the active toolchain is given
//! them with RUSTC_BOOTSTRAP=1, as the eBPF build already is, so no second
//! toolchain is needed. The eBPF object is left out (LEAKTRACE_EBPF_STUB=1):
//! the targets never load programs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Every target in fuzz/Cargo.toml.
pub const TARGETS: [&str; 3] = ["decode", "maps", "symbolize"];
/// How long each target runs in CI.
pub const SECONDS_EACH: u32 = 20;

/// libFuzzer's limits: a run fails on any allocation over `-malloc_limit_mb`
/// (hostile sizes must be capped before allocating) or an input taking more
/// than `-timeout` seconds.
const LIBFUZZER_ARGS: [&str; 5] = ["-timeout=10", "-rss_limit_mb=2048", "-malloc_limit_mb=512", "-max_len=65536", "-print_final_stats=1"];

/// Small real inputs to start from: ELF files with DWARF and CFI, a maps file.
fn seed(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    match target {
        "symbolize" => {
            let src = dir.join("seed.c");
            std::fs::write(
                &src,
                "#include <stdlib.h>\nint leak(int n) { return (int)(long)malloc(n); }\nint main(int c, char **v) { return leak(c); }\n",
            )?;
            for (out, flags) in
                [("seed-g.elf", &["-g", "-O1"][..]), ("seed-so.elf", &["-g", "-O2", "-shared", "-fPIC"][..]), ("seed-s.elf", &["-s"][..])]
            {
                let status = Command::new("cc").args(flags).arg("-o").arg(dir.join(out)).arg(&src).status().context("running cc")?;
                if !status.success() {
                    bail!("cc {flags:?} failed building a fuzz seed");
                }
            }
            std::fs::remove_file(&src)?;
        }
        "maps" => std::fs::write(dir.join("self.maps"), std::fs::read("/proc/self/maps")?)?,
        _ => {}
    }
    Ok(dir)
}

/// Builds and runs every target for [`SECONDS_EACH`] seconds; a crash, a
/// panic or an allocation past the limits fails (the input is kept under fuzz/artifacts/).
pub fn run(root: &Path, path: &std::ffi::OsStr) -> Result<()> {
    let scratch = root.join("target/fuzz-scratch");
    std::fs::create_dir_all(&scratch)?;
    for target in TARGETS {
        let corpus = seed(root, target)?;
        // Inputs that once failed, replayed first (read only: new finds go to `corpus`).
        let regressions = root.join("fuzz/regressions").join(target);
        eprintln!("fuzz: {target} for {SECONDS_EACH} s");
        let status = Command::new("cargo")
            .current_dir(root)
            .env("PATH", path)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("LEAKTRACE_EBPF_STUB", "1")
            // The symbolize target's module files stay inside target/.
            .env("TMPDIR", &scratch)
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus)
            .args(regressions.is_dir().then_some(&regressions))
            .arg("--")
            .arg(format!("-max_total_time={SECONDS_EACH}"))
            .args(LIBFUZZER_ARGS)
            .status()
            .context("running cargo fuzz (cargo xtask setup installs it)")?;
        if !status.success() {
            bail!("fuzz target {target} failed ({status}); the input that failed is under fuzz/artifacts/{target}/");
        }
    }
    Ok(())
}
