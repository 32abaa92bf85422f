//! What the kernel-side unwinder reads and reports: the compact CFI rows
//! userspace builds from each module's `.eh_frame`/`.debug_frame`, the module
//! table entries that point into them, and why a walk stopped. Shared by the
//! eBPF walker, the loader that fills the tables and userspace's own walker.

/// How a frame's canonical frame address (CFA) is found from the registers.
/// The return address is always at CFA-8 (x86-64).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CfaKind {
    /// No unwind information covers this code: frame pointers are tried.
    None = 0,
    /// CFA = rsp + offset.
    Rsp = 1,
    /// CFA = rbp + offset.
    Rbp = 2,
    /// CFA = *(rbp + offset): functions that realign their stack (DW_OP_breg6; DW_OP_deref).
    DerefRbp = 3,
    /// A PLT stub: CFA = rsp + 8, or rsp + 16 once `pc & 15 >= offset` (the lazy-binding push).
    Plt = 4,
    /// A signal trampoline (`__restore_rt`): the interrupted registers are in the
    /// `ucontext` at rsp.
    Signal = 5,
    /// The outermost frame (`_start`, a thread's start): the return address is undefined.
    End = 6,
    /// CFI the walkers do not implement (a CFA from another register, an
    /// unusual expression): the walk stops here.
    Unsupported = 7,
}

impl CfaKind {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Rsp,
            2 => Self::Rbp,
            3 => Self::DerefRbp,
            4 => Self::Plt,
            5 => Self::Signal,
            6 => Self::End,
            7 => Self::Unsupported,
            _ => Self::None,
        }
    }
}

/// One row of a module's unwind table: the rule from `offset` (a file offset
/// in the module) up to the next row's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnwindRow {
    pub offset: u32,
    /// CFA offset in units of 8 bytes (the PLT threshold for [`CfaKind::Plt`]).
    pub cfa: i16,
    /// Where the caller's rbp is saved, relative to the CFA, in units of 8
    /// bytes; 0: rbp is not saved (unchanged).
    pub rbp: i8,
    /// A [`CfaKind`] discriminant.
    pub kind: u8,
}

/// Byte offsets of the ucontext registers a signal frame restores
/// (`uc_mcontext.gregs` of x86-64 starts 40 bytes in; rbp, rsp, rip are its
/// 11th, 16th and 17th registers).
pub const UC_RBP: u64 = 40 + 10 * 8;
pub const UC_RSP: u64 = 40 + 15 * 8;
pub const UC_RIP: u64 = 40 + 16 * 8;

/// A mapped file as the kernel identifies it: its super block's device and
/// its inode number (the kernel's own `dev_t` encoding, MAJOR << 20 | MINOR).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ModuleKey {
    pub dev: u64,
    pub ino: u64,
}

/// The kernel's dev_t encoding (MAJOR << 20 | MINOR) of a device number,
/// as module keys carry it.
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | minor as u64
}

/// Where a module's rows are in the row table, and its page index in the page table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleRows {
    pub first: u32,
    /// 0: the module has no unwind information (frame pointers are tried).
    pub count: u32,
    /// The module's first entry in the page table.
    pub pages_first: u32,
    /// Entries it has there (0: no index; all rows are searched).
    pub pages: u32,
}

/// Rows are indexed by pages of 1 << PAGE_SHIFT bytes of file offset.
pub const PAGE_SHIFT: u32 = 12;

/// A module's page index: entry p is the index of the row in force at file
/// offset p << PAGE_SHIFT (the row before the first, 0, when none is).
#[cfg(feature = "user")]
pub fn page_index(rows: &[UnwindRow]) -> std::vec::Vec<u32> {
    let Some(last) = rows.last() else { return std::vec::Vec::new() };
    (0..=(last.offset >> PAGE_SHIFT)).map(|p| rows.partition_point(|r| r.offset <= p << PAGE_SHIFT).saturating_sub(1) as u32).collect()
}

/// The rows [lo, hi) that can hold the rule for `offset`, from the page
/// index (`page(p)` is entry p of `pages`); all `count` rows without one.
#[inline(always)]
pub fn search_range(count: u32, pages: u32, offset: u64, page: impl Fn(u32) -> Option<u32>) -> (u32, u32) {
    if pages == 0 {
        return (0, count);
    }
    let p = (offset >> PAGE_SHIFT).min(u64::from(pages - 1)) as u32;
    let lo = page(p).unwrap_or(0);
    let hi = if p + 1 < pages { page(p + 1).map_or(count, |i| i + 1) } else { count };
    (lo.min(count), hi.min(count))
}

// SAFETY: plain #[repr(C)] structs of integers without padding: any bytes are a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ModuleKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ModuleRows {}

/// Why a stack walk ended. Values are ABI: append, never renumber.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StopReason {
    /// The outermost frame was reached: the stack is complete.
    End = 0,
    /// `--stack-depth` frames were taken.
    MaxDepth = 1,
    /// The code's module had no unwind table loaded yet (the record carries a
    /// copy of the stack for userspace to go on).
    NoTable = 2,
    /// The address is in no mapping (JIT code freed, a corrupt frame).
    NoMapping = 3,
    /// The unwind information uses a rule the walker does not implement, or
    /// covers no row here.
    NoRule = 4,
    /// The stack could not be read (an unmapped or swapped-out page).
    ReadFault = 5,
    /// The process's memory map was being changed (mmap lock contended): the
    /// record carries a copy of the stack.
    MapBusy = 6,
    /// A frame did not move up the stack: corrupt or mis-described.
    BadFrame = 7,
    /// Frame-pointer mode (`--unwind fp`): where the kernel's walk ended is unknown.
    FramePointers = 8,
    /// The walk had no room for its state (the per-thread table is full).
    NoState = 9,
}

impl StopReason {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::End,
            1 => Self::MaxDepth,
            2 => Self::NoTable,
            3 => Self::NoMapping,
            4 => Self::NoRule,
            5 => Self::ReadFault,
            6 => Self::MapBusy,
            7 => Self::BadFrame,
            8 => Self::FramePointers,
            9 => Self::NoState,
            _ => return None,
        })
    }

    /// Whether the stack is known to be complete.
    pub const fn is_complete(self) -> bool {
        matches!(self, Self::End)
    }

    /// Whether the kernel attached a copy of the stack for userspace to continue.
    pub const fn wants_copy(self) -> bool {
        matches!(self, Self::NoTable | Self::MapBusy)
    }

    /// What it means for a report.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::End => "complete",
            Self::MaxDepth => "--stack-depth frames taken",
            Self::NoTable => "module's unwind table not yet loaded",
            Self::NoMapping => "address outside every mapping (JIT or corrupt frame)",
            Self::NoRule => "no usable unwind rule for this code",
            Self::ReadFault => "stack memory unreadable",
            Self::MapBusy => "memory map being changed",
            Self::BadFrame => "a frame did not move up the stack",
            Self::FramePointers => "frame-pointer walk",
            Self::NoState => "no room for the walk's state (too many threads)",
        }
    }
}

/// Where the walker reads the user stack: the live process (kernel side) or
/// a copy of it (userspace).
pub trait StackMemory {
    fn word(&self, addr: u64) -> Option<u64>;
    /// Two consecutive words (one read where that is cheaper).
    fn pair(&self, addr: u64) -> Option<[u64; 2]> {
        Some([self.word(addr)?, self.word(addr.wrapping_add(8))?])
    }
}

/// The registers that define a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
}

/// A frame's caller, and whether its pc is exact (it was interrupted by a
/// signal) rather than a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub regs: Regs,
    pub exact: bool,
}

/// A frame larger than this is taken for corruption.
pub const MAX_FRAME_BYTES: u64 = 1 << 24;

/// The caller of the frame `f` by its module's rule `row`; `lookup` is the
/// address inside the frame's code (pc, or pc - 1 for a return address).
#[inline(always)]
pub fn step_rule(row: UnwindRow, lookup: u64, f: Regs, mem: &impl StackMemory) -> Result<Caller, StopReason> {
    let scaled = row.cfa as i64 * 8;
    let cfa = match CfaKind::from_u8(row.kind) {
        CfaKind::Rsp => f.sp.wrapping_add_signed(scaled),
        CfaKind::Rbp => f.bp.wrapping_add_signed(scaled),
        CfaKind::DerefRbp => mem.word(f.bp.wrapping_add_signed(scaled)).ok_or(StopReason::ReadFault)?,
        CfaKind::Plt => f.sp.wrapping_add(if (lookup & 15) as i64 >= row.cfa as i64 { 16 } else { 8 }),
        CfaKind::Signal => {
            let regs = Regs {
                pc: mem.word(f.sp.wrapping_add(UC_RIP)).ok_or(StopReason::ReadFault)?,
                sp: mem.word(f.sp.wrapping_add(UC_RSP)).ok_or(StopReason::ReadFault)?,
                bp: mem.word(f.sp.wrapping_add(UC_RBP)).ok_or(StopReason::ReadFault)?,
            };
            return Ok(Caller { regs, exact: true });
        }
        CfaKind::End => return Err(StopReason::End),
        CfaKind::Unsupported => return Err(StopReason::NoRule),
        // Code the module's CFI does not cover (hand-written assembly, a JIT's
        // builtins embedded in the binary): frame pointers, as for JIT code.
        CfaKind::None => return step_frame_pointer(f, mem),
    };
    if cfa <= f.sp || cfa - f.sp > MAX_FRAME_BYTES {
        return Err(StopReason::BadFrame);
    }
    let (ra, bp) = match row.rbp {
        0 => (mem.word(cfa - 8).ok_or(StopReason::ReadFault)?, f.bp),
        // The usual prologue: rbp pushed right below the return address.
        -2 => {
            let [bp, ra] = mem.pair(cfa - 16).ok_or(StopReason::ReadFault)?;
            (ra, bp)
        }
        at => {
            let ra = mem.word(cfa - 8).ok_or(StopReason::ReadFault)?;
            (ra, mem.word(cfa.wrapping_add_signed(at as i64 * 8)).ok_or(StopReason::ReadFault)?)
        }
    };
    if ra == 0 {
        return Err(StopReason::End);
    }
    Ok(Caller { regs: Regs { pc: ra, sp: cfa, bp }, exact: false })
}

/// The caller of the frame `f` by frame pointers (code without unwind information).
#[inline(always)]
pub fn step_frame_pointer(f: Regs, mem: &impl StackMemory) -> Result<Caller, StopReason> {
    if f.bp < f.sp || f.bp - f.sp > MAX_FRAME_BYTES {
        return Err(StopReason::BadFrame);
    }
    let [bp, ra] = mem.pair(f.bp).ok_or(StopReason::ReadFault)?;
    // A zero where a frame pointer says the return address is proves no
    // bottom: in code without frame pointers rbp is any register. Only a
    // module's own CFI can say a stack is complete.
    if ra == 0 {
        return Err(StopReason::NoRule);
    }
    Ok(Caller { regs: Regs { pc: ra, sp: f.bp + 16, bp }, exact: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stack words from `base` upward.
    struct Copy<'a> {
        base: u64,
        words: &'a [u64],
    }

    impl StackMemory for Copy<'_> {
        fn word(&self, addr: u64) -> Option<u64> {
            let off = addr.checked_sub(self.base)?;
            (off % 8 == 0).then(|| self.words.get((off / 8) as usize).copied()).flatten()
        }
    }

    const SP: u64 = 0x7000;

    fn row(kind: CfaKind, cfa: i16, rbp: i8) -> UnwindRow {
        UnwindRow { offset: 0, cfa, rbp, kind: kind as u8 }
    }

    #[test]
    fn a_frameless_function_is_stepped_by_its_cfa() {
        // CFA = rsp + 24; return address at CFA-8 = SP+16.
        let mem = Copy { base: SP, words: &[1, 2, 0x4444, 9] };
        let c = step_rule(row(CfaKind::Rsp, 3, 0), 0x1000, Regs { pc: 0x1001, sp: SP, bp: 0xb0 }, &mem).unwrap();
        assert_eq!(c, Caller { regs: Regs { pc: 0x4444, sp: SP + 24, bp: 0xb0 }, exact: false });
    }

    #[test]
    fn a_frame_pointer_function_restores_rbp() {
        // CFA = rbp + 16, rbp saved at CFA-16: [rbp] = caller's rbp, [rbp+8] = return address.
        let mem = Copy { base: SP, words: &[0, 0, 0x7100, 0x5555] };
        let f = Regs { pc: 0x1001, sp: SP, bp: SP + 16 };
        let c = step_rule(row(CfaKind::Rbp, 2, -2), 0x1000, f, &mem).unwrap();
        assert_eq!(c.regs, Regs { pc: 0x5555, sp: SP + 32, bp: 0x7100 });
        assert_eq!(step_frame_pointer(f, &mem).unwrap().regs, c.regs, "the same frame by frame pointers");
    }

    #[test]
    fn realigned_plt_and_signal_frames() {
        // CFA = *(rbp - 8): the realigned main's rule.
        let mem = Copy { base: SP, words: &[SP + 40, 0, 0, 0, 0x6666] };
        let c = step_rule(row(CfaKind::DerefRbp, -1, 0), 0x1000, Regs { pc: 1, sp: SP, bp: SP + 8 }, &mem).unwrap();
        assert_eq!(c.regs.pc, 0x6666);
        assert_eq!(c.regs.sp, SP + 40);
        // A PLT stub: 8 before the push at offset 11 of its 16 bytes, 16 after.
        let mem = Copy { base: SP, words: &[0x7777, 0x8888] };
        let plt = row(CfaKind::Plt, 11, 0);
        assert_eq!(step_rule(plt, 0x1006, Regs { pc: 0x1006, sp: SP, bp: 0 }, &mem).unwrap().regs.pc, 0x7777);
        assert_eq!(step_rule(plt, 0x100b, Regs { pc: 0x100b, sp: SP, bp: 0 }, &mem).unwrap().regs.pc, 0x8888);
        // A signal frame: the interrupted registers, the pc exact.
        let mut uc = [0u64; 32];
        (uc[(UC_RBP / 8) as usize], uc[(UC_RSP / 8) as usize], uc[(UC_RIP / 8) as usize]) = (0xb1, 0x9000, 0x1234);
        let c = step_rule(row(CfaKind::Signal, 0, 0), 0x1000, Regs { pc: 1, sp: SP, bp: 0 }, &Copy { base: SP, words: &uc }).unwrap();
        assert_eq!(c, Caller { regs: Regs { pc: 0x1234, sp: 0x9000, bp: 0xb1 }, exact: true });
    }

    #[test]
    #[cfg(feature = "user")]
    fn the_page_index_narrows_the_search_to_the_right_rows() {
        let r = |offset| UnwindRow { offset, cfa: 1, rbp: 0, kind: CfaKind::Rsp as u8 };
        let rows = [r(0x800), r(0x1010), r(0x1200), r(0x3004)];
        let idx = page_index(&rows);
        assert_eq!(idx, std::vec![0, 0, 2, 2]);
        let range = |off| search_range(4, 4, off, |p| idx.get(p as usize).copied());
        // Every offset's row lies in its range: the last row at or below it.
        for off in [0x0, 0x800, 0x1000, 0x1010, 0x1fff, 0x2500, 0x3004, 0x9000] {
            let want = rows.iter().rposition(|x| u64::from(x.offset) <= off);
            let (lo, hi) = range(off);
            let got = rows[lo as usize..hi as usize].iter().rposition(|x| u64::from(x.offset) <= off).map(|i| i + lo as usize);
            assert_eq!(got, want, "offset {off:#x} searched in {lo}..{hi}");
        }
        assert_eq!(search_range(4, 0, 0x1234, |_| None), (0, 4), "no index: every row");
    }

    #[test]
    fn the_walk_stops_for_a_reason() {
        let mem = Copy { base: SP, words: &[0, 0] };
        let f = Regs { pc: 1, sp: SP, bp: 0 };
        assert_eq!(step_rule(row(CfaKind::End, 1, 0), 0, f, &mem), Err(StopReason::End));
        assert_eq!(
            step_rule(row(CfaKind::None, 1, 0), 0, f, &mem),
            Err(StopReason::BadFrame),
            "uncovered code: frame pointers (rbp 0 here)"
        );
        assert_eq!(step_rule(row(CfaKind::Unsupported, 1, 0), 0, f, &mem), Err(StopReason::NoRule));
        assert_eq!(step_rule(row(CfaKind::Rsp, 1, 0), 0, f, &mem), Err(StopReason::End), "a zero return address is the bottom");
        assert_eq!(step_rule(row(CfaKind::Rsp, 9, 0), 0, f, &mem), Err(StopReason::ReadFault), "beyond the copy");
        assert_eq!(step_rule(row(CfaKind::Rsp, -1, 0), 0, f, &mem), Err(StopReason::BadFrame), "a CFA below the stack pointer");
        assert_eq!(step_frame_pointer(Regs { pc: 1, sp: SP, bp: SP - 8 }, &mem), Err(StopReason::BadFrame));
        assert_eq!(
            step_frame_pointer(Regs { pc: 1, sp: SP, bp: SP }, &mem),
            Err(StopReason::NoRule),
            "a zero return address by frame pointers is no proof of the bottom: the stack is cut"
        );
    }
}
