//! libuv's handle probes on one process: the program load/event_loop_program.rs
//! loaded, hung on the functions discovery/libuv.rs found, each with its
//! function's cookie. One uprobe_multi link per process where the kernel
//! has them, perf-event uprobes elsewhere.

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint};
use aya::Ebpf;

use super::uprobe::{multi_link, perf_links};
use crate::probes::discovery::libuv::EventLoopLibrary;
use crate::probes::errors::ProbeError;
use crate::probes::load::bpf_sys::ATTACH_UPROBE_MULTI;
use crate::probes::load::event_loop_program::UvProgram;
use crate::probes::load::link_mode::LinkMode;
use crate::probes::load::programs::Program;
use crate::probes::teardown::HeldLink;

/// Hangs the program on `lib`'s functions in `pid` alone.
pub(crate) fn attach(ebpf: &mut Ebpf, loaded: &UvProgram, lib: &EventLoopLibrary, pid: u32) -> Result<Vec<Box<dyn HeldLink>>, ProbeError> {
    let what = || format!("libuv probes on {} (pid {pid})", lib.path.display());
    match loaded {
        UvProgram::Refused => Ok(Vec::new()),
        UvProgram::Multi(prog) => {
            let points: Vec<(u64, u64)> = lib.points.iter().map(|&(off, f)| (off, f as u64)).collect();
            Ok(vec![multi_link(prog, (LinkMode::Multi, ATTACH_UPROBE_MULTI), &lib.file, &points, (pid, 0), what)?])
        }
        UvProgram::Perf => {
            let at = lib.points.iter().map(|&(offset, func)| UProbeAttachPoint {
                location: UProbeAttachLocation::AbsoluteOffset(offset),
                cookie: Some(func as u64),
            });
            perf_links(ebpf, Program::UvCall, &lib.file, pid, at, what)
        }
    }
}
