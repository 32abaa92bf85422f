//! What a descriptor refers to, told from the file itself: its filesystem's
//! magic number, its inode's type and its dentry's name (what `/proc/PID/fd`
//! shows after `anon_inode:`). The kernel side reads those three at the
//! system call's exit and classifies with [`classify`]; the kind is never
//! guessed from the system call that made the descriptor.

/// The kind of kernel object a descriptor refers to. Append, never renumber.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FdKind {
    /// An anonymous inode of no kind below (its name goes with the record).
    Other = 0,
    Socket = 1,
    Timerfd = 2,
    Eventfd = 3,
    Epoll = 4,
    /// A pipe or a FIFO.
    Pipe = 5,
    /// A file, directory or device in a filesystem (O_PATH and mount descriptors too).
    File = 6,
    Inotify = 7,
    Signalfd = 8,
    IoUring = 9,
    Pidfd = 10,
    Fanotify = 11,
    /// memfd_create and memfd_secret.
    Memfd = 12,
    Perf = 13,
    /// A BPF map, program, link, BTF object, iterator or token.
    Bpf = 14,
    Userfaultfd = 15,
}

impl FdKind {
    pub const ALL: [FdKind; 16] = [
        Self::Socket,
        Self::Timerfd,
        Self::Eventfd,
        Self::Epoll,
        Self::Pipe,
        Self::File,
        Self::Inotify,
        Self::Signalfd,
        Self::IoUring,
        Self::Pidfd,
        Self::Fanotify,
        Self::Memfd,
        Self::Perf,
        Self::Bpf,
        Self::Userfaultfd,
        Self::Other,
    ];

    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Socket,
            2 => Self::Timerfd,
            3 => Self::Eventfd,
            4 => Self::Epoll,
            5 => Self::Pipe,
            6 => Self::File,
            7 => Self::Inotify,
            8 => Self::Signalfd,
            9 => Self::IoUring,
            10 => Self::Pidfd,
            11 => Self::Fanotify,
            12 => Self::Memfd,
            13 => Self::Perf,
            14 => Self::Bpf,
            15 => Self::Userfaultfd,
            _ => Self::Other,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Socket => "socket",
            Self::Timerfd => "timerfd",
            Self::Eventfd => "eventfd",
            Self::Epoll => "epoll",
            Self::Pipe => "pipe",
            Self::File => "file",
            Self::Inotify => "inotify",
            Self::Signalfd => "signalfd",
            Self::IoUring => "io_uring",
            Self::Pidfd => "pidfd",
            Self::Fanotify => "fanotify",
            Self::Memfd => "memfd",
            Self::Perf => "perf",
            Self::Bpf => "bpf",
            Self::Userfaultfd => "userfaultfd",
        }
    }

    /// Kinds whose dentry name says more than the kind (a memfd's name, which
    /// BPF object, an unknown anonymous inode's): the kernel side sends it
    /// after the new descriptor's record. (A socket's says its protocol, which
    /// its family and type say already: not worth a record per socket.)
    pub const fn has_name_detail(self) -> bool {
        matches!(self, Self::Memfd | Self::Bpf | Self::Other)
    }
}

/// Bytes of a dentry name the kernel side reads (NUL-padded; longer names are cut).
pub const NAME_LEN: usize = 16;

/// A dentry name as the kernel side holds it: [`NAME_LEN`] bytes in two
/// little-endian words, so that comparing with a known name is two compares.
pub type Name = [u64; 2];

/// Filesystem magic numbers (`include/uapi/linux/magic.h`).
pub mod magic {
    pub const SOCKFS: u64 = 0x534F_434B;
    pub const PIPEFS: u64 = 0x5049_5045;
    pub const ANON_INODE_FS: u64 = 0x0904_1934;
    pub const PIDFS: u64 = 0x5049_4446;
    pub const TMPFS: u64 = 0x0102_1994;
    pub const HUGETLBFS: u64 = 0x9584_58f6;
    pub const SECRETMEM: u64 = 0x5345_434d;
}

const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFIFO: u32 = 0o010000;

/// `s` NUL-padded to [`NAME_LEN`] bytes, as a [`Name`].
pub const fn name_of(s: &[u8]) -> Name {
    let mut b = [0u8; NAME_LEN];
    let mut i = 0;
    while i < s.len() && i < NAME_LEN {
        b[i] = s[i];
        i += 1;
    }
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    let mut j = 0;
    while j < 8 {
        lo[j] = b[j];
        hi[j] = b[8 + j];
        j += 1;
    }
    [u64::from_le_bytes(lo), u64::from_le_bytes(hi)]
}

/// `name` with every byte from its first NUL on cleared (a plain read of a
/// dentry name copies whatever follows the NUL). Branch-free: the kernel
/// side runs it, and a branch per byte would have the verifier walk each
/// combination (it was most of the descriptor programs' verification time).
#[inline(always)]
pub const fn until_nul(name: Name) -> Name {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The bytes of a word before its first zero byte, and whether it has one:
    // the lowest bit of (w - ONES) & !w & HIGHS is the first zero byte's high
    // bit (borrows only ever mark bytes above a zero one).
    const fn before_zero(w: u64) -> (u64, u64) {
        let zeros = w.wrapping_sub(ONES) & !w & HIGHS;
        let first = zeros & zeros.wrapping_neg();
        // No zero byte: first = 0, and the mask is all ones.
        let keep = (first >> 7).wrapping_sub(1);
        (keep, (first != 0) as u64)
    }
    let (keep0, ended0) = before_zero(name[0]);
    let (keep1, _) = before_zero(name[1]);
    // A NUL in the first word clears the whole second one.
    [name[0] & keep0, name[1] & keep1 & ended0.wrapping_sub(1)]
}

/// The names anonymous inodes are created with, by kind.
const ANON_NAMES: [(Name, FdKind); 16] = [
    (name_of(b"[timerfd]"), FdKind::Timerfd),
    (name_of(b"[eventfd]"), FdKind::Eventfd),
    (name_of(b"[eventpoll]"), FdKind::Epoll),
    (name_of(b"[io_uring]"), FdKind::IoUring),
    (name_of(b"inotify"), FdKind::Inotify),
    (name_of(b"[signalfd]"), FdKind::Signalfd),
    (name_of(b"[fanotify]"), FdKind::Fanotify),
    (name_of(b"[userfaultfd]"), FdKind::Userfaultfd),
    (name_of(b"[perf_event]"), FdKind::Perf),
    (name_of(b"[pidfd]"), FdKind::Pidfd),
    (name_of(b"bpf-map"), FdKind::Bpf),
    (name_of(b"bpf-prog"), FdKind::Bpf),
    (name_of(b"bpf_link"), FdKind::Bpf),
    (name_of(b"bpf_iter"), FdKind::Bpf),
    (name_of(b"btf"), FdKind::Bpf),
    (name_of(b"bpf-token"), FdKind::Bpf),
];

/// memfd_create names its file `memfd:NAME`: the first six bytes.
const MEMFD_PREFIX: u64 = name_of(b"memfd:")[0];
const MEMFD_MASK: u64 = 0xffff_ffff_ffff;

/// Sockets and pipes (FIFOs too) say so in their inode's mode: nothing more to read.
#[inline(always)]
pub const fn kind_by_mode(mode: u32) -> Option<FdKind> {
    match mode & S_IFMT {
        S_IFSOCK => Some(FdKind::Socket),
        S_IFIFO => Some(FdKind::Pipe),
        _ => None,
    }
}

/// Whether telling the kind of a file of this filesystem, or its detail,
/// takes its dentry name (anonymous inodes, memfds): the kernel side reads
/// the name only then.
#[inline(always)]
pub const fn needs_name(fs_magic: u64) -> bool {
    matches!(fs_magic, magic::ANON_INODE_FS | magic::TMPFS | magic::HUGETLBFS | magic::SECRETMEM)
}

/// The kind of an open file, from its superblock's magic, its inode's mode
/// and its dentry's name.
#[inline(always)]
pub fn classify(fs_magic: u64, mode: u32, name: Name) -> FdKind {
    if let Some(kind) = kind_by_mode(mode) {
        return kind;
    }
    match fs_magic {
        magic::SOCKFS => FdKind::Socket,
        magic::PIPEFS => FdKind::Pipe,
        magic::PIDFS => FdKind::Pidfd,
        magic::SECRETMEM => FdKind::Memfd,
        magic::ANON_INODE_FS => anon_kind(name),
        magic::TMPFS | magic::HUGETLBFS if name[0] & MEMFD_MASK == MEMFD_PREFIX => FdKind::Memfd,
        _ => FdKind::File,
    }
}

#[inline(always)]
fn anon_kind(name: Name) -> FdKind {
    let mut i = 0;
    while i < ANON_NAMES.len() {
        let (n, kind) = ANON_NAMES[i];
        if n[0] == name[0] && n[1] == name[1] {
            return kind;
        }
        i += 1;
    }
    FdKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = 0o100644;

    #[test]
    fn anonymous_inodes_by_name() {
        let anon = |s: &[u8]| classify(magic::ANON_INODE_FS, 0o600, name_of(s));
        assert_eq!(anon(b"[timerfd]"), FdKind::Timerfd);
        assert_eq!(anon(b"[eventpoll]"), FdKind::Epoll);
        assert_eq!(anon(b"[io_uring]"), FdKind::IoUring);
        assert_eq!(anon(b"inotify"), FdKind::Inotify);
        assert_eq!(anon(b"[userfaultfd]"), FdKind::Userfaultfd);
        assert_eq!(anon(b"bpf_link"), FdKind::Bpf);
        assert_eq!(anon(b"[kvm-vm]"), FdKind::Other);
        // Exact names only: a longer or shorter name is another object.
        assert_eq!(anon(b"[eventfd]x"), FdKind::Other);
        assert_eq!(anon(b"[eventfd"), FdKind::Other);
    }

    #[test]
    fn filesystems_by_magic_then_mode() {
        assert_eq!(classify(magic::SOCKFS, S_IFSOCK | 0o777, name_of(b"TCP")), FdKind::Socket);
        assert_eq!(classify(magic::PIPEFS, S_IFIFO | 0o600, name_of(b"")), FdKind::Pipe);
        assert_eq!(classify(magic::PIDFS, REG, name_of(b"/")), FdKind::Pidfd);
        assert_eq!(classify(magic::TMPFS, REG, name_of(b"memfd:wayland-shm")), FdKind::Memfd);
        assert_eq!(classify(magic::TMPFS, REG, name_of(b"notes.txt")), FdKind::File);
        assert_eq!(classify(magic::SECRETMEM, REG, name_of(b"secretmem")), FdKind::Memfd);
        assert_eq!(classify(0xEF53, S_IFIFO | 0o644, name_of(b"myfifo")), FdKind::Pipe, "a named FIFO");
        assert_eq!(classify(0xEF53, REG, name_of(b"[timerfd]")), FdKind::File, "a real file with a strange name");
    }

    #[test]
    fn every_kind_round_trips_and_has_a_distinct_name() {
        for k in FdKind::ALL {
            assert_eq!(FdKind::from_u32(k as u32), k);
            assert_eq!(FdKind::ALL.iter().filter(|o| o.name() == k.name()).count(), 1);
        }
        assert_eq!(FdKind::from_u32(999), FdKind::Other);
    }

    #[test]
    fn until_nul_clears_exactly_the_bytes_from_the_first_nul() {
        fn naive(name: Name) -> Name {
            let mut bytes = [0u8; NAME_LEN];
            bytes[..8].copy_from_slice(&name[0].to_le_bytes());
            bytes[8..].copy_from_slice(&name[1].to_le_bytes());
            if let Some(nul) = bytes.iter().position(|&b| b == 0) {
                bytes[nul..].fill(0);
            }
            name_of(&bytes)
        }
        // Every position of the first NUL, with garbage (including 0x01 and
        // 0x80 bytes, which trip naive zero-byte tricks) before and after it.
        let garbage = [0x01u8, 0x80, 0xff, 0x7f, 0x81, 0x00, 0x41];
        for nul in 0..=NAME_LEN {
            for (g, &fill) in garbage.iter().enumerate() {
                let mut bytes = [0u8; NAME_LEN];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = if i < nul { garbage[(i + g) % garbage.len()].max(1) } else { fill };
                }
                if nul < NAME_LEN {
                    bytes[nul] = 0;
                }
                let name = [u64::from_le_bytes(bytes[..8].try_into().unwrap()), u64::from_le_bytes(bytes[8..].try_into().unwrap())];
                assert_eq!(until_nul(name), naive(name), "first NUL at {nul}, fill {fill:#x}");
            }
        }
        assert_eq!(until_nul(name_of(b"[timerfd]")), name_of(b"[timerfd]"));
    }

    #[test]
    fn long_names_are_cut_not_overrun() {
        let n = name_of(b"a-name-much-longer-than-sixteen");
        assert_eq!(n, name_of(b"a-name-much-long"));
    }
}
