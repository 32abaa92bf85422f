//! How descriptor records fill the header's `a`, `b` and `c`: packed here,
//! for the kernel side, and unpacked here, for the decoder.
//!
//! | kind | a | b | c |
//! | --- | --- | --- | --- |
//! | FdOpen | fd, file tag << 32 | [`OpenInfo`] | pair fd, its file tag << 32; or [`NO_PAIR`] |
//! | FdDup | new fd, file tag << 32 | old fd | close-on-exec, kind << 8 |
//! | FdClose | fd, occupant tag << 32 | | |
//! | FdName | fd | name bytes 0..8 | name bytes 8..16 |
//!
//! A file tag names a `struct file` (32 bits of its address, never 0). A close
//! is recorded at the system call's exit, once the number is free again: its
//! occupant tag is the file another thread has put at that number meanwhile
//! (0 when none), so that userspace does not take the close for the new one's.

use crate::fdkind::FdKind;

/// `c` of an FdOpen record without a second descriptor.
pub const NO_PAIR: u64 = u64::MAX;

/// The tag of the `struct file` at kernel address `addr` (0 for none).
#[inline(always)]
pub const fn file_tag(addr: u64) -> u32 {
    if addr == 0 {
        return 0;
    }
    // Files are cache-line aligned: the low bits say nothing.
    let t = ((addr >> 6) ^ (addr >> 38)) as u32;
    if t == 0 {
        1
    } else {
        t
    }
}

/// A descriptor number and a file tag in one word.
#[inline(always)]
pub const fn fd_with_tag(fd: u64, tag: u32) -> u64 {
    (fd & 0xffff_ffff) | (tag as u64) << 32
}

/// The descriptor number of a word made by [`fd_with_tag`] (None when out of range).
pub const fn fd_of(word: u64) -> Option<i32> {
    let fd = word as u32;
    if fd > i32::MAX as u32 {
        None
    } else {
        Some(fd as i32)
    }
}

/// The file tag of a word made by [`fd_with_tag`].
pub const fn tag_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// What an FdOpen record says of its descriptor besides the number (`b`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenInfo {
    pub kind: u32,
    pub cloexec: bool,
    /// Received from another process (SCM_RIGHTS, SCM_PIDFD).
    pub received: bool,
    /// socket/socketpair's address family and type (0 when not a socket call).
    pub family: u16,
    pub socktype: u16,
}

impl OpenInfo {
    #[inline(always)]
    pub const fn new(kind: FdKind, cloexec: bool) -> Self {
        Self { kind: kind as u32, cloexec, received: false, family: 0, socktype: 0 }
    }

    #[inline(always)]
    pub const fn pack(self) -> u64 {
        (self.kind as u64 & 0xff)
            | (self.cloexec as u64) << 8
            | (self.received as u64) << 9
            | (self.family as u64) << 16
            | (self.socktype as u64) << 32
    }

    pub const fn unpack(b: u64) -> Self {
        Self {
            kind: (b & 0xff) as u32,
            cloexec: (b >> 8) & 1 == 1,
            received: (b >> 9) & 1 == 1,
            family: (b >> 16) as u16,
            socktype: (b >> 32) as u16,
        }
    }
}

/// A dentry name's bytes, up to its first NUL.
pub fn name_bytes(words: [u64; 2]) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&words[0].to_le_bytes());
    b[8..].copy_from_slice(&words[1].to_le_bytes());
    let len = b.iter().position(|&c| c == 0).unwrap_or(16);
    (b, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdkind::name_of;

    #[test]
    fn open_info_round_trips() {
        let i = OpenInfo { kind: FdKind::Socket as u32, cloexec: true, received: true, family: 10, socktype: 5 };
        assert_eq!(OpenInfo::unpack(i.pack()), i);
        let plain = OpenInfo::new(FdKind::Pipe, false);
        assert_eq!(OpenInfo::unpack(plain.pack()), plain);
    }

    #[test]
    fn numbers_and_tags_share_a_word() {
        let w = fd_with_tag(7, 0xdead_beef);
        assert_eq!((fd_of(w), tag_of(w)), (Some(7), 0xdead_beef));
        assert_eq!(fd_of(u64::from(u32::MAX)), None);
        assert_eq!(file_tag(0), 0);
        assert_ne!(file_tag(0xffff_8881_0000_0000), 0, "never 0 for a file");
        assert_ne!(file_tag(0xffff_8881_2345_6780), file_tag(0xffff_8881_2345_67c0), "neighbouring files differ");
    }

    #[test]
    fn names_stop_at_their_nul() {
        let (b, n) = name_bytes(name_of(b"TCP"));
        assert_eq!(&b[..n], b"TCP");
        let (b, n) = name_bytes(name_of(b"memfd:0123456789"));
        assert_eq!(&b[..n], b"memfd:0123456789");
    }
}
