//! Interning of (kind, stack) pairs, with per-stack counters.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use tracer_common::StopReason;

use super::ResourceKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// How a stack's walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackEnd {
    pub stop: StopReason,
    /// Bit i: frame i is an exact pc (interrupted by a signal), not a return address.
    pub exact: u32,
}

impl StackEnd {
    /// A stack walked to its outermost frame, of return addresses only.
    pub const COMPLETE: Self = Self { stop: StopReason::End, exact: 0 };

    /// Whether frames are known to be missing past the last (not by the
    /// user's --stack-depth; the frame-pointer walk cannot tell).
    pub fn is_truncated(&self) -> bool {
        !matches!(self.stop, StopReason::End | StopReason::MaxDepth | StopReason::FramePointers)
    }
}

/// Counters of one interned stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackCounters {
    pub outstanding: u64,
    pub outstanding_bytes: u64,
    /// Acquisitions ever seen at this stack.
    pub acquired: u64,
    /// Of those, released.
    pub released: u64,
}

/// Where the handle behind a descriptor was created, for a descriptor an
/// event loop made for a handle (see `event_loop.rs`): its stack is the
/// descriptor's, and these are the handle's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The stack that initialised the handle.
    pub created: StackId,
    /// An accepted connection's: the stack that created the server's handle.
    pub server: Option<StackId>,
}

pub struct StackEntry {
    pub kind: ResourceKind,
    /// The process image (address space) the frames belong to.
    pub image: u32,
    pub frames: Box<[u64]>,
    /// How the walk ended, and which frames are exact pcs.
    pub end: StackEnd,
    pub counters: StackCounters,
    pub origin: Option<Origin>,
}

/// Stacks are looked up by a hash of (kind, frames); entries with the same
/// hash are compared in full. The hot path allocates nothing.
#[derive(Default)]
pub struct StackTable {
    entries: Vec<StackEntry>,
    index: HashMap<u64, Vec<StackId>, RandomState>,
    hasher: RandomState,
}

impl StackTable {
    pub fn intern(&mut self, kind: ResourceKind, image: u32, frames: &[u64], end: StackEnd) -> StackId {
        self.intern_with(kind, image, frames, end, None)
    }

    /// The same stack as `id`, of a descriptor whose handle came from `origin`.
    pub fn with_origin(&mut self, id: StackId, origin: Origin) -> StackId {
        let e = &self.entries[id.0 as usize];
        let (kind, image, frames, end) = (e.kind, e.image, e.frames.clone(), e.end);
        self.intern_with(kind, image, &frames, end, Some(origin))
    }

    fn intern_with(&mut self, kind: ResourceKind, image: u32, frames: &[u64], end: StackEnd, origin: Option<Origin>) -> StackId {
        let key = self.hasher.hash_one((kind, image, frames, origin));
        let bucket = self.index.entry(key).or_default();
        if let Some(&id) = bucket.iter().find(|id| {
            let e = &self.entries[id.0 as usize];
            e.kind == kind && e.image == image && &*e.frames == frames && e.origin == origin
        }) {
            return id;
        }
        let id = StackId(self.entries.len() as u32);
        bucket.push(id);
        self.entries.push(StackEntry { kind, image, frames: frames.into(), end, counters: StackCounters::default(), origin });
        id
    }

    pub fn get(&self, id: StackId) -> &StackEntry {
        &self.entries[id.0 as usize]
    }

    pub fn counters_mut(&mut self, id: StackId) -> &mut StackCounters {
        &mut self.entries[id.0 as usize].counters
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (StackId, &StackEntry)> {
        self.entries.iter().enumerate().map(|(i, e)| (StackId(i as u32), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::FdKind;

    #[test]
    fn same_kind_and_frames_intern_once() {
        let mut t = StackTable::default();
        let a = t.intern(ResourceKind::Heap, 0, &[1, 2, 3], StackEnd::COMPLETE);
        let b = t.intern(ResourceKind::Heap, 0, &[1, 2, 3], StackEnd::COMPLETE);
        let c = t.intern(ResourceKind::Fd(FdKind::Socket), 0, &[1, 2, 3], StackEnd::COMPLETE);
        let d = t.intern(ResourceKind::Heap, 0, &[1, 2], StackEnd::COMPLETE);
        let e = t.intern(ResourceKind::Heap, 1, &[1, 2, 3], StackEnd::COMPLETE);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(a, e, "another image's addresses are another stack");
        assert_eq!(t.len(), 4);
        assert_eq!(&*t.get(c).frames, &[1, 2, 3]);
        let created = t.intern(ResourceKind::Timer, 0, &[9], StackEnd::COMPLETE);
        let origin = Origin { created, server: None };
        let bound = t.with_origin(c, origin);
        assert_ne!(bound, c, "a descriptor of a handle is a stack of its own");
        assert_eq!((t.get(bound).kind, &*t.get(bound).frames, t.get(bound).origin), (t.get(c).kind, &[1, 2, 3][..], Some(origin)));
        assert_eq!(t.with_origin(c, origin), bound);
        assert_ne!(t.with_origin(c, Origin { created, server: Some(a) }), bound);
    }
}
