//! libuv's handle probes: which object of a process defines libuv (Node's
//! executable, `libuv.so.1`, a program linked with it statically), where
//! its functions are, and hanging the one program on them with each
//! function's cookie. One uprobe_multi link per process where the kernel
//! has them, perf-event uprobes elsewhere.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;
use tracer_common::uv::UvFn;

use super::allocator::{defined_symbol, ImageKey};
use super::errors::attach_err;
use super::load_order::{self, preload_list, split_paths, Search};
use super::mapped_objects::{self, MappedObject};
use super::programs::program;
use super::raw_programs::{RawObject, ATTACH_UPROBE_MULTI};
use super::refusal::aya_load_error;
use super::teardown::HeldLink;
use super::{bpf_sys, features, LinkMode, ProbeError, Program};

/// The object that defines libuv in a process image.
#[derive(Debug, Clone)]
pub struct EventLoopLibrary {
    /// Its name, as the process shows it.
    pub path: PathBuf,
    /// The file probed (through /proc when the process maps it).
    pub file: PathBuf,
    /// (device, inode).
    pub identity: (u64, u64),
    /// (file offset, function) of every function it defines.
    pub points: Vec<(u64, UvFn)>,
}

impl EventLoopLibrary {
    /// The first object in `pid`'s load order that defines `uv_tcp_init`
    /// (None: the image does not use libuv, or not from its start).
    pub fn for_image(pid: u32, key: &ImageKey) -> Option<Self> {
        let search = Search {
            library_path: split_paths(key.library_path.as_deref()),
            mapped: mapped_objects::mapped_objects(pid).ok()?,
            root: Some(PathBuf::from(format!("/proc/{pid}/root"))),
            ..Search::default()
        };
        let exe = MappedObject { shown: key.exe.clone(), open: PathBuf::from(format!("/proc/{pid}/exe")) };
        let mut found = None;
        load_order::walk(exe, preload_list(key.preload.as_deref()), &search, |object, _, data| {
            found = Self::inspect(object, data);
            found.is_some()
        });
        found
    }

    fn inspect(object: &MappedObject, data: &[u8]) -> Option<Self> {
        defined_symbol(data, UvFn::TcpInit.symbol())?;
        let points = UvFn::ALL.iter().filter_map(|&f| Some((defined_symbol(data, f.symbol())?, f))).collect();
        let meta = std::fs::metadata(&object.open).ok()?;
        Some(Self { path: object.shown.clone(), file: object.open.clone(), identity: (meta.dev(), meta.ino()), points })
    }
}

/// The program, loaded for the links this kernel has.
pub(super) enum Loaded {
    Multi(OwnedFd),
    /// aya's perf-event uprobes.
    Perf,
    /// The kernel refused the program: descriptors are followed without
    /// where their handles were created (the report says why).
    Refused,
}

impl Loaded {
    /// A uprobe_multi program where the kernel makes such links, else aya's.
    pub(super) fn load(raw: &RawObject, ebpf: &mut Ebpf) -> Result<Self, ProbeError> {
        if features::has_links(LinkMode::Multi) {
            if let Ok(fd) = raw.load(Program::UvCall, ATTACH_UPROBE_MULTI) {
                return Ok(Self::Multi(fd));
            }
        }
        let p: &mut UProbe = program(ebpf, Program::UvCall)?;
        p.load().map_err(aya_load_error(Program::UvCall.name()))?;
        Ok(Self::Perf)
    }

    /// [`Self::load`], or [`Self::Refused`] with the reason for the report:
    /// an optional part never keeps the rest from tracing.
    pub(super) fn load_or_refused(raw: &RawObject, ebpf: &mut Ebpf) -> (Self, Option<String>) {
        match Self::load(raw, ebpf) {
            Ok(l) => (l, None),
            Err(e) => {
                (Self::Refused, Some(format!("libuv handles are not followed (where a descriptor's handle was created is not known): {e}")))
            }
        }
    }
}

/// Hangs the program on `lib`'s functions in `pid` alone.
pub(super) fn attach(ebpf: &mut Ebpf, loaded: &Loaded, lib: &EventLoopLibrary, pid: u32) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let what = || format!("libuv probes on {} (pid {pid})", lib.path.display());
    match loaded {
        Loaded::Refused => Ok(Vec::new()),
        Loaded::Multi(prog) => {
            let path = CString::new(lib.file.as_os_str().as_bytes()).map_err(|_| ProbeError::Load("a path with a NUL byte".into()))?;
            let (offsets, cookies): (Vec<u64>, Vec<u64>) = lib.points.iter().map(|&(off, f)| (off, f as u64)).unzip();
            let link = bpf_sys::uprobe_multi_link(prog.as_fd(), ATTACH_UPROBE_MULTI, &path, &offsets, &cookies, pid, 0)
                .map_err(|e| ProbeError::Attach { what: what(), detail: format!("uprobe_multi link: {e}") })?;
            Ok(vec![Box::new(link)])
        }
        Loaded::Perf => {
            let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or_else(|| ProbeError::Load("pid 0 is not a process".into()))?);
            let mut links: Vec<Box<dyn HeldLink>> = Vec::new();
            for &(offset, func) in &lib.points {
                let p: &mut UProbe = program(ebpf, Program::UvCall)?;
                let at = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: Some(func as u64) };
                let id = p.attach(at, &lib.file, scope).map_err(attach_err(what()))?;
                links.push(Box::new(p.take_link(id).map_err(attach_err(what()))?));
            }
            Ok(links)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_s_libuv_defines_every_probed_function() {
        let path = PathBuf::from("/usr/lib/x86_64-linux-gnu/libuv.so.1");
        let data = std::fs::read(&path).expect("libuv1 is installed by cargo xtask setup");
        let lib = EventLoopLibrary::inspect(&MappedObject { shown: path.clone(), open: path }, &data).expect("it defines uv_tcp_init");
        let named: Vec<UvFn> = lib.points.iter().map(|p| p.1).collect();
        for f in [UvFn::TcpInit, UvFn::TimerInit, UvFn::TcpConnect, UvFn::Accept, UvFn::Close] {
            assert!(named.contains(&f), "{} missing from {named:?}", f.symbol());
        }
        let libc = std::fs::read("/bin/true").unwrap();
        assert!(EventLoopLibrary::inspect(&MappedObject { shown: "/bin/true".into(), open: "/bin/true".into() }, &libc).is_none());
    }
}
