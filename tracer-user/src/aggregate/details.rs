//! What the records say of a stack's descriptors besides their kind: the
//! file's own name (a memfd's, which BPF object, an unknown anonymous
//! inode's), the socket call's family and type, and whether they were
//! received from another process.

use std::collections::{BTreeSet, HashMap};

use super::StackId;

/// Distinct notes kept per stack.
const MAX_NOTES: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdDetail {
    /// Received over a Unix socket (SCM_RIGHTS) by the call on this stack.
    pub received: bool,
    /// Sorted, at most [`MAX_NOTES`].
    pub notes: BTreeSet<String>,
}

#[derive(Default)]
pub struct Details {
    by_stack: HashMap<StackId, FdDetail>,
}

impl Details {
    pub fn mark_received(&mut self, stack: StackId) {
        self.by_stack.entry(stack).or_default().received = true;
    }

    pub fn note(&mut self, stack: StackId, note: String) {
        let d = self.by_stack.entry(stack).or_default();
        if d.notes.len() < MAX_NOTES || d.notes.contains(&note) {
            d.notes.insert(note);
        }
    }

    /// `to` says what `from` says (a descriptor moved to the stack of its handle).
    pub fn copy(&mut self, from: StackId, to: StackId) {
        if let Some(d) = self.get(from).cloned() {
            if d.received {
                self.mark_received(to);
            }
            d.notes.into_iter().for_each(|n| self.note(to, n));
        }
    }

    pub fn get(&self, stack: StackId) -> Option<&FdDetail> {
        self.by_stack.get(&stack)
    }
}

/// A socket call's family and type, as a report shows them.
pub fn socket(family: u16, socktype: u16) -> String {
    format!("{} {}", family_name(family), type_name(socktype))
}

fn family_name(f: u16) -> String {
    let known = match f {
        1 => "AF_UNIX",
        2 => "AF_INET",
        10 => "AF_INET6",
        16 => "AF_NETLINK",
        17 => "AF_PACKET",
        38 => "AF_ALG",
        40 => "AF_VSOCK",
        44 => "AF_XDP",
        _ => return format!("family {f}"),
    };
    known.to_owned()
}

fn type_name(t: u16) -> String {
    let known = match t {
        1 => "SOCK_STREAM",
        2 => "SOCK_DGRAM",
        3 => "SOCK_RAW",
        4 => "SOCK_RDM",
        5 => "SOCK_SEQPACKET",
        10 => "SOCK_PACKET",
        _ => return format!("type {t}"),
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_read_as_family_and_type() {
        assert_eq!(socket(2, 1), "AF_INET SOCK_STREAM");
        assert_eq!(socket(1, 2), "AF_UNIX SOCK_DGRAM");
        assert_eq!(socket(99, 9), "family 99 type 9");
    }

    #[test]
    fn notes_are_distinct_and_bounded() {
        let mut d = Details::default();
        let s = StackId(3);
        for i in 0..20 {
            d.note(s, format!("n{}", i % 10));
        }
        d.note(s, "n1".into());
        assert_eq!(d.get(s).unwrap().notes.len(), MAX_NOTES);
        assert!(!d.get(s).unwrap().received);
        d.mark_received(s);
        assert!(d.get(s).unwrap().received);
        assert_eq!(d.get(StackId(4)), None);
    }
}
