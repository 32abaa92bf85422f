//! From ring-buffer bytes to state: decode, complete the stack, intern, apply.

use std::collections::HashSet;
use std::sync::mpsc::Sender;

use tracer_common::decode::{Body, Event, RawStack};
use tracer_common::{ModuleKey, StopReason, MAX_FRAMES};

use crate::aggregate::{creation_kind, ResourceKind, StackEnd, StackId, State};
use crate::symbolize::{ProcessMaps, Unwinder};

/// A module the kernel met without its unwind table: the pid whose maps name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRequest {
    pub pid: u32,
    pub module: ModuleKey,
}

/// What turns raw records into [`State`] changes. Owned by the consumer thread.
pub struct Ingestor {
    unwinder: Unwinder,
    /// Frames per stack (--stack-depth), for userspace's continuation too.
    max_frames: usize,
    /// Where to ask for the kernel tables of modules met without one.
    tables: Option<Sender<TableRequest>>,
    requested: HashSet<ModuleKey>,
}

impl Default for Ingestor {
    fn default() -> Self {
        Self::new(MAX_FRAMES, None)
    }
}

impl Ingestor {
    pub fn new(max_frames: usize, tables: Option<Sender<TableRequest>>) -> Self {
        Self { unwinder: Unwinder::new(), max_frames: max_frames.min(MAX_FRAMES), tables, requested: HashSet::new() }
    }

    /// One ring-buffer record.
    pub fn ingest(&mut self, state: &mut State, bytes: &[u8]) {
        match Event::try_from(bytes) {
            Ok(ev) => self.apply(state, &ev),
            Err(_) => state.decode_errors += 1,
        }
    }

    pub fn apply(&mut self, state: &mut State, ev: &Event) {
        state.events += 1;
        let pid = ev.tgid;
        if state.before_command(pid, &ev.body) {
            return;
        }
        if ev.body == Body::Loaded {
            // The dynamic linker mapped objects: their tables, before their code runs.
            state.object_loads += 1;
            if let Some(tx) = &self.tables {
                let _ = tx.send(TableRequest { pid, module: ModuleKey::default() });
            }
        }
        let stack = ev.stack.as_ref().map(|raw| {
            let kind = match ev.body {
                Body::FdOpen { kind, .. } => ResourceKind::Fd(kind),
                Body::FdDup { kind, .. } => ResourceKind::Fd(kind),
                Body::UvInit { func, .. } => creation_kind(func),
                _ => ResourceKind::Heap,
            };
            self.intern(state, pid, kind, raw)
        });
        state.apply(pid, ev.tid, ev.ts_ns, &ev.body, stack);
    }

    fn intern(&mut self, state: &mut State, pid: u32, kind: ResourceKind, raw: &RawStack) -> StackId {
        if raw.stop == StopReason::NoTable && self.requested.insert(raw.module) {
            if let Some(tx) = &self.tables {
                let _ = tx.send(TableRequest { pid, module: raw.module });
            }
        }
        let image = state.image_of(pid);
        cover(state, image, raw.frames.first().copied());
        if !raw.copy.is_empty() {
            cover(state, image, Some(raw.pc));
        }
        let maps = state.image(image).maps.clone();
        let mut done = self.unwinder.complete(&maps, raw, self.max_frames);
        // Code mapped since the last capture (a JIT's new region, met past
        // the kernel's stop): read the maps again and walk once more.
        if done.stop == StopReason::NoMapping && cover(state, image, done.frames.last().copied()) {
            let maps = state.image(image).maps.clone();
            done = self.unwinder.complete(&maps, raw, self.max_frames);
        }
        let end = StackEnd { stop: done.stop, exact: done.exact };
        if end.is_truncated() {
            state.truncated_stacks += 1;
        }
        state.agg.stacks.intern(kind, image, &done.frames, end)
    }
}

/// Makes sure the image's maps cover `pc` (where userspace's walk starts, a
/// frame, or where it stopped), re-reading /proc while the process lives:
/// code mapped since the last capture (the libraries after exec, dlopen, a
/// JIT's regions). True when a new reading covers it.
fn cover(state: &mut State, image: u32, pc: Option<u64>) -> bool {
    let Some(pc) = pc else { return false };
    let img = state.image(image);
    if img.maps.find(pc).is_some() || img.uncovered.contains(&pc) || state.agg.has_exited(img.pid) {
        return false;
    }
    let pid = img.pid;
    if let Ok(maps) = ProcessMaps::capture(pid) {
        state.add_maps(pid, maps);
    }
    let img = state.image_mut(image);
    let covered = img.maps.find(pc).is_some();
    if !covered {
        img.uncovered.insert(pc);
    }
    covered
}

#[cfg(test)]
mod tests {
    use super::*;

    use memmap2::{Mmap, MmapMut};

    fn executable() -> Mmap {
        MmapMut::map_anon(4096).unwrap().make_exec().unwrap()
    }

    /// A walk the kernel gave up at `pc` (the mmap lock was taken), with a
    /// stack copy of two frame-pointer records: `pc`'s caller is `caller`,
    /// whose own record ends the stack.
    fn stopped_at(pc: u64, caller: u64) -> RawStack {
        let sp = 0x7000;
        let copy = vec![sp + 16, caller, 0, 0];
        RawStack { frames: vec![pc], exact: 0, stop: StopReason::MapBusy, pc, sp, bp: sp, module: ModuleKey::default(), copy }
    }

    #[test]
    fn code_mapped_after_the_last_capture_is_found_by_reading_the_maps_again() {
        let pid = std::process::id();
        let mut state = State::new();
        let known = executable();
        state.add_maps(pid, ProcessMaps::capture(pid).unwrap());
        // Executable memory mapped since, as a JIT maps its code.
        let jit = executable();
        let (pc, caller) = (known.as_ptr() as u64 + 16, jit.as_ptr() as u64 + 16);
        let image = state.image_of(pid);
        assert!(state.image(image).maps.find(caller).is_none(), "not in the first capture");

        let mut ingest = Ingestor::default();
        let id = ingest.intern(&mut state, pid, ResourceKind::Heap, &stopped_at(pc, caller));
        let entry = state.agg.stacks.get(id);
        assert_eq!(&entry.frames[..], &[pc, caller]);
        // Walked through the new region with its frame pointers; where they
        // end proves no bottom (only CFI can), so the stack counts as cut there.
        assert_eq!(entry.end.stop, StopReason::NoRule, "stopped after the JIT frame, not outside every mapping");

        // An address no reading covers stops the walk, and is not read for again.
        let id = ingest.intern(&mut state, pid, ResourceKind::Heap, &stopped_at(pc, 8));
        assert_eq!(state.agg.stacks.get(id).end.stop, StopReason::NoMapping);
        assert!(state.image(image).uncovered.contains(&8));
    }
}
