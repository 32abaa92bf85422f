//! Reading the target's memory with process_vm_readv: up to IOV_MAX ranges
//! a call into one buffer; a range the kernel stops in is read again page by
//! page, and what cannot be read is zeros.

use std::io::IoSliceMut;

use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use super::mark::BATCH_BLOCKS;
use super::Memory;

const PAGE: u64 = 4096;

/// The memory of a stopped process.
pub struct Remote {
    pid: Pid,
}

impl Remote {
    pub fn new(pid: u32) -> Self {
        Self { pid: Pid::from_raw(pid as i32) }
    }

    /// One call; the bytes it read.
    fn readv(&self, ranges: &[(u64, usize)], out: &mut [u8]) -> usize {
        let remote: Vec<RemoteIoVec> = ranges.iter().map(|&(base, len)| RemoteIoVec { base: base as usize, len }).collect();
        process_vm_readv(self.pid, &mut [IoSliceMut::new(out)], &remote).unwrap_or(0)
    }

    /// One range, a page at a time: the unreadable bytes (zeroed).
    fn read_pages(&self, start: u64, out: &mut [u8]) -> u64 {
        let mut lost = 0;
        let mut done = 0usize;
        while done < out.len() {
            let at = start + done as u64;
            let len = ((PAGE - at % PAGE) as usize).min(out.len() - done);
            let piece = &mut out[done..done + len];
            let n = self.readv(&[(at, len)], piece);
            if n < len {
                piece[n..].fill(0);
                lost += (len - n) as u64;
            }
            done += len;
        }
        lost
    }
}

impl Memory for Remote {
    fn read(&mut self, ranges: &[(u64, usize)], out: &mut [u8]) -> u64 {
        let mut lost = 0;
        let (mut i, mut at) = (0usize, 0usize);
        while i < ranges.len() {
            let batch = &ranges[i..(i + BATCH_BLOCKS).min(ranges.len())];
            let total: usize = batch.iter().map(|r| r.1).sum();
            let n = self.readv(batch, &mut out[at..at + total]);
            if n == total {
                i += batch.len();
                at += total;
                continue;
            }
            // The ranges read whole, then the one the kernel stopped in.
            let (mut whole, mut k) = (0usize, 0usize);
            while k < batch.len() && whole + batch[k].1 <= n {
                whole += batch[k].1;
                k += 1;
            }
            let (start, len) = batch[k];
            lost += self.read_pages(start, &mut out[at + whole..at + whole + len]);
            i += k + 1;
            at += whole + len;
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_reads_back_and_an_unmapped_page_reads_as_zeros() {
        let data: Vec<u64> = (1..=2048).collect();
        let base = data.as_ptr() as u64;
        let mut mem = Remote::new(std::process::id());
        let mut out = vec![0xffu8; 16 + 8];
        let lost = mem.read(&[(base, 16), (0x10, 8)], &mut out);
        assert_eq!(lost, 8, "page zero is unmapped");
        assert_eq!(&out[..8], &1u64.to_le_bytes());
        assert_eq!(&out[8..16], &2u64.to_le_bytes());
        assert_eq!(&out[16..], &[0; 8]);
        let mut big = vec![0u8; 2048 * 8];
        assert_eq!(mem.read(&[(base, big.len())], &mut big), 0);
        assert_eq!(&big[2047 * 8..], &2048u64.to_le_bytes());
    }
}
