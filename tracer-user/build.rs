//! Builds the eBPF object (tracer-ebpf) for bpfel-unknown-none and hands its
//! path to the crate as `LEAKTRACE_BPF_OBJECT`; builds the in-process
//! recorder library (tracer-recorder) and hands its path as `LEAKTRACE_RECORDER`.
//!
//! The object is always built for real. The toolchain it needs (bpf-linker and
//! the Rust standard library sources) is installed by `cargo xtask setup`; when
//! it is missing the build fails and says so. `LEAKTRACE_EBPF_STUB=1` builds an
//! empty object instead, for host-only checks: such a `leaktrace` refuses to trace.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP: &str = "cargo xtask setup";

fn main() {
    println!("cargo:rerun-if-env-changed=LEAKTRACE_EBPF_STUB");
    println!("cargo:rustc-check-cfg=cfg(ebpf_stub)");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("leaktrace.bpf.o");
    println!("cargo:rustc-env=LEAKTRACE_BPF_OBJECT={}", object.display());
    let recorder = out_dir.join("libleaktrace_recorder.so");
    println!("cargo:rustc-env=LEAKTRACE_RECORDER={}", recorder.display());

    if env::var_os("LEAKTRACE_EBPF_STUB").is_some_and(|v| v == "1") {
        println!(
            "cargo:warning=LEAKTRACE_EBPF_STUB=1: building leaktrace without its eBPF object; it will refuse to trace, and the unit tests of the object (probes/load/object.rs, prepare.rs, raw_programs.rs) are left out"
        );
        println!("cargo:rustc-cfg=ebpf_stub");
        std::fs::write(&object, []).expect("write stub object");
        std::fs::write(&recorder, []).expect("write stub recorder");
        return;
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    build_recorder(&root, &recorder);
    for dir in ["tracer-ebpf/src", "tracer-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("tracer-ebpf/Cargo.toml").display());

    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    check_toolchain(&rustc);

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("ebpf");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--package", "tracer-ebpf", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", &rustc)
        .env("PATH", path_with_cargo_bin());
    clean_env(&mut cmd);
    // BTF for the object (bpf-linker --btf, from the debug info): the kernel
    // needs its func_info for programs that pass callbacks (bpf_loop,
    // bpf_find_vma), and verifier messages then name source lines.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Cdebuginfo=2\x1f-Clink-arg=--btf");
    let status = cmd.status().unwrap_or_else(|e| fail(&format!("could not run cargo for the eBPF crate: {e}")));
    if !status.success() {
        fail(&format!("building tracer-ebpf for bpfel-unknown-none failed ({status}); see the errors above"));
    }
    let built = target_dir.join("bpfel-unknown-none/release/tracer-ebpf");
    std::fs::copy(&built, &object).unwrap_or_else(|e| fail(&format!("copy {}: {e}", built.display())));
}

/// The recorder library (a workspace of its own: no_std, panic = abort),
/// optimised whatever the outer profile: it runs inside every allocator
/// call of the traced program.
fn build_recorder(root: &Path, out: &Path) {
    println!("cargo:rerun-if-changed={}", root.join("tracer-recorder").display());
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("recorder");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("tracer-recorder/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("PATH", path_with_cargo_bin());
    clean_env(&mut cmd);
    let status = cmd.status().unwrap_or_else(|e| fail(&format!("could not run cargo for the recorder: {e}")));
    if !status.success() {
        fail(&format!("building tracer-recorder failed ({status}); see the errors above"));
    }
    let built = target_dir.join("release/libleaktrace_recorder.so");
    std::fs::copy(&built, out).unwrap_or_else(|e| fail(&format!("copy {}: {e}", built.display())));
}

/// Settings of the outer (host) build must not leak into a nested build.
fn clean_env(cmd: &mut Command) {
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || k == "RUSTFLAGS"
            || k == "RUSTC_WORKSPACE_WRAPPER"
            || k == "RUSTC_WRAPPER"
            || k.starts_with("CARGO_CFG_")
            || k.starts_with("CARGO_FEATURE_")
            || k == "CARGO_MAKEFLAGS"
        {
            cmd.env_remove(&k);
        }
    }
}

fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths: Vec<PathBuf> = env::var_os("PATH").map(|p| env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo"))) {
        paths.push(home.join("bin"));
    }
    env::join_paths(paths).unwrap()
}

fn check_toolchain(rustc: &str) {
    let path = path_with_cargo_bin();
    let linker = env::split_paths(&path).map(|d| d.join("bpf-linker")).find(|p| p.is_file());
    if linker.is_none() {
        fail(&format!("bpf-linker is not installed; run `{SETUP}` (installs LLVM 22 and bpf-linker 0.13)"));
    }
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
    let Some(sysroot) = sysroot else { fail(&format!("could not run `{rustc} --print sysroot`")) };
    let src = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("lib/rustlib/src/rust/library/core");
    if !src.is_dir() {
        fail(&format!(
            "the Rust standard library sources (rust-src) are missing for {}; run `{SETUP}`",
            String::from_utf8_lossy(&sysroot.stdout).trim()
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}
