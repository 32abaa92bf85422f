//! Which object of a process image defines libuv (Node's executable,
//! `libuv.so.1`, a program linked with it statically) and where its handle
//! functions are: the first object in the dynamic linker's load order that
//! defines `uv_tcp_init`; or, for a libuv loaded by dlopen later, the first
//! object mapped since that defines it. attach/event_loop.rs hangs libuv's
//! probes there.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tracer_common::uv::UvFn;

use super::allocator::ImageKey;
use super::load_order::{self, preload_list, split_paths, Search};
use super::mapped_objects::{self, MappedObject};
use super::symbols::defined_symbol;
use crate::symbolize::MappedFile;

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

    /// The first object `pid` maps that defines `uv_tcp_init`, once the
    /// dynamic linker mapped new objects (dlopen). `known` remembers the
    /// files (device, inode) already read that do not, so each is read once
    /// however many objects are loaded after it.
    pub fn among_mapped(pid: u32, known: &mut HashMap<(u64, u64), bool>) -> Option<Self> {
        for object in mapped_objects::mapped_objects(pid).ok()? {
            let Ok(meta) = std::fs::metadata(&object.open) else { continue };
            let identity = (meta.dev(), meta.ino());
            if known.get(&identity) == Some(&false) {
                continue;
            }
            let found = MappedFile::open(&object.open).ok().and_then(|data| Self::inspect(&object, data.bytes()));
            known.insert(identity, found.is_some());
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn inspect(object: &MappedObject, data: &[u8]) -> Option<Self> {
        defined_symbol(data, UvFn::TcpInit.symbol())?;
        let points = UvFn::ALL.iter().filter_map(|&f| Some((defined_symbol(data, f.symbol())?, f))).collect();
        let meta = std::fs::metadata(&object.open).ok()?;
        Some(Self { path: object.shown.clone(), file: object.open.clone(), identity: (meta.dev(), meta.ino()), points })
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
