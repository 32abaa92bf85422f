//! libuv's handle program (`uv_call`), loaded for uprobe_multi links where
//! the kernel makes them, else as aya's perf-event uprobe; a refusal is
//! kept, not raised: libuv's handles are an optional part. attach/event_loop.rs
//! hangs it on each process that uses libuv.

use std::os::fd::OwnedFd;

use aya::programs::UProbe;
use aya::Ebpf;

use super::bpf_sys::ATTACH_UPROBE_MULTI;
use super::features;
use super::link_mode::LinkMode;
use super::object::program;
use super::programs::Program;
use super::raw_programs::RawObject;
use crate::probes::errors::{aya_load_error, ProbeError};

/// The program, loaded for the links this kernel has.
pub enum UvProgram {
    Multi(OwnedFd),
    /// aya's perf-event uprobes.
    Perf,
    /// The kernel refused the program: descriptors are followed without
    /// where their handles were created (the report says why).
    Refused,
}

impl UvProgram {
    /// A uprobe_multi program where the kernel makes such links, else aya's.
    pub(crate) fn load(raw: &RawObject, ebpf: &mut Ebpf) -> Result<Self, ProbeError> {
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
    pub(crate) fn load_or_refused(raw: &RawObject, ebpf: &mut Ebpf) -> (Self, Option<String>) {
        match Self::load(raw, ebpf) {
            Ok(l) => (l, None),
            Err(e) => {
                let why = anyhow::Error::from(e);
                (
                    Self::Refused,
                    Some(format!("libuv handles are not followed (where a descriptor's handle was created is not known): {why:#}")),
                )
            }
        }
    }
}
