//! Lost or still reachable: valgrind memcheck's classification of every
//! outstanding heap block (definitely, indirectly, possibly lost, still
//! reachable), from a scan of the stopped target's memory — at its exit
//! under `run`, on demand under `attach`.

mod fds;
mod index;
mod mark;
mod remote;
mod roots;
mod scan;
mod threads;
mod window;

pub use index::Block;
pub use mark::{Class, Work};
pub use roots::Thread;
pub use scan::{scan, ScanInput, ScanResult, StackClass};
pub use threads::registers;

/// The target's memory, as the scan reads it.
pub trait Memory {
    /// Fills `out` with the bytes of each `(address, length)` range in turn
    /// (the lengths add up to `out.len()`); bytes that cannot be read are
    /// zeros. Returns how many could not be read.
    fn read(&mut self, ranges: &[(u64, usize)], out: &mut [u8]) -> u64;
}

#[cfg(test)]
mod tests;
