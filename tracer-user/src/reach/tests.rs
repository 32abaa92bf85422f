//! The classification on memory made up in the test: valgrind's meanings, case by case.

use std::collections::BTreeMap;

use super::fds::FdWatch;
use super::index::{Block, BlockIndex};
use super::mark::{Class, Marker};
use super::Memory;

/// Sparse memory: words at addresses; everything else reads as zeros.
#[derive(Default)]
struct Fake {
    words: BTreeMap<u64, u64>,
    reads: usize,
}

impl Fake {
    fn put(&mut self, at: u64, word: u64) {
        self.words.insert(at, word);
    }
}

impl Memory for Fake {
    fn read(&mut self, ranges: &[(u64, usize)], out: &mut [u8]) -> u64 {
        self.reads += 1;
        out.fill(0);
        let mut at = 0;
        for &(start, len) in ranges {
            for (&a, &w) in self.words.range(start..start + len as u64) {
                let o = at + (a - start) as usize;
                let n = (len - (a - start) as usize).min(8);
                out[o..o + n].copy_from_slice(&w.to_le_bytes()[..n]);
            }
            at += len;
        }
        0
    }
}

const ROOT: (u64, u64) = (0x1000, 0x2000);

fn classify(blocks: &[(u64, u64)], mem: &mut Fake, registers: &[u64], glibc: bool) -> Vec<Class> {
    let index = BlockIndex::new(blocks.iter().map(|&(addr, size)| Block { addr, size }).collect());
    let mut m = Marker::new(&index, mem, glibc, None);
    m.scan_values(registers);
    m.scan_roots(&[ROOT]);
    m.finish().0
}

#[test]
fn valgrinds_four_classes() {
    let mut mem = Fake::default();
    // a: lost outright. b -> c: b lost, c indirectly. d: held by a global.
    // e: only an interior pointer. f: a start pointer from e only (possibly).
    // g: interior then start pointer from the roots (reachable). h: held in a register.
    let [a, b, c, d, e, f, g, h] = [0x10000, 0x10100, 0x10200, 0x10300, 0x10400, 0x10500, 0x10600, 0x10700];
    mem.put(b, c);
    mem.put(0x1008, d);
    mem.put(0x1010, e + 16);
    mem.put(e + 8, f);
    mem.put(0x1018, g + 40);
    mem.put(0x1ff8, g);
    let blocks: Vec<(u64, u64)> = [a, b, c, d, e, f, g, h].iter().map(|&x| (x, 64)).collect();
    let classes = classify(&blocks, &mut mem, &[h, 7], false);
    use Class::*;
    assert_eq!(classes, vec![Definite, Definite, Indirect, Reachable, Possible, Possible, Reachable, Reachable]);
}

#[test]
fn cliques_are_led_by_the_lowest_address_unless_claimed_later() {
    let mut mem = Fake::default();
    // A lost cycle x <-> y: x leads, y is indirect. z is alone at a low
    // address, and w (higher) points to it: w's clique claims z.
    let [z, x, y, w] = [0x20000, 0x20100, 0x20200, 0x20300];
    mem.put(x, y);
    mem.put(y + 8, x);
    mem.put(w + 16, z);
    let classes = classify(&[(z, 32), (x, 32), (y, 32), (w, 32)], &mut mem, &[], false);
    use Class::*;
    assert_eq!(classes, vec![Indirect, Definite, Indirect, Definite]);
}

#[test]
fn glibc_chunk_headers_are_not_pointers_into_the_block_before() {
    // A 24-byte request is a 32-byte chunk: the next chunk's header is 16
    // bytes in, where glibc's bins and top point.
    let blk = 0x30010;
    for (glibc, want) in [(true, Class::Definite), (false, Class::Possible)] {
        let mut mem = Fake::default();
        mem.put(0x1000, blk + 16);
        assert_eq!(classify(&[(blk, 24)], &mut mem, &[], glibc), vec![want]);
    }
}

#[test]
fn valgrinds_heuristics_take_some_interior_pointers_for_the_start() {
    let mut mem = Fake::default();
    // A C++ string: length, capacity, refcount, then the characters (capacity + 1).
    let s = 0x40000;
    mem.put(s, 5);
    mem.put(s + 8, 15);
    mem.put(0x1000, s + 24);
    // new[] with a count: 4 elements of 6 bytes after it.
    let arr = 0x40100;
    mem.put(arr, 4);
    mem.put(0x1008, arr + 8);
    // Not a count: 5 does not divide 24.
    let odd = 0x40200;
    mem.put(odd, 5);
    mem.put(0x1010, odd + 8);
    let classes = classify(&[(s, 24 + 16), (arr, 32), (odd, 32)], &mut mem, &[], false);
    assert_eq!(classes, vec![Class::Reachable, Class::Reachable, Class::Possible]);
}

#[test]
fn many_blocks_are_read_in_batches_and_a_long_chain_is_followed() {
    let mut mem = Fake::default();
    let n = 5000u64;
    let at = |i: u64| 0x100_0000 + i * 64;
    mem.put(0x1000, at(0));
    for i in 0..n - 1 {
        mem.put(at(i) + 8, at(i + 1));
    }
    let blocks: Vec<(u64, u64)> = (0..n).map(|i| (at(i), 48)).collect();
    let classes = classify(&blocks, &mut mem, &[], true);
    assert!(classes.iter().all(|&c| c == Class::Reachable));
    assert!(mem.reads < 50, "a chain through neighbours is read ahead: {} reads", mem.reads);
}

#[test]
fn a_descriptor_inside_a_lost_block_only_is_owned_by_it() {
    let mut mem = Fake::default();
    let (lost, live) = (0x50000, 0x50100);
    mem.put(lost + 8, 7 << 32 | 0xffff_ffff);
    mem.put(live, 9);
    mem.put(lost + 16, 9);
    mem.put(0x1000, live);
    let index = BlockIndex::new(vec![Block { addr: lost, size: 32 }, Block { addr: live, size: 32 }]);
    let mut fds = FdWatch::new(&[7, 9]);
    let mut m = Marker::new(&index, &mut mem, true, Some(&mut fds));
    m.scan_roots(&[ROOT]);
    assert_eq!(m.finish().0, vec![Class::Definite, Class::Reachable]);
    assert_eq!(fds.owned_by_lost(), vec![7]);
}

#[test]
fn a_chain_in_random_order_is_followed_at_about_a_read_a_block() {
    let mut mem = Fake::default();
    let n = 3000u64;
    let at = |i: u64| 0x100_0000 + i * 64;
    // Each step jumps ~1,237 blocks along (coprime with n): no neighbour is next.
    let order: Vec<u64> = (0..n).map(|i| i * 1237 % n).collect();
    mem.put(0x1000, at(order[0]));
    for w in order.windows(2) {
        mem.put(at(w[0]), at(w[1]));
    }
    let blocks: Vec<(u64, u64)> = (0..n).map(|i| (at(i), 48)).collect();
    let classes = classify(&blocks, &mut mem, &[], true);
    assert!(classes.iter().all(|&c| c == Class::Reachable));
    assert!(mem.reads <= n as usize + 10, "{} reads", mem.reads);
}

#[test]
fn root_gaps_between_known_blocks_are_read_together_and_the_blocks_are_not_roots() {
    let mut mem = Fake::default();
    // Roots between blocks: at 0x1000, 0x1030, 0x1060 (blocks of 0x20 between, at 0x1010, 0x1040).
    let (a, b, c) = (0x9000, 0x9100, 0x9200);
    mem.put(0x1000, a);
    mem.put(0x1068, b);
    // Inside a known block: not a root, so c is lost (indirectly: the block is).
    mem.put(0x1010, c);
    let index =
        BlockIndex::new([(0x1010, 0x20), (0x1040, 0x20), (a, 16), (b, 16), (c, 16)].map(|(addr, size)| Block { addr, size }).to_vec());
    let mut m = Marker::new(&index, &mut mem, false, None);
    m.scan_roots(&[(0x1000, 0x1010), (0x1030, 0x1040), (0x1060, 0x1070)]);
    let (classes, work) = m.finish();
    assert_eq!(classes, vec![Class::Definite, Class::Definite, Class::Reachable, Class::Reachable, Class::Indirect]);
    assert_eq!(work.root_bytes, 0x30, "only the roots are scanned");
    assert!(mem.reads <= 5, "one read for the three roots, the rest for the blocks: {}", mem.reads);
}

#[test]
fn an_explanation_follows_the_pointers_back_to_the_root_and_its_region() {
    use super::roots::{parse_maps, Thread};
    use super::scan::explain;
    let mut mem = Fake::default();
    // A global at 0x1010 holds a; a holds b at +8; c is lost; d is in a register.
    let [a, b, c, d] = [0x10000u64, 0x10100, 0x10200, 0x10300];
    mem.put(0x1010, a);
    mem.put(a + 8, b);
    let index = BlockIndex::new([a, b, c, d].iter().map(|&addr| Block { addr, size: 64 }).collect());
    let mut m = Marker::new(&index, &mut mem, false, None);
    m.keep_reasons();
    m.scan_values(&[d]);
    m.scan_roots(&[ROOT]);
    let (classes, _, reasons) = m.finish_with_reasons();
    let maps = parse_maps("1000-2000 rw-p 00001000 fe:00 42 /usr/bin/prog\n7000-8000 rw-p 00000000 00:00 0 [stack]\n");
    let threads = [Thread { tid: 7, sp: 0x7800, ..Thread::default() }];
    let lines = explain(&index, &classes, &reasons.unwrap(), &maps, &threads, 1);
    assert_eq!(
        lines,
        [
            "0x10000 (64 B, reachable) <- 0x1010 in 1000-2000 rw-p fe:00 42 /usr/bin/prog",
            "0x10100 (64 B, reachable) <- 0x10008 (+8) in 0x10000 (64 B, reachable) <- 0x1010 in 1000-2000 rw-p fe:00 42 /usr/bin/prog",
            "0x10300 (64 B, reachable) <- a register",
        ]
    );
    assert_eq!(region_line(&maps, &threads, 0x7900), "7000-8000 rw-p 00:00 0 [stack] (stack of 7, sp 0x7800)");
    assert!(explain(&index, &classes, &reasons_of(&index), &maps, &threads, 65).is_empty(), "smaller than asked");
}

fn region_line(maps: &[super::roots::Region], threads: &[super::roots::Thread], addr: u64) -> String {
    super::scan::region_of(maps, threads, addr)
}

fn reasons_of(index: &BlockIndex) -> Vec<u64> {
    vec![u64::MAX; index.len()]
}
