use super::*;
use crate::aggregate::StackEnd;
use tracer_common::AllocFn;

const P: u32 = 100;

fn heap(agg: &mut Aggregator, frames: &[u64]) -> StackId {
    agg.stacks.intern(ResourceKind::Heap, 0, frames, StackEnd::COMPLETE)
}

fn fd_stack(agg: &mut Aggregator, kind: FdKind, frames: &[u64]) -> StackId {
    agg.stacks.intern(ResourceKind::Fd(kind), 0, frames, StackEnd::COMPLETE)
}

fn alloc(agg: &mut Aggregator, addr: u64, size: u64, s: StackId) {
    agg.apply(P, 1, &Body::Alloc { addr, size, func: AllocFn::Malloc }, Some(s));
}

fn open(agg: &mut Aggregator, fd: i32, kind: FdKind, cloexec: bool, s: StackId) {
    agg.apply(P, 1, &Body::FdOpen { fd, kind, cloexec, pair: None, meta: FdMeta { file: fd as u32 + 1000, ..FdMeta::default() } }, Some(s));
}

fn outstanding(agg: &Aggregator, s: StackId) -> (u64, u64) {
    let c = agg.stacks.get(s).counters;
    (c.outstanding, c.outstanding_bytes)
}

#[test]
fn malloc_then_free_leaves_nothing() {
    let mut agg = Aggregator::new();
    let s = heap(&mut agg, &[1, 2]);
    alloc(&mut agg, 0x10, 10, s);
    alloc(&mut agg, 0x20, 20, s);
    agg.apply(P, 2, &Body::Free { addr: 0x10 }, None);
    assert_eq!(outstanding(&agg, s), (1, 20));
    assert_eq!(agg.heap_totals(), (20, 1));
    let c = agg.stacks.get(s).counters;
    assert_eq!((c.acquired, c.released), (2, 1));
}

#[test]
fn realloc_moves_the_allocation_to_its_own_site() {
    let mut agg = Aggregator::new();
    let m = heap(&mut agg, &[1]);
    let r = heap(&mut agg, &[2]);
    alloc(&mut agg, 0x10, 10, m);
    agg.apply(P, 2, &Body::Realloc { old: 0x10, new: 0x30, size: 64 }, Some(r));
    assert_eq!(outstanding(&agg, m), (0, 0));
    assert_eq!(outstanding(&agg, r), (1, 64));
    // realloc(NULL, n) is a plain allocation.
    agg.apply(P, 3, &Body::Realloc { old: 0, new: 0x50, size: 8 }, Some(r));
    assert_eq!(outstanding(&agg, r), (2, 72));
    assert_eq!(agg.anomalies().unknown_frees, 0);
}

#[test]
fn failed_allocations_and_unknown_frees_are_counted_not_outstanding() {
    let mut agg = Aggregator::new();
    agg.apply(P, 1, &Body::AllocFailed { size: 1 << 40, func: AllocFn::Malloc }, None);
    agg.apply(P, 1, &Body::Free { addr: 0x999 }, None);
    assert_eq!(agg.heap_totals(), (0, 0));
    let a = agg.anomalies();
    assert_eq!((a.failed_allocations, a.unknown_frees), (1, 1));
}

#[test]
fn processes_are_kept_apart() {
    let mut agg = Aggregator::new();
    let s = heap(&mut agg, &[1]);
    alloc(&mut agg, 0x10, 10, s);
    agg.apply(P + 1, 2, &Body::Free { addr: 0x10 }, None);
    assert_eq!(outstanding(&agg, s), (1, 10));
}

#[test]
fn dup2_over_an_open_fd_closes_it_and_takes_the_kernels_kind() {
    let mut agg = Aggregator::new();
    let sock = fd_stack(&mut agg, FdKind::Socket, &[1]);
    let tfd = fd_stack(&mut agg, FdKind::Timerfd, &[2]);
    open(&mut agg, 5, FdKind::Socket, false, sock);
    open(&mut agg, 6, FdKind::Timerfd, false, tfd);
    let dup = fd_stack(&mut agg, FdKind::Socket, &[3]);
    agg.apply(P, 2, &Body::FdDup { new: 6, old: 5, cloexec: false, file: 0, kind: FdKind::Socket }, Some(dup));
    assert_eq!(outstanding(&agg, tfd), (0, 0), "dup2 closed the timerfd");
    assert_eq!(agg.open_fds(P), vec![(5, FdKind::Socket), (6, FdKind::Socket)]);
    // dup2(fd, fd) changes nothing.
    agg.apply(P, 3, &Body::FdDup { new: 5, old: 5, cloexec: false, file: 0, kind: FdKind::Socket }, Some(dup));
    assert_eq!(outstanding(&agg, sock), (1, 0));
}

#[test]
fn socketpair_opens_both_and_close_releases_each() {
    let mut agg = Aggregator::new();
    let s = fd_stack(&mut agg, FdKind::Socket, &[1]);
    agg.apply(P, 1, &Body::FdOpen { fd: 3, kind: FdKind::Socket, cloexec: false, pair: Some(4), meta: FdMeta::default() }, Some(s));
    assert_eq!(outstanding(&agg, s), (2, 0));
    agg.apply(P, 2, &Body::FdClose { fd: 4, occupant: 0 }, None);
    assert_eq!(agg.open_fds(P), vec![(3, FdKind::Socket)]);
    agg.apply(P, 2, &Body::FdClose { fd: 42, occupant: 0 }, None);
    assert_eq!(agg.anomalies().unknown_closes, 1);
}

#[test]
fn close_range_closes_or_marks_cloexec() {
    let mut agg = Aggregator::new();
    let s = fd_stack(&mut agg, FdKind::Eventfd, &[1]);
    for fd in 3..=8 {
        open(&mut agg, fd, FdKind::Eventfd, false, s);
    }
    agg.apply(P, 2, &Body::FdCloseRange { first: 4, last: 6, flags: 0 }, None);
    assert_eq!(agg.open_fds(P).iter().map(|f| f.0).collect::<Vec<_>>(), vec![3, 7, 8]);
    agg.apply(P, 3, &Body::FdCloseRange { first: 7, last: u32::MAX, flags: CLOSE_RANGE_CLOEXEC }, None);
    agg.apply(P, 4, &Body::Exec, None);
    assert_eq!(agg.open_fds(P).iter().map(|f| f.0).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn exec_drops_the_heap_and_cloexec_fds_only() {
    let mut agg = Aggregator::new();
    let h = heap(&mut agg, &[1]);
    let f = fd_stack(&mut agg, FdKind::Pipe, &[2]);
    alloc(&mut agg, 0x10, 10, h);
    open(&mut agg, 3, FdKind::Pipe, true, f);
    open(&mut agg, 4, FdKind::Pipe, false, f);
    agg.apply(P, 2, &Body::FdSetCloexec { fd: 4, on: false }, None);
    agg.apply(P, 3, &Body::Exec, None);
    assert_eq!(agg.heap_totals(), (0, 0));
    assert_eq!(agg.open_fds(P), vec![(4, FdKind::Pipe)]);
}

#[test]
fn summaries_report_the_oldest_outstanding_item() {
    let mut agg = Aggregator::new();
    let s = heap(&mut agg, &[1]);
    let ms = 1_000_000;
    agg.apply(P, 50 * ms, &Body::Alloc { addr: 1, size: 1, func: AllocFn::Malloc }, Some(s));
    agg.apply(P, 20 * ms, &Body::Alloc { addr: 2, size: 1, func: AllocFn::Malloc }, Some(s));
    agg.apply(P, 60 * ms, &Body::Free { addr: 2 }, None);
    let sum = agg.summaries(70 * ms);
    assert_eq!(sum.len(), 1);
    // Times are kept to TS_UNIT_MS (the block at 20 ms is freed: 50 ms is the oldest).
    let oldest = sum[0].oldest_ns.unwrap();
    let unit = super::super::blocks::TS_UNIT_MS * ms;
    assert!(oldest.abs_diff(50 * ms) < unit, "{oldest}");
    assert_eq!(sum[0].counters.outstanding, 1);
}

#[test]
fn a_reused_address_releases_the_missed_allocation() {
    let mut agg = Aggregator::new();
    let s = heap(&mut agg, &[1]);
    alloc(&mut agg, 0x10, 10, s);
    alloc(&mut agg, 0x10, 30, s);
    assert_eq!(outstanding(&agg, s), (1, 30));
    assert_eq!(agg.anomalies().reused_addresses, 1);
}

fn open_file(agg: &mut Aggregator, fd: i32, file: u32, s: StackId) {
    let meta = FdMeta { file, ..FdMeta::default() };
    agg.apply(P, 1, &Body::FdOpen { fd, kind: FdKind::Eventfd, cloexec: false, pair: None, meta }, Some(s));
}

#[test]
fn a_close_recorded_after_another_threads_reuse_of_its_number_keeps_the_new_one() {
    let mut agg = Aggregator::new();
    let (old, new) = (fd_stack(&mut agg, FdKind::Eventfd, &[1]), fd_stack(&mut agg, FdKind::Eventfd, &[2]));
    open_file(&mut agg, 5, 0xa, old);
    // Thread A closes 5; thread B gets 5 (file 0xb) and its record comes first;
    // A's close returns with 0xb at that number.
    open_file(&mut agg, 5, 0xb, new);
    agg.apply(P, 2, &Body::FdClose { fd: 5, occupant: 0xb }, None);
    assert_eq!(outstanding(&agg, new), (1, 0), "the new descriptor is still open");
    assert_eq!(outstanding(&agg, old), (0, 0));
    assert_eq!(agg.anomalies().reused_descriptors, 0, "no close was missed");
    // The other order: A's close (0xb already there) comes before B's record.
    open_file(&mut agg, 6, 0xc, old);
    agg.apply(P, 2, &Body::FdClose { fd: 6, occupant: 0xd }, None);
    open_file(&mut agg, 6, 0xd, new);
    assert_eq!(agg.open_fds(P), vec![(5, FdKind::Eventfd), (6, FdKind::Eventfd)]);
    assert_eq!(outstanding(&agg, new), (2, 0));
    assert_eq!(outstanding(&agg, old), (0, 0));
    assert_eq!(agg.anomalies(), Anomalies::default());
}

#[test]
fn names_families_and_received_descriptors_reach_the_summary() {
    let mut agg = Aggregator::new();
    let s = fd_stack(&mut agg, FdKind::Socket, &[1]);
    let meta = FdMeta { file: 1, family: 2, socktype: 1, ..FdMeta::default() };
    agg.apply(P, 1, &Body::FdOpen { fd: 3, kind: FdKind::Socket, cloexec: false, pair: None, meta }, Some(s));
    let r = fd_stack(&mut agg, FdKind::Memfd, &[2]);
    let meta = FdMeta { file: 2, received: true, ..FdMeta::default() };
    agg.apply(P, 1, &Body::FdOpen { fd: 4, kind: FdKind::Memfd, cloexec: false, pair: None, meta }, Some(r));
    agg.apply(P, 1, &Body::FdName { fd: 4, name: "memfd:shm".into() }, None);
    // A name for a number nobody holds is dropped.
    agg.apply(P, 1, &Body::FdName { fd: 99, name: "x".into() }, None);
    let sum = agg.summaries(0);
    let detail = |id: StackId| sum.iter().find(|x| x.stack == id).unwrap().detail.clone().unwrap();
    assert_eq!(detail(s).notes.into_iter().collect::<Vec<_>>(), vec!["AF_INET SOCK_STREAM"]);
    assert!(!detail(s).received);
    assert!(detail(r).received);
    assert_eq!(detail(r).notes.into_iter().collect::<Vec<_>>(), vec!["memfd:shm"]);
}

#[test]
fn a_close_delayed_past_a_whole_reuse_is_not_an_anomaly() {
    let mut agg = Aggregator::new();
    let (a, b) = (fd_stack(&mut agg, FdKind::Eventfd, &[1]), fd_stack(&mut agg, FdKind::Eventfd, &[2]));
    open_file(&mut agg, 5, 0xa, a);
    // A closes 5 but is slow to return; B opens 5 and closes it; A's close returns on a free number.
    open_file(&mut agg, 5, 0xb, b);
    agg.apply(P, 2, &Body::FdClose { fd: 5, occupant: 0 }, None);
    agg.apply(P, 2, &Body::FdClose { fd: 5, occupant: 0 }, None);
    assert_eq!(agg.open_fds(P), vec![]);
    assert_eq!(agg.anomalies(), Anomalies::default());
    // A close that never came stays counted.
    open_file(&mut agg, 6, 0xc, a);
    open_file(&mut agg, 6, 0xd, b);
    assert_eq!(agg.anomalies().reused_descriptors, 1);
    assert_eq!(agg.open_fds(P), vec![(6, FdKind::Eventfd)]);
}

#[test]
fn after_the_window_closes_releases_count_and_acquisitions_do_not() {
    let mut agg = Aggregator::new();
    let (h, f) = (heap(&mut agg, &[1]), fd_stack(&mut agg, FdKind::Socket, &[2]));
    agg.apply(P, 10, &Body::Alloc { addr: 0x10, size: 16, func: AllocFn::Malloc }, Some(h));
    agg.apply(P, 10, &Body::Alloc { addr: 0x20, size: 16, func: AllocFn::Malloc }, Some(h));
    let open_at = |agg: &mut Aggregator, ts, fd: i32| {
        let meta = FdMeta { file: fd as u32 + 1000, ..FdMeta::default() };
        agg.apply(P, ts, &Body::FdOpen { fd, kind: FdKind::Socket, cloexec: false, pair: None, meta }, Some(f));
    };
    open_at(&mut agg, 10, 5);
    agg.close_window(20);
    // Just after: the socket opened before the end is closed, a block freed, another moved.
    agg.apply(P, 21, &Body::FdClose { fd: 5, occupant: 0 }, None);
    agg.apply(P, 21, &Body::Free { addr: 0x10 }, None);
    agg.apply(P, 22, &Body::Realloc { old: 0x20, new: 0x30, size: 32 }, Some(h));
    // What the next moments acquire stays out, and so do its releases.
    open_at(&mut agg, 23, 6);
    agg.apply(P, 23, &Body::Alloc { addr: 0x40, size: 8, func: AllocFn::Malloc }, Some(h));
    open_at(&mut agg, 24, 7);
    agg.apply(P, 25, &Body::FdClose { fd: 7, occupant: 0 }, None);
    agg.apply(P, 25, &Body::Free { addr: 0x40 }, None);
    assert_eq!(outstanding(&agg, f), (0, 0), "the socket closed in the grace is not held");
    assert_eq!(agg.heap_totals(), (32, 1), "the moved block is held at its new size; nothing after the end");
    assert_eq!((agg.anomalies().unknown_frees, agg.anomalies().unknown_closes), (0, 0));
}

#[test]
fn standard_streams_are_followed_only_when_asked() {
    for track in [false, true] {
        let mut agg = Aggregator::new();
        agg.track_std_fds(track);
        let file = fd_stack(&mut agg, FdKind::File, &[1]);
        let dup = fd_stack(&mut agg, FdKind::File, &[2]);
        open(&mut agg, 0, FdKind::File, false, file); // an open after close(0)
        open(&mut agg, 5, FdKind::File, false, file);
        agg.apply(P, 2, &Body::FdDup { new: 2, old: 5, cloexec: false, file: 0, kind: FdKind::File }, Some(dup));
        // The inherited stdout's close: a number never seen opened, either way.
        agg.apply(P, 3, &Body::FdClose { fd: 1, occupant: 0 }, None);
        assert_eq!(agg.anomalies().unknown_closes, 1);
        let open_fds: Vec<i32> = agg.open_fds(P).into_iter().map(|(fd, _)| fd).collect();
        if track {
            assert_eq!(open_fds, vec![0, 2, 5]);
            assert_eq!((outstanding(&agg, file).0, outstanding(&agg, dup).0), (2, 1));
        } else {
            assert_eq!(open_fds, vec![5], "only the descriptor that is not a standard stream");
            assert_eq!((outstanding(&agg, file).0, outstanding(&agg, dup).0), (1, 0));
        }
        // The close of the stderr the program made: released, no anomaly.
        agg.apply(P, 4, &Body::FdClose { fd: 2, occupant: 0 }, None);
        assert_eq!(agg.anomalies().unknown_closes, 1);
        assert_eq!(outstanding(&agg, dup).0, 0);
    }
}
