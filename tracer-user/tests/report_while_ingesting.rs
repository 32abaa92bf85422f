//! A report build (what every TUI refresh does) must never hold up the event
//! pipeline: it works on a snapshot, outside the pipeline's lock. Here the
//! build is held open for as long as the test likes — the module it must read
//! is a FIFO nobody writes yet — while the consumer's path keeps ingesting.

use std::sync::mpsc;
use std::time::Duration;

use leaktrace::aggregate::{ResourceKind, StackEnd, StackId, State};
use leaktrace::pipeline::{Ingestor, Shared};
use leaktrace::report::{Attribution, SiteCache};
use leaktrace::symbolize::ProcessMaps;
use tracer_common::decode::{Body, Event, RawStack};
use tracer_common::AllocFn;

#[test]
fn ingestion_goes_on_while_a_report_build_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("module.so");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();

    // One stack whose frame lies in the FIFO "module": resolving it blocks.
    let shared = Shared::new(State::new());
    let pid = u32::MAX - 7; // no such process: the pipeline never re-reads its maps
    {
        let mut st = shared.state();
        st.add_maps(pid, ProcessMaps::parse(&format!("10000-20000 r-xp 00000000 00:00 1 {}\n", fifo.display())).unwrap());
        let img = st.image_of(pid);
        let s = st.agg.stacks.intern(ResourceKind::Heap, img, &[0x10010], StackEnd::COMPLETE);
        st.apply(pid, pid, 1, &Body::Alloc { addr: 0x1, size: 8, func: AllocFn::Malloc }, Some(s));
    }
    let snapshot = shared.state().snapshot(StackId(0), 2);
    let (done_tx, done_rx) = mpsc::channel();
    let builder = std::thread::spawn(move || {
        let mut cache = SiteCache::default();
        cache.update(&snapshot, &Attribution::default());
        done_tx.send(cache.len()).unwrap();
    });

    // The consumer's path: 10,000 allocations with stacks outside every mapping.
    let mut ingestor = Ingestor::default();
    for i in 0..10_000u64 {
        let ev = Event {
            tgid: pid,
            tid: pid,
            ts_ns: 10 + i,
            body: Body::Alloc { addr: 0x100 + i * 16, size: 16, func: AllocFn::Malloc },
            stack: Some(RawStack::complete(vec![0x9000 + i % 7])),
        };
        ingestor.apply(&mut shared.state(), &ev);
    }
    assert_eq!(shared.state().events, 10_000);
    assert_eq!(shared.state().agg.heap_totals(), (8 + 16 * 10_000, 10_001));
    assert!(
        done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "the report build is still blocked on its module while all of that was ingested"
    );

    // Let the build finish: the FIFO yields something that is not ELF.
    std::fs::write(&fifo, b"not an ELF file").unwrap();
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(1));
    builder.join().unwrap();
}
