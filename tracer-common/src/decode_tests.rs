//! Decoding tests: every kind, bounds, layout.

use super::*;
use crate::record::{EventHeader, SmallEvent, StackCopyEvent, StackEvent, StackStop, STACK_COPY_SIZE};
use std::vec;

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is a plain #[repr(C)] record; every byte of it is initialised by the tests.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()).to_vec() }
}

fn stack_event(kind: EventKind) -> StackEvent {
    let mut hdr = EventHeader::new(kind, (42u64 << 32) | 43, 1000);
    hdr.nframes = 3;
    let stop = StackStop { reason: StopReason::End as u32, exact: 0b100, pc: 0x3000, sp: 0x7ff0, bp: 0x7ff8, ..StackStop::default() };
    let mut ev = StackEvent { hdr, stop, frames: [0; MAX_FRAMES] };
    ev.frames[..3].copy_from_slice(&[0x1000, 0x2000, 0x3000]);
    ev
}

#[test]
fn layout_is_stable() {
    assert_eq!(HEADER_SIZE, 48);
    assert_eq!(SMALL_SIZE, 48);
    assert_eq!(core::mem::size_of::<StackStop>(), 56);
    assert_eq!(STACK_SIZE, 48 + 56 + 8 * MAX_FRAMES);
    assert_eq!(STACK_COPY_SIZE, STACK_SIZE + 8 * STACK_COPY_WORDS);
}

#[test]
fn decodes_alloc_with_stack() {
    let mut ev = stack_event(EventKind::Alloc);
    ev.hdr.a = 0xdead0;
    ev.hdr.b = 10;
    ev.hdr.c = AllocFn::Calloc as u64;
    let got = Event::try_from(bytes_of(&ev).as_slice()).unwrap();
    assert_eq!((got.tgid, got.tid, got.ts_ns), (42, 43, 1000));
    assert_eq!(got.body, Body::Alloc { addr: 0xdead0, size: 10, func: AllocFn::Calloc });
    let st = got.stack.unwrap();
    assert_eq!(st.frames, vec![0x1000, 0x2000, 0x3000]);
    assert_eq!((st.stop, st.exact, st.pc, st.sp, st.bp), (StopReason::End, 0b100, 0x3000, 0x7ff0, 0x7ff8));
    assert!(st.copy.is_empty());
}

#[test]
fn a_stopped_walk_carries_its_copy_and_module() {
    let mut inner = stack_event(EventKind::Alloc);
    inner.hdr.c = AllocFn::Malloc as u64;
    inner.stop.reason = StopReason::NoTable as u32;
    inner.stop.module = ModuleKey { dev: 0x80001, ino: 77 };
    inner.stop.copy_words = 2;
    let mut ev = StackCopyEvent { ev: inner, copy: [0; STACK_COPY_WORDS] };
    ev.copy[..2].copy_from_slice(&[7, 8]);
    let bytes = bytes_of(&ev);
    let st = Event::try_from(bytes.as_slice()).unwrap().stack.unwrap();
    assert_eq!(st.stop, StopReason::NoTable);
    assert_eq!(st.module, ModuleKey { dev: 0x80001, ino: 77 });
    assert_eq!(st.copy, vec![7, 8]);
    // A record that claims a copy it does not carry is short, not misread.
    let small = bytes_of(&inner);
    assert!(matches!(Event::try_from(small.as_slice()), Err(DecodeError::Short { .. })));
}

#[test]
fn a_record_without_a_copy_may_end_after_its_last_frame() {
    let mut ev = stack_event(EventKind::Alloc);
    ev.hdr.c = AllocFn::Malloc as u64;
    let mut bytes = bytes_of(&ev);
    // Three frames taken: the record as the in-process recorder writes it.
    bytes.truncate(STACK_SIZE - 8 * (MAX_FRAMES - 3));
    let got = Event::try_from(bytes.as_slice()).unwrap();
    assert_eq!(got.stack.unwrap().frames, vec![0x1000, 0x2000, 0x3000]);
    // One byte less cuts a frame: short, not misread.
    bytes.pop();
    assert!(matches!(Event::try_from(bytes.as_slice()), Err(DecodeError::Short { .. })));
}

#[test]
fn decodes_fd_open_pair_and_cloexec() {
    let mut ev = stack_event(EventKind::FdOpen);
    ev.hdr.a = fdrecord::fd_with_tag(5, 0x11);
    ev.hdr.b = OpenInfo::new(FdKind::Pipe, true).pack();
    ev.hdr.c = fdrecord::fd_with_tag(6, 0x22);
    let got = Event::try_from(bytes_of(&ev).as_slice()).unwrap();
    let meta = FdMeta { file: 0x11, pair_file: 0x22, ..FdMeta::default() };
    assert_eq!(got.body, Body::FdOpen { fd: 5, kind: FdKind::Pipe, cloexec: true, pair: Some(6), meta });
}

#[test]
fn decodes_a_received_socket_its_name_and_a_close_with_its_occupant() {
    let mut ev = stack_event(EventKind::FdOpen);
    ev.hdr.a = 9;
    ev.hdr.b = OpenInfo { kind: FdKind::Socket as u32, cloexec: false, received: true, family: 1, socktype: 2 }.pack();
    ev.hdr.c = NO_PAIR;
    let Body::FdOpen { fd: 9, kind: FdKind::Socket, pair: None, meta, .. } = Event::try_from(bytes_of(&ev).as_slice()).unwrap().body else {
        panic!("not a socket at 9")
    };
    assert!(meta.received);
    assert_eq!((meta.family, meta.socktype), (1, 2));
    let mut name = SmallEvent { hdr: EventHeader::new(EventKind::FdName, 1, 1) };
    name.hdr.a = 9;
    [name.hdr.b, name.hdr.c] = crate::fdkind::name_of(b"UNIX-STREAM");
    assert_eq!(Event::try_from(bytes_of(&name).as_slice()).unwrap().body, Body::FdName { fd: 9, name: "UNIX-STREAM".into() });
    let mut dup = stack_event(EventKind::FdDup);
    (dup.hdr.a, dup.hdr.b, dup.hdr.c) = (fdrecord::fd_with_tag(10, 5), 9, 1 | (FdKind::Signalfd as u64) << 8);
    assert_eq!(
        Event::try_from(bytes_of(&dup).as_slice()).unwrap().body,
        Body::FdDup { new: 10, old: 9, cloexec: true, file: 5, kind: FdKind::Signalfd }
    );
    let mut close = SmallEvent { hdr: EventHeader::new(EventKind::FdClose, 1, 1) };
    close.hdr.a = fdrecord::fd_with_tag(9, 77);
    assert_eq!(Event::try_from(bytes_of(&close).as_slice()).unwrap().body, Body::FdClose { fd: 9, occupant: 77 });
}

#[test]
fn rejects_short_unknown_and_malformed_records() {
    let small = SmallEvent { hdr: EventHeader::new(EventKind::Alloc, 1, 1) };
    // An Alloc must carry a stack: a small record of that kind is short.
    assert!(matches!(Event::try_from(bytes_of(&small).as_slice()), Err(DecodeError::Short { .. })));
    assert!(matches!(Event::try_from(&[0u8; 10][..]), Err(DecodeError::Short { .. })));
    let mut bad = small;
    bad.hdr.kind = 999;
    assert_eq!(Event::try_from(bytes_of(&bad).as_slice()), Err(DecodeError::UnknownKind(999)));
    let mut ev = stack_event(EventKind::Alloc);
    ev.hdr.c = AllocFn::Malloc as u64;
    ev.stop.reason = 77;
    assert_eq!(Event::try_from(bytes_of(&ev).as_slice()), Err(DecodeError::BadField("stop reason")));
}

#[test]
fn clamps_frame_and_copy_counts_to_capacity() {
    let mut inner = stack_event(EventKind::Alloc);
    inner.hdr.c = AllocFn::Malloc as u64;
    inner.hdr.nframes = 1000;
    inner.stop.copy_words = 100_000;
    let ev = StackCopyEvent { ev: inner, copy: [0; STACK_COPY_WORDS] };
    let st = Event::try_from(bytes_of(&ev).as_slice()).unwrap().stack.unwrap();
    assert_eq!(st.frames.len(), MAX_FRAMES);
    assert_eq!(st.copy.len(), STACK_COPY_WORDS);
}

#[test]
fn free_is_small() {
    let mut ev = SmallEvent { hdr: EventHeader::new(EventKind::Free, 1 << 32 | 1, 5) };
    ev.hdr.a = 0x10;
    let got = Event::try_from(bytes_of(&ev).as_slice()).unwrap();
    assert_eq!(got.body, Body::Free { addr: 0x10 });
    assert!(got.stack.is_none());
}

#[test]
fn decodes_libuv_records_by_their_function() {
    let mut init = stack_event(EventKind::UvInit);
    (init.hdr.a, init.hdr.b, init.hdr.c) = (0x5000, crate::uv::NO_FD, UvFn::TimerInit as u64);
    let got = Event::try_from(bytes_of(&init).as_slice()).unwrap();
    assert_eq!(got.body, Body::UvInit { handle: 0x5000, func: UvFn::TimerInit, fd: None });
    assert_eq!(got.stack.unwrap().frames, vec![0x1000, 0x2000, 0x3000]);
    init.hdr.b = 7;
    assert!(matches!(Event::try_from(bytes_of(&init).as_slice()).unwrap().body, Body::UvInit { fd: Some(7), .. }));
    let mut hdr = EventHeader::new(EventKind::UvCall, 1, 2);
    (hdr.a, hdr.b, hdr.c) = (0x5000, 0x6000, UvFn::Accept as u64);
    let got = Event::try_from(bytes_of(&SmallEvent { hdr }).as_slice()).unwrap();
    assert_eq!(got.body, Body::UvCall { func: UvFn::Accept, call: UvCall::Accept { server: 0x5000, client: 0x6000 } });
    hdr.c = UvFn::TcpInit as u64;
    assert_eq!(
        Event::try_from(bytes_of(&SmallEvent { hdr }).as_slice()),
        Err(DecodeError::BadField("uv call")),
        "an init is never a small record"
    );
    hdr.c = 0;
    assert_eq!(Event::try_from(bytes_of(&SmallEvent { hdr }).as_slice()), Err(DecodeError::BadField("uv fn")));
}
