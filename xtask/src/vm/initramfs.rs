//! The guest's initramfs: busybox (static: the initramfs has no C library),
//! the modules the root file system needs, `init.sh` as `/init`, the suite
//! script and the directories made writable, packed as a gzipped newc cpio
//! archive.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::kernels::Kernel;

const INIT: &str = include_str!("init.sh");
const BUSYBOX: &str = "/bin/busybox";

fn executable(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Copies a module into `dir` as `NN-NAME.ko`, uncompressed (busybox insmod
/// cannot read xz); NN keeps the load order in a plain `ls`.
fn add_module(dir: &Path, index: usize, module: &Path) -> Result<()> {
    let file = module.file_name().and_then(|f| f.to_str()).context("module file name")?;
    let name = file.split(".ko").next().unwrap_or(file);
    let out = dir.join(format!("{index:02}-{name}.ko"));
    if file.ends_with(".ko.xz") {
        let x = Command::new("xz").arg("-dc").arg(module).output().context("running xz (cargo xtask setup installs xz-utils)")?;
        if !x.status.success() {
            bail!("xz -dc {} failed: {}", module.display(), String::from_utf8_lossy(&x.stderr));
        }
        std::fs::write(&out, x.stdout)?;
    } else if file.ends_with(".ko") {
        std::fs::copy(module, &out)?;
    } else {
        bail!("{}: a compression the guest's loader cannot read", module.display());
    }
    Ok(())
}

/// Builds `work/initramfs.gz` for `kernel` with `suite` as the guest's
/// suite script and `writable` the host directories the guest may write to
/// (in its memory); returns its path.
pub fn build(work: &Path, kernel: &Kernel, suite: &str, writable: &[PathBuf]) -> Result<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: cargo xtask setup installs busybox-static");
    }
    let stage = work.join("initramfs");
    let _ = std::fs::remove_dir_all(&stage);
    for d in ["bin", "modules"] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    std::fs::copy(BUSYBOX, stage.join("bin/busybox"))?;
    for (i, m) in kernel.modules.iter().enumerate() {
        add_module(&stage.join("modules"), i, m)?;
    }
    executable(&stage.join("init"), INIT)?;
    executable(&stage.join("suite.sh"), suite)?;
    let dirs: Vec<String> = writable.iter().map(|d| format!("{}\n", d.display())).collect();
    std::fs::write(stage.join("writable"), dirs.concat())?;
    let out = work.join("initramfs.gz");
    let st = Command::new("sh")
        .current_dir(&stage)
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet | gzip -1 > \"$0\"")
        .arg(&out)
        .status()
        .context("running cpio and gzip (cargo xtask setup installs cpio)")?;
    if !st.success() {
        bail!("packing the initramfs failed ({st})");
    }
    Ok(out)
}
