//! From ring-buffer bytes to state: decode, complete the stack, intern, apply.

use tracer_common::decode::{Body, Event, RawStack};

use crate::aggregate::{ResourceKind, StackId, State};
use crate::symbolize::{ProcessMaps, UnwindInput, Unwinder};

/// What turns raw records into [`State`] changes. Owned by the consumer thread.
#[derive(Default)]
pub struct Ingestor {
    unwinder: Unwinder,
}

impl Ingestor {
    pub fn new() -> Self {
        Self::default()
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
        let stack = ev.stack.as_ref().map(|raw| {
            let kind = match ev.body {
                Body::FdOpen { kind, .. } => ResourceKind::Fd(kind),
                Body::FdDup { old, .. } => ResourceKind::Fd(state.agg.kind_of_fd(pid, old)),
                _ => ResourceKind::Heap,
            };
            self.intern(state, pid, kind, raw)
        });
        state.apply(pid, ev.tid, ev.ts_ns, &ev.body, stack);
    }

    fn intern(&mut self, state: &mut State, pid: u32, kind: ResourceKind, raw: &RawStack) -> StackId {
        let image = state.image_of(pid);
        cover(state, image, &raw.frames);
        let maps = state.image(image).maps.clone();
        // The kernel's frame-pointer walk ends at a zero return address: not a frame.
        let end = raw.frames.iter().position(|&a| a == 0).unwrap_or(raw.frames.len());
        let input = UnwindInput { kernel_frames: &raw.frames[..end], sp: raw.sp, bp: raw.bp, stack_top: &raw.top };
        let unwound = self.unwinder.unwind(&maps, &input);
        if unwound.truncated {
            state.truncated_stacks += 1;
        }
        state.agg.stacks.intern(kind, image, &unwound.frames, unwound.truncated)
    }
}

/// Makes sure the image's maps cover the frames' first address (the one the
/// unwinder starts from), re-reading /proc while the process lives: code
/// mapped since the last capture (the libraries after exec, dlopen).
fn cover(state: &mut State, image: u32, frames: &[u64]) {
    let Some(&pc) = frames.first() else { return };
    let img = state.image(image);
    if img.maps.find(pc).is_some() || img.uncovered.contains(&pc) || state.agg.has_exited(img.pid) {
        return;
    }
    let pid = img.pid;
    if let Ok(maps) = ProcessMaps::capture(pid) {
        state.add_maps(pid, maps);
    }
    let img = state.image_mut(image);
    if img.maps.find(pc).is_none() {
        img.uncovered.insert(pc);
    }
}
