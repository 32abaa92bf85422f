//! The kernels of the matrix: Debian 12's own cloud kernels, taken from the
//! distribution's packages (`apt-get download`, `dpkg -x`) and kept under
//! `target/kernels/` so a rerun downloads nothing. The newest build of each
//! series is chosen from what apt knows, never a hard-coded ABI number.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::run;

/// One series of the matrix.
pub struct Series {
    /// What `--kernel` selects and the summary shows.
    pub name: &'static str,
    /// Where Debian publishes it.
    pub suite: &'static str,
    /// The unsigned cloud image packages of the series (an `apt-cache search --names-only` pattern).
    pub packages: &'static str,
    /// Kernel parameters the suite needs on this series.
    pub cmdline: &'static str,
}

/// The oldest kernel Debian 12 ships and the newest it offers.
pub const SERIES: &[Series] = &[
    Series {
        name: "6.1",
        suite: "bookworm",
        packages: r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
        // memfd_secret, one of the descriptor kinds, is off by default before 6.5.
        cmdline: "secretmem.enable=1",
    },
    Series { name: "6.12", suite: "bookworm-security", packages: r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$", cmdline: "" },
];

/// Modules the guest loads before it can mount its root: the virtio PCI
/// transport, virtiofs, and overlayfs (those a kernel builds in are skipped).
const NEEDED_MODULES: [&str; 3] = ["virtio_pci", "virtiofs", "overlay"];

/// A kernel ready to boot.
pub struct Kernel {
    pub package: String,
    pub version: String,
    pub vmlinuz: PathBuf,
    /// Module files to load, in order (dependencies first); still compressed
    /// if Debian compressed them.
    pub modules: Vec<PathBuf>,
}

/// A version's numbers in order, to compare package names of one series.
fn numbers(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect()
}

fn search(pattern: &str) -> Result<Vec<String>> {
    let out = Command::new("apt-cache").args(["search", "--names-only", pattern]).output().context("running apt-cache")?;
    if !out.status.success() {
        bail!("apt-cache search {pattern} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(" - ").next()).map(|s| s.trim().to_owned()).collect())
}

fn apt_update() -> Result<()> {
    eprintln!("matrix: apt-get update (the package lists name the kernels)");
    let st = Command::new("apt-get").args(["update", "-qq"]).status().context("running apt-get update")?;
    if !st.success() {
        bail!("apt-get update failed ({st}): the matrix needs Debian's archive");
    }
    Ok(())
}

/// The newest package of the series apt knows (the lists refreshed once if it knows none).
fn newest(series: &Series) -> Result<String> {
    let mut names = search(series.packages)?;
    if names.is_empty() {
        apt_update()?;
        names = search(series.packages)?;
    }
    names.into_iter().max_by_key(|n| numbers(n)).with_context(|| {
        format!("no package of kernel {} ({}) in apt's lists: is {} in /etc/apt/sources.list?", series.name, series.packages, series.suite)
    })
}

/// Downloads and unpacks `package` into `dir` (once: a `.ready` mark says it is done).
fn unpack(package: &str, dir: &Path) -> Result<()> {
    if dir.join(".ready").exists() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    eprintln!("matrix: downloading {package} (apt-get download) into {}", dir.display());
    let download = || run(Command::new("apt-get").current_dir(dir).args(["-q", "-o", "APT::Sandbox::User=root", "download", package]));
    if download().is_err() {
        // Lists older than the archive name a build it no longer has.
        apt_update()?;
        download()?;
    }
    let deb = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join("root")))?;
    let version = only_entry(&dir.join("root/lib/modules"))?;
    // dpkg -x leaves no modules.dep: depmod writes it, to order the modules.
    run(Command::new("depmod").arg("-b").arg(dir.join("root")).arg(&version))?;
    let pkg_version = Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Version").output()?;
    std::fs::write(dir.join("version"), String::from_utf8_lossy(&pkg_version.stdout).trim())?;
    std::fs::remove_file(&deb)?;
    std::fs::write(dir.join(".ready"), "")?;
    Ok(())
}

fn only_entry(dir: &Path) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.len() {
        1 => Ok(names.pop().unwrap_or_default()),
        n => bail!("{} holds {n} entries, expected one kernel version", dir.display()),
    }
}

/// A module's name from its path (`kernel/fs/fuse/virtiofs.ko.xz` -> `virtiofs`).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// The module files to load for `wanted`, dependencies first, from a
/// `modules.dep` (each line: a module, then every module it needs).
pub fn load_order(modules_dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let deps: Vec<(String, Vec<String>)> = modules_dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (m.trim().to_owned(), d.split_whitespace().map(str::to_owned).collect()))
        .collect();
    let builtin: Vec<String> = builtin.lines().map(module_name).collect();
    fn visit(path: &str, deps: &[(String, Vec<String>)], out: &mut Vec<String>) {
        if out.iter().any(|p| p == path) {
            return;
        }
        if let Some((_, needs)) = deps.iter().find(|(m, _)| m == path) {
            for n in needs {
                visit(n, deps, out);
            }
        }
        out.push(path.to_owned());
    }
    let mut out = Vec::new();
    for name in wanted {
        if builtin.iter().any(|b| b == name) {
            continue;
        }
        let Some((path, _)) = deps.iter().find(|(m, _)| module_name(m) == *name) else {
            bail!("module {name} is neither built in nor in modules.dep");
        };
        visit(path, &deps, &mut out);
    }
    Ok(out)
}

/// The newest kernel of `series`, downloaded and unpacked if not already.
pub fn fetch(root: &Path, series: &Series) -> Result<Kernel> {
    let package = newest(series)?;
    let dir = root.join("target/kernels").join(&package);
    unpack(&package, &dir)?;
    let tree = dir.join("root");
    let release = only_entry(&tree.join("lib/modules"))?;
    let mods = tree.join("lib/modules").join(&release);
    let dep = std::fs::read_to_string(mods.join("modules.dep")).context("reading modules.dep")?;
    let builtin = std::fs::read_to_string(mods.join("modules.builtin")).unwrap_or_default();
    let modules = load_order(&dep, &builtin, &NEEDED_MODULES)?.into_iter().map(|m| mods.join(m)).collect();
    Ok(Kernel {
        version: std::fs::read_to_string(dir.join("version")).unwrap_or_default().trim().to_owned(),
        vmlinuz: tree.join("boot").join(format!("vmlinuz-{release}")),
        package,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first_and_builtins_are_skipped() {
        let dep = "kernel/fs/fuse/fuse.ko:\nkernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko\n\
                   kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_ring.ko:\n\
                   kernel/fs/overlayfs/overlay.ko.xz:\n";
        let order = load_order(dep, "kernel/drivers/virtio/virtio_pci.ko\n", &NEEDED_MODULES).unwrap();
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/fs/fuse/fuse.ko",
                "kernel/fs/fuse/virtiofs.ko",
                "kernel/fs/overlayfs/overlay.ko.xz"
            ]
        );
        assert!(load_order(dep, "", &["virtio_pci"]).is_err(), "a module neither built in nor known is an error");
    }

    #[test]
    fn the_newest_build_wins_by_its_numbers() {
        let names = ["linux-image-6.12.9+deb12-cloud-amd64-unsigned", "linux-image-6.12.118+deb12-cloud-amd64-unsigned"];
        assert_eq!(names.iter().max_by_key(|n| numbers(n)), Some(&names[1]));
    }
}
