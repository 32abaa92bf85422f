use tracer_common::decode::{Body, FdMeta};
use tracer_common::{AllocFn, FdKind};

use crate::aggregate::{ResourceKind, StackEnd, StackId, State};

const MASTER: u32 = 100;

fn stack(s: &mut State, kind: ResourceKind, frame: u64) -> StackId {
    s.agg.stacks.intern(kind, 0, &[frame], StackEnd::COMPLETE)
}

fn alloc(s: &mut State, pid: u32, addr: u64, size: u64, st: StackId) {
    s.apply(pid, pid, 1, &Body::Alloc { addr, size, func: AllocFn::Malloc }, Some(st));
}

fn open(s: &mut State, pid: u32, fd: i32, st: StackId) {
    let meta = FdMeta { file: fd as u32 + 1000, ..FdMeta::default() };
    s.apply(pid, pid, 1, &Body::FdOpen { fd, kind: FdKind::File, cloexec: false, pair: None, meta }, Some(st));
}

/// (outstanding, acquired, released) of a stack.
fn counters(s: &State, st: StackId) -> (u64, u64, u64) {
    let c = s.agg.stacks.get(st).counters;
    (c.outstanding, c.acquired, c.released)
}

/// A master traced since its exec with two blocks and a log file.
fn master() -> (State, StackId, StackId) {
    let mut s = State::new();
    s.apply(MASTER, MASTER, 0, &Body::Exec, None);
    let (h, f) = (stack(&mut s, ResourceKind::Heap, 1), stack(&mut s, ResourceKind::Fd(FdKind::File), 2));
    alloc(&mut s, MASTER, 0x1000, 100, h);
    alloc(&mut s, MASTER, 0x2000, 200, h);
    open(&mut s, MASTER, 5, f);
    (s, h, f)
}

#[test]
fn a_forked_worker_holds_what_it_inherited_and_releases_it_knowingly() {
    let (mut s, h, f) = master();
    for child in [201, 202] {
        s.apply(MASTER, MASTER, 2, &Body::Fork { child }, None);
    }
    // The master goes on: what it does after the fork is not the workers'.
    s.apply(MASTER, MASTER, 3, &Body::Free { addr: 0x1000 }, None);
    alloc(&mut s, MASTER, 0x3000, 300, h);
    // Worker 201 frees an inherited block, closes the log, leaks its own.
    s.apply(201, 201, 4, &Body::Free { addr: 0x2000 }, None);
    s.apply(201, 201, 4, &Body::FdClose { fd: 5, occupant: 0 }, None);
    alloc(&mut s, 201, 0x4000, 40, h);
    // Worker 202 only exits.
    s.apply(202, 202, 5, &Body::Exit { sp: 0 }, None);
    let a = s.agg.anomalies();
    assert_eq!((a.unknown_frees, a.unknown_closes, a.reused_addresses), (0, 0, 0));
    let by_pid: Vec<(u32, (u64, u64), u64)> = s.agg.processes().iter().map(|p| (p.pid, p.heap, p.handles.values().sum::<u64>())).collect();
    assert_eq!(by_pid, vec![(MASTER, (500, 2), 1), (201, (140, 2), 0), (202, (300, 2), 1)]);
    // Per stack, the processes summed: 2 + 2 + 2 blocks held of 2 + 2 + 2 + 2 acquired.
    assert_eq!(counters(&s, h), (6, 8, 2));
    assert_eq!(counters(&s, f), (2, 3, 1));
    assert_eq!(s.agg.heap_totals(), (940, 6));
    assert!(s.traced_since_exec(201) && s.traced_since_exec(202), "their tables are as complete as the master's");
    let blocks = s.agg.outstanding_blocks(202);
    assert_eq!(blocks, (vec![(0x1000, 100), (0x2000, 200)], vec![h, h]), "what the scan of a worker is given");
}

#[test]
fn a_thread_reported_as_a_fork_inherits_nothing() {
    let (mut s, h, f) = master();
    s.apply(MASTER, MASTER, 2, &Body::Fork { child: 101 }, None);
    // Its records carry the master's tgid.
    s.apply(MASTER, 101, 3, &Body::Free { addr: 0x1000 }, None);
    s.apply(MASTER, 101, 4, &Body::Exit { sp: 0 }, None);
    assert_eq!(counters(&s, h), (1, 2, 1));
    assert_eq!(counters(&s, f), (1, 1, 0));
    assert_eq!(s.agg.processes().len(), 1);
    assert!(!s.traced_since_exec(101));
    // A thread that did nothing before its exit is dropped just the same.
    s.apply(MASTER, MASTER, 5, &Body::Fork { child: 102 }, None);
    s.apply(MASTER, 102, 6, &Body::Exit { sp: 0 }, None);
    s.apply(102, 102, 7, &Body::Exit { sp: 0 }, None);
    assert_eq!(s.agg.processes().len(), 1, "a later process of that number inherits nothing from it");
}

#[test]
fn a_child_whose_first_record_is_its_exec_keeps_only_its_descriptors() {
    let (mut s, h, f) = master();
    s.apply(MASTER, MASTER, 2, &Body::Fork { child: 300 }, None);
    s.apply(300, 300, 3, &Body::Exec, None);
    assert_eq!(counters(&s, h), (2, 2, 0), "the heap went with the old image");
    assert_eq!(counters(&s, f), (2, 2, 0), "the log file did not (not close-on-exec)");
    s.apply(300, 300, 4, &Body::FdClose { fd: 5, occupant: 0 }, None);
    assert_eq!(s.agg.anomalies().unknown_closes, 0);
}

#[test]
fn an_untraced_parents_child_is_no_more_known_than_its_parent() {
    let mut s = State::new();
    let h = stack(&mut s, ResourceKind::Heap, 1);
    alloc(&mut s, 7, 0x1000, 8, h);
    s.apply(7, 7, 2, &Body::Fork { child: 8 }, None);
    s.apply(8, 8, 3, &Body::Free { addr: 0x1000 }, None);
    assert!(!s.traced_since_exec(8));
    assert_eq!(s.agg.anomalies().unknown_frees, 0, "what the parent was seen allocating is known");
    s.apply(8, 8, 4, &Body::Free { addr: 0x9000 }, None);
    assert_eq!(s.agg.anomalies().unknown_frees, 1, "what neither was seen allocating is not");
}

#[test]
fn a_child_silent_until_the_end_is_charged_when_it_is_a_live_process() {
    let (mut s, h, _) = master();
    // 301 a process, 302 a thread: neither makes a record before the end.
    for child in [301, 302] {
        s.apply(MASTER, MASTER, 2, &Body::Fork { child }, None);
    }
    s.agg.adopt_silent(|pid| pid == 301);
    let by_pid: Vec<(u32, (u64, u64), u64)> = s.agg.processes().iter().map(|p| (p.pid, p.heap, p.handles.values().sum::<u64>())).collect();
    assert_eq!(by_pid, vec![(MASTER, (300, 2), 1), (301, (300, 2), 1)]);
    assert_eq!(counters(&s, h).0, 4);
}
