//! From ring-buffer bytes to aggregator state: decode, unwind, intern, apply.

use std::collections::{HashMap, HashSet};

use tracer_common::decode::{Body, Event, RawStack};

use crate::aggregate::{Aggregator, ResourceKind};
use crate::symbolize::{ProcessMaps, Symbolizer, UnwindInput};

/// One address space: a process between two execs.
pub struct Image {
    pub pid: u32,
    pub maps: ProcessMaps,
    /// Addresses still outside every mapping after a fresh capture (JIT code,
    /// unmapped): each costs one re-read of /proc, not one per event.
    uncovered: HashSet<u64>,
}

/// Aggregator plus what turns raw events into its input.
pub struct Tracer {
    pub agg: Aggregator,
    pub sym: Symbolizer,
    pub images: Vec<Image>,
    current: HashMap<u32, u32>,
    pub events: u64,
    pub decode_errors: u64,
    pub truncated_stacks: u64,
    /// What the session could not do, for the report.
    pub warnings: Vec<String>,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    pub fn new() -> Self {
        Self {
            agg: Aggregator::new(),
            sym: Symbolizer::new(),
            images: Vec::new(),
            current: HashMap::new(),
            events: 0,
            decode_errors: 0,
            truncated_stacks: 0,
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// One ring-buffer record.
    pub fn ingest(&mut self, bytes: &[u8]) {
        match Event::try_from(bytes) {
            Ok(ev) => self.apply(&ev),
            Err(_) => self.decode_errors += 1,
        }
    }

    pub fn apply(&mut self, ev: &Event) {
        self.events += 1;
        let pid = ev.tgid;
        let stack = match (&ev.body, &ev.stack) {
            (body, Some(raw)) => {
                let kind = match *body {
                    Body::Alloc { .. } | Body::Realloc { .. } => ResourceKind::Heap,
                    Body::FdOpen { kind, .. } => ResourceKind::Fd(kind),
                    Body::FdDup { old, .. } => ResourceKind::Fd(self.agg.kind_of_fd(pid, old)),
                    _ => ResourceKind::Heap,
                };
                Some(self.intern(pid, kind, raw))
            }
            _ => None,
        };
        self.agg.apply(pid, ev.ts_ns, &ev.body, stack);
        match ev.body {
            Body::Exec => {
                // The next stack of this pid starts a new image.
                self.current.remove(&pid);
            }
            Body::Exit if ev.tid == ev.tgid => self.agg.mark_exited(pid),
            _ => {}
        }
    }

    fn intern(&mut self, pid: u32, kind: ResourceKind, raw: &RawStack) -> crate::aggregate::StackId {
        let image = self.image_of(pid);
        self.cover(image, &raw.frames);
        let img = &self.images[image as usize];
        // The kernel's frame-pointer walk ends at a zero return address: not a frame.
        let end = raw.frames.iter().position(|&a| a == 0).unwrap_or(raw.frames.len());
        let input = UnwindInput { kernel_frames: &raw.frames[..end], sp: raw.sp, bp: raw.bp, stack_top: &raw.top };
        let unwound = self.sym.unwind(&img.maps, &input);
        if unwound.truncated {
            self.truncated_stacks += 1;
        }
        self.agg.stacks.intern(kind, image, &unwound.frames, unwound.truncated)
    }

    fn image_of(&mut self, pid: u32) -> u32 {
        if let Some(&i) = self.current.get(&pid) {
            return i;
        }
        let i = self.images.len() as u32;
        self.images.push(Image { pid, maps: ProcessMaps::default(), uncovered: HashSet::new() });
        self.current.insert(pid, i);
        i
    }

    /// Makes sure the image's maps cover the frames' first address (the one the
    /// unwinder starts from), re-reading /proc while the process lives: code
    /// mapped since the last capture (the libraries after exec, dlopen).
    fn cover(&mut self, image: u32, frames: &[u64]) {
        let img = &mut self.images[image as usize];
        let Some(&pc) = frames.first() else { return };
        if img.maps.find(pc).is_some() || img.uncovered.contains(&pc) || self.agg.has_exited(img.pid) {
            return;
        }
        if let Ok(maps) = ProcessMaps::capture(img.pid) {
            img.maps.merge(maps);
        }
        if img.maps.find(pc).is_none() {
            img.uncovered.insert(pc);
        }
    }

    /// Maps captured by the caller (at the target's exit stop) for `pid`'s current image.
    pub fn add_maps(&mut self, pid: u32, maps: ProcessMaps) {
        let image = self.image_of(pid);
        let img = &mut self.images[image as usize];
        img.maps.merge(maps);
    }
}
