//! Where each ended thread's stack pointer was when it exited, per process.
//! glibc keeps the stack of a thread that ended (its control block and TLS
//! at the top) for the next thread it creates; valgrind reads such a stack
//! from that pointer up, so the reachability scan does too (reach/roots.rs).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How many ended threads a process remembers: glibc's stack cache holds
/// 40 MiB of stacks, a few of the default size, some hundreds of small ones.
const KEPT: usize = 1024;

#[derive(Default)]
pub struct EndedThreads {
    /// Oldest first. Shared with forked children until one side changes.
    by_process: HashMap<u32, Arc<VecDeque<u64>>>,
}

impl EndedThreads {
    /// Thread `tid` of `tgid` ended with its stack pointer at `sp`.
    pub fn ended(&mut self, tgid: u32, tid: u32, sp: u64) {
        if tid == tgid {
            return;
        }
        // A thread is reported as a fork too: what it was handed is dropped.
        self.by_process.remove(&tid);
        if sp == 0 {
            return;
        }
        let list = Arc::make_mut(self.by_process.entry(tgid).or_default());
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back(sp);
    }

    /// A child forked without exec has its parent's cached stacks.
    pub fn forked(&mut self, parent: u32, child: u32) {
        if let Some(list) = self.by_process.get(&parent) {
            self.by_process.insert(child, list.clone());
        }
    }

    /// A new image, or the process is gone: its stacks are.
    pub fn forget(&mut self, pid: u32) {
        self.by_process.remove(&pid);
    }

    /// The stack pointers of `pid`'s ended threads, oldest first.
    pub fn of(&self, pid: u32) -> Vec<u64> {
        self.by_process.get(&pid).map(|l| l.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_that_ended_are_kept_per_process_and_inherited_by_a_fork() {
        let mut e = EndedThreads::default();
        e.ended(7, 8, 0x7f10_0000_1000);
        e.ended(7, 9, 0x7f20_0000_1000);
        e.ended(7, 7, 0x7ffc_0000_1000);
        assert_eq!(e.of(7), vec![0x7f10_0000_1000, 0x7f20_0000_1000], "the process's own exit is no thread's");
        e.forked(7, 10);
        e.ended(7, 11, 0x7f30_0000_1000);
        assert_eq!(e.of(10), vec![0x7f10_0000_1000, 0x7f20_0000_1000], "the child has what its parent had at the fork");
        e.forked(7, 12);
        e.ended(7, 12, 0x7f40_0000_1000);
        assert_eq!(e.of(12), Vec::<u64>::new(), "a thread's copy goes at its exit");
        assert_eq!(e.of(7).len(), 4);
        e.forget(7);
        assert!(e.of(7).is_empty());
        for i in 0..KEPT as u64 + 5 {
            e.ended(20, 21, 0x1000 + i);
        }
        assert_eq!(e.of(20).len(), KEPT);
        assert_eq!(e.of(20)[0], 0x1005, "the oldest go first");
    }
}
