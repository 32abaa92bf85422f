use serde::Serialize;
use tracer_common::FdKind;

/// What kind of resource a site leaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Heap,
    Fd(FdKind),
    /// A libuv timer handle initialised and not closed (`uv_close`).
    Timer,
}

impl ResourceKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Heap => "heap",
            Self::Fd(k) => k.name(),
            Self::Timer => "timer",
        }
    }

    /// Parses a kind name as the manifest and the CLI write it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::all().find(|k| k.name() == s)
    }

    /// Every kind, heap first.
    pub fn all() -> impl Iterator<Item = ResourceKind> {
        std::iter::once(Self::Heap).chain(FdKind::ALL.into_iter().map(Self::Fd)).chain([Self::Timer])
    }

    /// A descriptor or a handle: what `totals.handles` counts.
    pub const fn is_handle(self) -> bool {
        !matches!(self, Self::Heap)
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ResourceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ResourceKind::all() {
            assert_eq!(ResourceKind::parse(k.name()), Some(k));
        }
        assert_eq!(ResourceKind::parse("nonsense"), None);
    }
}
