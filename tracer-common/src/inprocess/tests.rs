use super::*;
use std::vec;
use std::vec::Vec;

/// A page, as a mapping is aligned.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

fn file(ring_bytes: u64) -> (Vec<Page>, Shared) {
    let layout = Layout { ring_bytes, dir_slots: 16, rows_capacity: 64, pages_capacity: 16 };
    let mut mem = vec![Page([0; 4096]); layout.total().div_ceil(4096) as usize];
    let base = mem.as_mut_ptr() as *mut u8;
    // SAFETY: a zeroed buffer of the layout's size, alive while the view is used.
    let shared = unsafe {
        Shared::init(base, &layout, 0, 32, 1);
        Shared::new(base, layout.total()).unwrap()
    };
    (mem, shared)
}

fn write(s: &Shared, value: u64) -> bool {
    let Some(r) = s.reserve(48, 7, 8, |_| false) else { return false };
    // SAFETY: 48 bytes of payload are ours.
    unsafe { (r.payload.add(24) as *mut u64).write(value) };
    r.commit();
    true
}

fn read(s: &Shared) -> Option<u64> {
    loop {
        match s.next() {
            (Next::Record(b), len) => {
                let v = u64::from_ne_bytes(b[24..32].try_into().unwrap());
                s.advance(len);
                return Some(v);
            }
            (Next::Pad, len) => s.advance(len),
            _ => return None,
        }
    }
}

#[test]
fn records_come_out_in_order_across_the_end_of_the_ring() {
    let (_mem, s) = file(1024);
    for v in 0..1000 {
        assert!(write(&s, v));
        if v % 3 == 2 {
            // Fall behind by a record or two, then catch up.
            while let Some(got) = read(&s) {
                assert!(got <= v);
            }
        }
    }
    assert_eq!(s.header().waits.0.load(Ordering::Relaxed), 0);
}

#[test]
fn a_full_ring_makes_the_writer_wait_and_says_so() {
    let (_mem, s) = file(256);
    // 64 bytes a record: four fill the ring.
    for v in 0..4 {
        assert!(write(&s, v));
    }
    assert!(!write(&s, 4), "no room and the wait gave up: not written");
    assert_eq!(s.header().dropped.load(Ordering::Relaxed), 1);
    assert_eq!(read(&s), Some(0));
}

#[test]
fn an_unfinished_record_holds_the_reader_and_names_its_writer() {
    let (_mem, s) = file(1024);
    let r = s.reserve(48, 7, 8, |_| false).unwrap();
    assert!(write(&s, 9));
    assert_eq!(s.next().0, Next::Writing { tgid: 7, tid: 8 });
    r.commit();
    assert!(matches!(s.next().0, Next::Record(_)));
}

#[test]
fn the_directory_finds_what_was_published() {
    let (_mem, s) = file(1024);
    let rows = |first| ModuleRows { first, count: 1, pages_first: 0, pages: 0 };
    for ino in 0..15 {
        assert!(s.publish(ModuleKey { dev: 3, ino }, rows(ino as u32)));
    }
    assert!(!s.publish(ModuleKey { dev: 4, ino: 0 }, rows(0)), "one slot stays empty");
    for ino in 0..15 {
        assert_eq!(s.module(&ModuleKey { dev: 3, ino }), Some(rows(ino as u32)));
    }
    assert_eq!(s.module(&ModuleKey { dev: 4, ino: 0 }), None);
}

#[test]
fn many_writers_lose_nothing() {
    let (_mem, s) = file(4096);
    let s = &s;
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            scope.spawn(move || {
                for i in 0..20_000u64 {
                    let ok = s.reserve(48, 1, t as u32, |_| {
                        std::thread::yield_now();
                        true
                    });
                    let r = ok.unwrap();
                    // SAFETY: our payload.
                    unsafe { (r.payload.add(24) as *mut u64).write(t << 32 | i) };
                    r.commit();
                }
            });
        }
        let mut next = [0u64; 4];
        let mut seen = 0;
        while seen < 80_000 {
            match s.next() {
                (Next::Record(b), len) => {
                    let v = u64::from_ne_bytes(b[24..32].try_into().unwrap());
                    let t = (v >> 32) as usize;
                    assert_eq!(v & 0xffff_ffff, next[t], "each writer's records in its order");
                    next[t] += 1;
                    seen += 1;
                    s.advance(len);
                }
                (Next::Pad, len) => s.advance(len),
                _ => std::hint::spin_loop(),
            }
        }
    });
}
