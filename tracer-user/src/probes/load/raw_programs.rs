//! The allocator programs aya 0.14 cannot load the way uprobe_multi links
//! and uprobe sessions need them (with their expected attach type): taken
//! from the embedded object with aya-obj, relocated against the maps aya
//! has created (so both halves share them), and loaded with the object's
//! BTF, whose func_info and line_info the kernel requires of programs that
//! pass callbacks (bpf_loop, bpf_find_vma).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use aya::maps::Map;
use aya::Ebpf;

use super::bpf_sys::{self, BtfRecords, ProgLoad, ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION};
use super::programs::Program;
use super::refusal::{LoadedFor, Refused};
use crate::probes::errors::ProbeError;

/// The object, relocated and ready to load programs from.
pub struct RawObject {
    obj: aya_obj::Object,
    btf: OwnedFd,
}

impl RawObject {
    /// Parses `object` and relocates it against the maps `ebpf` created from
    /// the same object (with the same load-time settings frozen in them).
    pub fn prepare(object: &[u8], ebpf: &Ebpf) -> Result<Self, ProbeError> {
        let mut obj = aya_obj::Object::parse(object).map_err(ProbeError::ObjectParse)?;
        let features = aya::features();
        let btf_features = features.btf().ok_or(ProbeError::KernelFeature { what: "BTF", detail: "BPF_BTF_LOAD is refused".into() })?;
        let btf = obj.fixup_and_sanitize_btf(btf_features).map_err(ProbeError::ObjectBtf)?.ok_or(ProbeError::NoObjectBtf)?.to_bytes();
        let btf = bpf_sys::load_btf(&btf).map_err(ProbeError::ObjectBtfRefused)?;
        if obj.has_btf_relocations() {
            let kernel = aya::Btf::from_sys_fs().map_err(ProbeError::KernelBtfRead)?;
            obj.relocate_btf(&kernel).map_err(ProbeError::CoRe)?;
        }
        let maps: Vec<(String, aya_obj::Map)> = obj.maps.drain().collect();
        let fds: HashMap<&str, RawFd> = ebpf.maps().map(|(name, m)| (name, map_fd(m).as_raw_fd())).collect();
        if let Some((missing, _)) = maps.iter().find(|(name, _)| !fds.contains_key(name.as_str())) {
            return Err(ProbeError::MapNotCreated(missing.clone()));
        }
        let text: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
        obj.relocate_maps(maps.iter().map(|(name, m)| (name.as_str(), fds[name.as_str()], m)), &text)
            .map_err(|source| ProbeError::Relocate { what: "maps", source })?;
        obj.relocate_calls(&text).map_err(|source| ProbeError::Relocate { what: "calls", source })?;
        obj.sanitize_functions(features);
        Ok(Self { obj, btf })
    }

    /// Loads `prog` for the given attach type, with its func_info and line_info.
    pub fn load(&self, prog: Program, attach_type: u32) -> Result<OwnedFd, Refused> {
        self.load_with(prog, attach_type, true)
    }

    /// `with_btf_info: false` leaves func_info and line_info out (the test
    /// that shows the kernel needs them).
    pub(crate) fn load_with(&self, prog: Program, attach_type: u32, with_btf_info: bool) -> Result<OwnedFd, Refused> {
        let loaded_for = match attach_type {
            ATTACH_UPROBE_MULTI => LoadedFor::UprobeMulti,
            ATTACH_UPROBE_SESSION => LoadedFor::UprobeSession,
            _ => LoadedFor::Plain,
        };
        let refused = |what: String| Refused { error: std::io::Error::from(std::io::ErrorKind::NotFound), log: what, loaded_for };
        let p = self.obj.programs.get(prog.name()).ok_or_else(|| refused(format!("program {prog} is not in the object")))?;
        let f = self.obj.functions.get(&p.function_key()).ok_or_else(|| refused(format!("program {prog} has no code")))?;
        let (func_info, line_info) = (f.func_info.func_info_bytes(), f.line_info.line_info_bytes());
        let records = |bytes, rec_size: usize, count: usize| {
            if with_btf_info {
                BtfRecords { bytes, rec_size: rec_size as u32, count: count as u32 }
            } else {
                BtfRecords::NONE
            }
        };
        bpf_sys::load_program(&ProgLoad {
            prog_type: bpf_sys::PROG_TYPE_KPROBE,
            name: prog.name(),
            expected_attach_type: attach_type,
            attach_btf_id: 0,
            insns: &f.instructions,
            license: &p.license,
            btf: Some(self.btf.as_fd()),
            func_info: records(&func_info, f.func_info_rec_size, f.func_info.len()),
            line_info: records(&line_info, f.line_info_rec_size, f.line_info.len()),
        })
        .map_err(|e| Refused { loaded_for, ..e })
    }
}

/// The descriptor of any of aya's maps.
fn map_fd(map: &Map) -> BorrowedFd<'_> {
    use Map::*;
    let data = match map {
        Array(m)
        | ArrayOfMaps(m)
        | BloomFilter(m)
        | CgroupArray(m)
        | CgroupStorage(m)
        | CgrpStorage(m)
        | CpuMap(m)
        | DevMap(m)
        | DevMapHash(m)
        | HashMap(m)
        | HashOfMaps(m)
        | InodeStorage(m)
        | LpmTrie(m)
        | LruHashMap(m)
        | PerCpuArray(m)
        | PerCpuCgroupStorage(m)
        | PerCpuHashMap(m)
        | PerCpuLruHashMap(m)
        | PerfEventArray(m)
        | ProgramArray(m)
        | Queue(m)
        | ReusePortSockArray(m)
        | RingBuf(m)
        | SockHash(m)
        | SockMap(m)
        | SkStorage(m)
        | Stack(m)
        | StackTraceMap(m)
        | Unsupported(m)
        | XskMap(m) => m,
    };
    data.fd().as_fd()
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests {
    use super::*;
    use crate::probes::load::object::OBJECT;

    /// Privileged: the kernel accepts a program that passes a callback
    /// (bpf_loop) through this loader, and only with its func_info.
    #[test]
    #[ignore = "privileged (loads eBPF programs): cargo xtask test runs it as root"]
    fn a_program_passing_a_callback_loads_with_the_objects_btf() {
        assert!(rustix::process::geteuid().is_root(), "the kernel tests load eBPF programs and must run as root (they never skip)");
        let ebpf = aya::EbpfLoader::new().map_max_entries("SAMPLED", 1).load(OBJECT).expect("aya loads the object");
        let raw = RawObject::prepare(OBJECT, &ebpf).expect("the object relocates against aya's maps");
        for attach_type in [ATTACH_UPROBE_MULTI, ATTACH_UPROBE_SESSION] {
            raw.load(Program::LoaderCheck, attach_type).unwrap_or_else(|e| panic!("attach type {attach_type}: {e}"));
        }
        let refused = raw.load_with(Program::LoaderCheck, ATTACH_UPROBE_MULTI, false).expect_err("no func_info, no callback");
        assert!(refused.log.contains("func_info"), "{refused}");
        assert_eq!(refused.to_string(), "the kernel wants BTF function information the object did not give");
        // The allocator programs themselves, as leaktrace loads them.
        raw.load(Program::AllocSession, ATTACH_UPROBE_SESSION).unwrap();
        raw.load(Program::AllocEnter, ATTACH_UPROBE_MULTI).unwrap();
        raw.load(Program::AllocExit, ATTACH_UPROBE_MULTI).unwrap();
        raw.load(Program::UvCall, ATTACH_UPROBE_MULTI).unwrap();
    }
}
