//! `attach`: the allocator probes follow the traced processes as the kernel
//! reports their forks, execs and exits (leaktrace does not ptrace a process
//! it attached to, so a child's probes go on a moment after its fork rather
//! than before its first instruction; a libuv loaded by dlopen gets its
//! probes a moment after the dynamic linker mapped it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use tracer_common::EventKind;

use super::placement::{lock, Placement};
use crate::pipeline::Shared;
use crate::symbolize::ProcessMaps;

/// How long the thread sleeps between checks of its stop flag.
const POLL: Timespec = Timespec { tv_sec: 0, tv_nsec: 50_000_000 };

pub struct Follower {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Follower {
    pub fn start(
        notices: RingBuf<MapData>,
        placement: Arc<Mutex<Placement>>,
        shared: Arc<Shared>,
        follow_forks: bool,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("leaktrace-follow".into())
            .spawn(move || follow(notices, &placement, &shared, follow_forks, &s))?;
        Ok(Self { stop, handle })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

/// One notice: `EventKind | pid << 32`.
fn decode(bytes: &[u8]) -> Option<(EventKind, u32)> {
    let v = u64::from_ne_bytes(bytes.get(..8)?.try_into().ok()?);
    Some((EventKind::from_u32(v as u32)?, (v >> 32) as u32))
}

/// Whether `pid` is a process rather than a thread (the fork tracepoint reports both).
pub(super) fn is_process(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).is_some_and(|t| t.trim() == pid.to_string())
}

fn follow(mut notices: RingBuf<MapData>, placement: &Mutex<Placement>, shared: &Shared, follow_forks: bool, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        while let Some(item) = notices.next() {
            match decode(&item) {
                Some((EventKind::Fork, child)) if follow_forks && is_process(child) => {
                    lock(placement).forked(child, None);
                    // Its parent's mappings, while it lives: a short-lived
                    // child may be gone before its stacks are read.
                    if let Ok(maps) = ProcessMaps::capture(child) {
                        shared.state().add_maps(child, maps);
                    }
                }
                Some((EventKind::Exec, pid)) => lock(placement).image(pid),
                Some((EventKind::Exit, pid)) => lock(placement).gone(pid),
                Some((EventKind::Loaded, pid)) => {
                    // The new objects' mappings, while they are mapped: the
                    // frames of a library loaded by dlopen are named even when
                    // its process is gone before the report.
                    if let Ok(maps) = ProcessMaps::capture(pid) {
                        shared.state().add_maps(pid, maps);
                    }
                    lock(placement).objects_mapped(pid);
                }
                _ => {}
            }
        }
        let mut fds = [PollFd::new(&notices, PollFlags::IN)];
        let _ = poll(&mut fds, Some(&POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_decode_to_kind_and_pid() {
        let v = (EventKind::Fork as u64) | 4242u64 << 32;
        assert_eq!(decode(&v.to_ne_bytes()), Some((EventKind::Fork, 4242)));
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(decode(&(77u64 | 1 << 32).to_ne_bytes()), None, "unknown kind");
        assert!(is_process(std::process::id()));
    }
}
