//! How the kernel walks user stacks, and what it needs to know at load: the
//! mode, the kernel structure offsets (from the kernel's BTF), table sizes.

use aya::EbpfLoader;

use super::btf::KernelBtf;
use crate::probes::errors::ProbeError;

/// How user stacks are walked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UnwindMode {
    /// The modules' own CFI, walked in the kernel (frame pointers only where
    /// a module has no unwind information).
    #[default]
    Cfi,
    /// The kernel's frame-pointer walk: cheaper, wrong in code built without
    /// frame pointers (Debian's own libraries among it).
    #[value(name = "fp")]
    FramePointers,
}

/// Rows the kernel's table holds unless told otherwise: 8 MiB.
pub const DEFAULT_UNWIND_ROWS: u32 = 1 << 20;

/// Page index entries per row of capacity: a page of code holds many rows.
pub const PAGES_PER_ROW: u32 = 4;

/// Members the walker reads: (global, struct, member, required).
const MEMBERS: [(&str, &str, &str, bool); 10] = [
    ("VMA_START", "vm_area_struct", "vm_start", true),
    ("VMA_END", "vm_area_struct", "vm_end", true),
    ("VMA_PGOFF", "vm_area_struct", "vm_pgoff", true),
    ("VMA_FILE", "vm_area_struct", "vm_file", true),
    ("FILE_INODE", "file", "f_inode", true),
    ("INODE_INO", "inode", "i_ino", true),
    ("INODE_SB", "inode", "i_sb", true),
    ("SB_DEV", "super_block", "s_dev", true),
    ("TASK_MM", "task_struct", "mm", true),
    // Without it (older kernels) nothing is kept from one walk to the next.
    ("MM_LOCK_SEQ", "mm_struct", "mm_lock_seq", false),
];

pub struct UnwindSettings {
    offsets: [(&'static str, u32); MEMBERS.len()],
    frame_pointers: u32,
    pause_on_load: u32,
    rows: u32,
    pages: u32,
}

impl UnwindSettings {
    pub fn new(btf: &KernelBtf, mode: UnwindMode, rows: u32, pause_on_load: bool) -> Result<Self, ProbeError> {
        let mut offsets = [("", 0); MEMBERS.len()];
        for (slot, (global, ty, member, required)) in offsets.iter_mut().zip(MEMBERS) {
            let off = match btf.member_offset(ty, member) {
                Ok(off) => off,
                Err(_) if !required => 0,
                Err(e) => return Err(ProbeError::KernelMember(e)),
            };
            *slot = (global, off);
        }
        let rows = rows.max(1);
        let frame_pointers = mode == UnwindMode::FramePointers;
        Ok(Self {
            offsets,
            frame_pointers: u32::from(frame_pointers),
            pause_on_load: u32::from(pause_on_load && !frame_pointers),
            rows,
            pages: (rows / PAGES_PER_ROW).max(1),
        })
    }

    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, off) in &self.offsets {
            loader.override_global(name, off, true);
        }
        loader.override_global("UNWIND_FRAME_POINTERS", &self.frame_pointers, true);
        loader.override_global("PAUSE_ON_LOAD", &self.pause_on_load, true);
        loader.map_max_entries("UNWIND_ROWS", self.rows);
        loader.map_max_entries("UNWIND_PAGES", self.pages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_the_walker_needs_is_in_this_kernel() {
        let btf = KernelBtf::load().unwrap();
        for (global, ty, member, _) in MEMBERS {
            assert!(btf.member_offset(ty, member).is_ok(), "{global}: {ty}.{member}");
        }
    }
}
