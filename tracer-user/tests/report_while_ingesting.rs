//! A report build (what every TUI refresh does) must never hold up the event
//! pipeline: it works on a snapshot, outside the pipeline's lock. Here the
//! consumer's path holds the lock from before the build starts until the
//! build has finished, and ingests meanwhile: a build that took the lock
//! would never finish. The build is long (200,000 distinct stacks in the C
//! library, named from its full debug information).

use std::sync::mpsc;
use std::time::Duration;

use leaktrace::aggregate::{ResourceKind, StackEnd, StackId, State};
use leaktrace::pipeline::{Ingestor, Shared};
use leaktrace::report::attribution::{Attribution, SiteCache};
use leaktrace::symbolize::ProcessMaps;
use tracer_common::decode::{Body, Event, RawStack};
use tracer_common::AllocFn;

const STACKS: u64 = 200_000;

#[test]
fn ingestion_goes_on_while_a_report_build_runs() {
    // libc's executable segment, mapped at 0x100000.
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let shared = Shared::new(State::new());
    let pid = u32::MAX - 7; // no such process: the pipeline never re-reads its maps
    {
        let mut st = shared.state();
        st.add_maps(pid, ProcessMaps::parse(&format!("100000-255000 r-xp 00026000 00:00 1 {libc}\n")).unwrap());
        let img = st.image_of(pid);
        for i in 0..STACKS {
            let s = st.agg.stacks.intern(ResourceKind::Heap, img, &[0x100001 + i * 7], StackEnd::COMPLETE);
            st.apply(pid, pid, 1, &Body::Alloc { addr: 0x1 + i * 16, size: 8, func: AllocFn::Malloc }, Some(s));
        }
    }
    let snapshot = shared.state().snapshot(StackId(0), 2);
    // The consumer's path from here on: the lock is held throughout.
    let mut st = shared.state();
    let (done_tx, done_rx) = mpsc::channel();
    let builder = std::thread::spawn(move || {
        let mut cache = SiteCache::default();
        cache.update(&snapshot, &Attribution::default());
        done_tx.send(cache.len()).unwrap();
    });

    // 10,000 allocations with stacks outside every mapping.
    let mut ingestor = Ingestor::default();
    for i in 0..10_000u64 {
        let ev = Event {
            tgid: pid,
            tid: pid,
            ts_ns: 10 + i,
            body: Body::Alloc { addr: 0x10_0000_0000 + i * 16, size: 16, func: AllocFn::Malloc },
            stack: Some(RawStack::complete(vec![0x9000 + i % 7])),
        };
        ingestor.apply(&mut st, &ev);
    }
    assert_eq!(st.events, 10_000);
    assert_eq!(st.agg.heap_totals(), (8 * STACKS + 16 * 10_000, STACKS + 10_000));
    let built = done_rx.recv_timeout(Duration::from_secs(120));
    assert_eq!(built, Ok(STACKS as usize), "the report build finished while the pipeline held its lock");
    drop(st);
    builder.join().unwrap();
}
