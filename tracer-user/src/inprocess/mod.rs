//! The in-process heap recorder, leaktrace's side: the library it preloads
//! into a command (embedded in leaktrace, handed to the command through a
//! memfd), the shared file the recorder writes its records to and reads
//! its unwind tables from, and the reader that merges those records with
//! the kernel's in time order.
//!
//! Only the heap moves into the process; descriptors stay with the kernel's
//! tracepoints. Where the recorder cannot work (a static or setuid image,
//! an executable with its own allocator) the uprobes remain.

mod library;
mod reader;
pub mod shared_file;

pub use library::{Library, RECORDER};
pub use reader::{ts_of, InProcessReader, RecorderStats};
pub use shared_file::SharedFile;

/// How the heap is traced (`--heap-probes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeapProbes {
    /// Not said: `run` takes Auto, `attach` Uprobe.
    #[default]
    Default,
    /// In-process where the image allows it, uprobes elsewhere.
    Auto,
    /// The recorder library in the process.
    InProcess,
    /// Uprobes on the allocator (a trap per call).
    Uprobe,
}
