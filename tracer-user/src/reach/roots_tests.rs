use super::*;
use crate::reach::index::Block;

const MAPS: &str = "\
55d0c000-55d0d000 r--p 00000000 08:01 100 /usr/bin/app
55d0d000-55d0e000 r-xp 00001000 08:01 100 /usr/bin/app
55d0e000-55d0f000 rw-p 00002000 08:01 100 /usr/bin/app
55d0f000-55d10000 rw-p 00000000 00:00 0
55d20000-55d60000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
7f0000100000-7f0004000000 ---p 00000000 00:00 0
7f1000000000-7f1000001000 ---p 00000000 00:00 0
7f1000001000-7f1000800000 rw-p 00000000 00:00 0
7f2000000000-7f2000001000 ---p 00000000 00:00 0
7f2000001000-7f2000800000 rw-p 00000000 00:00 0
7f3000000000-7f3000010000 rw-p 00000000 00:00 0
7f4000000000-7f4000020000 r-xp 00000000 08:01 200 /usr/lib/libc.so.6
7f4000020000-7f4000021000 rw-p 00020000 08:01 200 /usr/lib/libc.so.6
7f4000021000-7f4000030000 rw-p 00000000 00:00 0
7f5000000000-7f5000001000 rw-s 00000000 08:01 300 /dev/shm/data
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
";

fn thread(tid: u32, sp: u64, fs_base: u64) -> Thread {
    Thread { tid, sp, fs_base, in_syscall: false, registers: vec![sp, fs_base, 0x55d20010] }
}

fn blocks(b: &[(u64, u64)]) -> BlockIndex {
    BlockIndex::new(b.iter().map(|&(addr, size)| Block { addr, size }).collect())
}

#[test]
fn modules_stacks_tls_and_registers_are_roots_and_the_heap_is_not() {
    let maps = parse_maps(MAPS);
    assert_eq!(maps.len(), 17);
    let threads = [thread(1, 0x7ffc00010000, 0x7f3000008000), thread(2, 0x7f1000700000, 0x7f10007ff000)];
    let roots = find(&maps, &threads, &[], &blocks(&[(0x55d20010, 32)]), false, true);
    assert_eq!(
        roots.ranges,
        vec![
            (0x55d0e000, 0x55d10000),               // the executable's data and its bss
            (0x7f1000700000 - 128, 0x7f1000800000), // thread 2 from its stack pointer (its TLS is above it)
            (0x7f3000000000, 0x7f3000009000),       // thread 1's TLS below fs_base and its TCB above
            (0x7f4000020000, 0x7f4000030000),       // libc's data and bss
            (0x7ffc00010000 - 128, 0x7ffc00021000), // the main stack from its pointer
        ]
    );
    assert_eq!(roots.values.len(), 6);
    let in_syscall = [Thread { in_syscall: true, ..threads[0].clone() }];
    let roots = find(&maps, &in_syscall, &[], &blocks(&[]), false, true);
    assert!(roots.ranges.contains(&(0x7ffc00010000, 0x7ffc00021000)), "no red zone below a thread stopped in a system call");
}

#[test]
fn with_glibc_the_programs_own_memory_is_scanned_but_not_its_heaps_or_dead_stacks() {
    let maps = parse_maps(MAPS);
    let threads = [thread(1, 0x7ffc00010000, 0x7f3000008000)];
    // An outstanding block in the program's own mapping is cut out.
    let roots = find(&maps, &threads, &[], &blocks(&[(0x7f3000001000, 0x1000)]), true, true);
    assert_eq!(
        roots.ranges,
        vec![
            (0x55d0e000, 0x55d10000),
            (0x7f3000000000, 0x7f3000001000),
            (0x7f3000002000, 0x7f3000010000),
            (0x7f4000020000, 0x7f4000030000),
            (0x7f5000000000, 0x7f5000001000),
            (0x7ffc00010000 - 128, 0x7ffc00021000),
        ],
        "no [heap], no arena heap (64 MiB-aligned with its reservation), no stack behind a guard page without a thread"
    );
}

#[test]
fn root_ranges_lose_the_blocks_inside_them() {
    let b = blocks(&[(0x1010, 0x10), (0x1040, 0x20), (0x2000, 0x100)]);
    assert_eq!(
        without_blocks(vec![(0x1000, 0x1100), (0x1f00, 0x2080)], &b, 0),
        vec![(0x1000, 0x1010), (0x1020, 0x1040), (0x1060, 0x1100), (0x1f00, 0x2000)]
    );
    // glibc: a gap between two blocks with no room for a chunk is no root; one with room is.
    let b = blocks(&[(0x1010, 0x10), (0x1030, 0x20), (0x1080, 0x10)]);
    assert_eq!(
        without_blocks(vec![(0x1000, 0x1100)], &b, GLIBC_MIN_CHUNK),
        vec![(0x1000, 0x1010), (0x1050, 0x1080), (0x1090, 0x1100)],
        "0x1020..0x1030 holds a header and padding; 0x1050..0x1080 may hold a block"
    );
    assert_eq!(merge(vec![(5, 9), (1, 3), (2, 6), (10, 11)]), vec![(1, 9), (10, 11)]);
}

#[test]
fn without_the_whole_heap_known_all_writable_memory_but_the_known_blocks_is_a_root() {
    let maps = parse_maps(MAPS);
    let threads = [thread(1, 0x7ffc00010000, 0x7f3000008000)];
    let roots = find(&maps, &threads, &[], &blocks(&[(0x55d20010, 32)]), true, false);
    for heap in [(0x55d20000, 0x55d20010), (0x55d20030, 0x55d60000), (0x7f0000000000, 0x7f0000100000), (0x7f1000001000, 0x7f1000800000)] {
        assert!(roots.ranges.contains(&heap), "{heap:x?} in {:x?}", roots.ranges);
    }
    assert!(roots.ranges.iter().all(|&(s, e)| e <= 0x7ffc00010000 - 128 || s >= 0x7ffc00010000 - 128), "the stack from its pointer only");
}

#[test]
fn an_ended_threads_stack_is_read_from_its_last_stack_pointer_unless_a_live_thread_took_it_over() {
    let maps = parse_maps(MAPS);
    let main = thread(1, 0x7ffc00010000, 0x7f3000008000);
    // Two threads ended on the first stack (the later one counts), one on
    // the second; one pointer lies in an arena heap, one in memory behind no
    // guard page (both came where glibc unmapped a stack).
    let ended = [0x7f1000700000, 0x7f2000790000, 0x7f10007f0000, 0x7f0000000100, 0x7f300000a000];
    let roots = find(&maps, std::slice::from_ref(&main), &ended, &blocks(&[]), true, true);
    assert!(roots.ranges.contains(&(0x7f10007f0000, 0x7f1000800000)), "{:x?}", roots.ranges);
    assert!(roots.ranges.contains(&(0x7f2000790000, 0x7f2000800000)), "{:x?}", roots.ranges);
    assert!(roots.ranges.iter().all(|&(s, e)| e <= 0x7f0000000000 || s >= 0x7f0000100000), "no arena heap: {:x?}", roots.ranges);
    // (Without glibc's heap the program's own memory is no root: only a stack's part would make it one.)
    let other = find(&maps, std::slice::from_ref(&main), &ended, &blocks(&[]), false, true);
    assert!(!other.ranges.iter().any(|&(s, e)| (s..e).contains(&0x7f300000a000)), "no guard page: {:x?}", other.ranges);
    assert_eq!(roots.values.len(), 3, "an ended thread has no registers");
    // A live thread on the second stack: its own pointer, not the ended one's.
    let live = [main, thread(2, 0x7f2000700000, 0x7f20007ff000)];
    let roots = find(&maps, &live, &ended, &blocks(&[]), true, true);
    assert!(roots.ranges.contains(&(0x7f2000700000 - 128, 0x7f2000800000)), "{:x?}", roots.ranges);
}
