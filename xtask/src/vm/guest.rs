//! One guest: virtiofsd shares the host's `/`, QEMU boots the kernel with
//! the initramfs, the serial console goes to a file read while it grows.
//! Both processes are killed and reaped on every path out (the guard's Drop),
//! a timeout included.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How QEMU runs the guest's instructions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn args(self) -> [&'static str; 4] {
        match self {
            Self::Kvm => ["-accel", "kvm", "-cpu", "host"],
            // One host thread runs all of a guest's vCPUs: with a thread each,
            // a vCPU can run stale code the kernel just patched on another
            // (text_poke's int3, seen as an "Oops: int3" when leaktrace's
            // tracepoints flip a static key); the guests run side by side.
            Self::Tcg => ["-accel", "tcg,thread=single", "-cpu", "max"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "KVM",
            Self::Tcg => "TCG (emulated)",
        }
    }
}

const QEMU: &str = "qemu-system-x86_64";
const CPUS: &str = "2";
const MEMORY_MIB: u32 = 4096;

/// Processes killed and reaped when dropped.
struct Guard(Vec<Child>);

/// Ends the child with this process, should it be killed without a chance to
/// drop its [`Guard`].
fn dies_with_us(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// KVM only where it really runs a kernel: `/dev/kvm` can be a stand-in that
/// accepts the device but never runs the guest. A real one prints the
/// kernel's banner within a second.
pub fn detect(vmlinuz: &Path, work: &Path) -> Accel {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Accel::Tcg;
    }
    let serial = work.join("kvm-probe.log");
    let _ = std::fs::remove_file(&serial);
    let child = dies_with_us(&mut Command::new(QEMU))
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-m", "256"])
        .args(Accel::Kvm.args())
        .arg("-kernel")
        .arg(vmlinuz)
        .args(["-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else { return Accel::Tcg };
    let _guard = Guard(vec![child]);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if std::fs::read_to_string(&serial).is_ok_and(|s| s.contains("Linux version")) {
            return Accel::Kvm;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Accel::Tcg
}

/// qemu's virtiofsd (Debian 12) or the standalone one (later Debian).
fn virtiofsd(socket: &Path, log: std::fs::File) -> Result<Child> {
    let mut cmd = if Path::new("/usr/libexec/virtiofsd").exists() {
        let mut c = Command::new("/usr/libexec/virtiofsd");
        c.arg("--socket-path").arg(socket).args(["--shared-dir", "/", "--sandbox", "none", "--readonly", "--cache", "always"]);
        c
    } else {
        let mut c = Command::new("/usr/lib/qemu/virtiofsd");
        // The guest mounts it read-only; the host's files do not change during a run, so the guest may cache them.
        c.arg(format!("--socket-path={}", socket.display())).args(["-o", "source=/", "-o", "sandbox=chroot", "-o", "cache=always"]);
        c
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting virtiofsd (cargo xtask setup installs qemu-system-x86)")
}

/// What a boot gave.
pub struct Outcome {
    /// The whole serial console.
    pub serial: String,
    pub wall: Duration,
    /// The guest was still running at the timeout (and was killed).
    pub timed_out: bool,
}

pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    /// Logs go here (serial console, virtiofsd).
    pub work: &'a Path,
    pub accel: Accel,
    pub timeout: Duration,
    /// Kernel parameters beyond the console's.
    pub cmdline: &'a str,
}

fn qemu(boot: &Boot, socket: &Path, serial: &Path) -> Command {
    let mut cmd = Command::new(QEMU);
    dies_with_us(&mut cmd)
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-smp", CPUS, "-m"])
        .arg(MEMORY_MIB.to_string())
        .args(boot.accel.args())
        // vhost-user needs the guest's memory shared with virtiofsd.
        .arg("-object")
        .arg(format!("memory-backend-memfd,id=mem,size={MEMORY_MIB}M,share=on"))
        .args(["-numa", "node,memdev=mem", "-chardev"])
        .arg(format!("socket,id=vfs,path={}", socket.display()))
        .args(["-device", "vhost-user-fs-pci,chardev=vfs,tag=host", "-kernel"])
        .arg(boot.vmlinuz)
        .arg("-initrd")
        .arg(boot.initramfs)
        .arg("-append")
        .arg(format!("console=ttyS0 quiet loglevel=4 panic=-1 {}", boot.cmdline))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null());
    cmd
}

fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Boots the guest and returns when it powers off or at the timeout; each
/// complete line of the serial console is given to `on_line` as it arrives.
pub fn boot(boot: &Boot, mut on_line: impl FnMut(&str)) -> Result<Outcome> {
    // A unix socket's path is short (108 bytes): under a deep checkout, in /tmp.
    let mut socket = boot.work.join("virtiofs.sock");
    if socket.as_os_str().len() >= 100 {
        socket = PathBuf::from(format!("/tmp/leaktrace-matrix-{}.sock", std::process::id()));
    }
    let serial = boot.work.join("serial.log");
    let _ = std::fs::remove_file(&socket);
    std::fs::write(&serial, "")?;
    let log = std::fs::File::create(boot.work.join("virtiofsd.log"))?;
    let mut guard = Guard(vec![virtiofsd(&socket, log)?]);
    if !wait_for(&socket, Duration::from_secs(10)) {
        bail!("virtiofsd made no socket in 10 s; see {}", boot.work.join("virtiofsd.log").display());
    }
    let qemu_log = std::fs::File::create(boot.work.join("qemu.log"))?;
    let start = Instant::now();
    guard.0.push(qemu(boot, &socket, &serial).stdout(qemu_log.try_clone()?).stderr(qemu_log).spawn().context("starting qemu")?);
    let mut file = std::fs::File::open(&serial)?;
    let (mut text, mut pending, mut timed_out) = (String::new(), Vec::new(), false);
    loop {
        let ended = guard.0[1].try_wait()?.is_some();
        file.read_to_end(&mut pending)?;
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            on_line(line.trim_end_matches(['\r', '\n']));
            text.push_str(&line);
        }
        if ended {
            break;
        }
        if start.elapsed() > boot.timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let wall = start.elapsed();
    drop(guard);
    let _ = std::fs::remove_file(&socket);
    text.push_str(&String::from_utf8_lossy(&pending));
    Ok(Outcome { serial: text, wall, timed_out })
}
