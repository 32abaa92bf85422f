use std::io::Read;

use prost::Message;
use tracer_common::FdKind;

use super::*;
use crate::report::model::{Site, Target};
use crate::report::profile::{ModuleMapping, Profile, ProfileStack};

fn frame(function: &str, line: u32, address: u64, inlined: bool) -> StackFrame {
    StackFrame {
        function: Some(function.into()),
        file: Some("/src/app.c".into()),
        line: Some(line),
        module: "/bin/app".into(),
        address,
        module_offset: address - 0x1000,
        inlined,
        ..StackFrame::default()
    }
}

fn report() -> Report {
    let mut malloc = frame("malloc", 0, 0x7100, false);
    malloc.module = "/lib/libc.so.6".into();
    let stack = vec![malloc, frame("helper", 7, 0x1200, true), frame("make", 12, 0x1200, false)];
    let site = Site { stacks: 2, stack: stack.clone(), ..Site::named(ResourceKind::Heap, "make", 3, 96) };
    let mut r = Report::of_sites(Target::default(), vec![site], 0);
    let socket = vec![frame("socket", 0, 0x1300, false), frame("make", 14, 0x1210, false)];
    r.profile = Some(std::sync::Arc::new(Profile {
        stacks: vec![
            ProfileStack { kind: ResourceKind::Heap, count: 2, bytes: 64, frames: stack.clone() },
            ProfileStack { kind: ResourceKind::Heap, count: 1, bytes: 32, frames: stack[1..].to_vec() },
            ProfileStack { kind: ResourceKind::Fd(FdKind::Socket), count: 4, bytes: 0, frames: socket },
        ],
        mappings: vec![ModuleMapping { path: "/bin/app".into(), start: 0x1000, end: 0x2000, offset: 0, build_id: Some("abcd".into()) }],
    }));
    r
}

#[test]
fn samples_per_stack_with_inlined_lines_and_the_build_id() {
    let r = report();
    let bytes = encode(&r).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut raw).unwrap();
    let p = pb::Profile::decode(&raw[..]).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<&str> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
    assert_eq!(&types[..3], ["inuse_space", "inuse_objects", "socket_handles"]);
    assert_eq!(s(p.default_sample_type), "inuse_space");
    assert_eq!(p.sample.len(), 3, "one sample per stack");
    assert_eq!(p.sample.iter().map(|x| x.value[0]).sum::<i64>(), 96);
    assert_eq!(p.sample[2].value[2], 4);
    // helper inlined into make: one location with two lines, innermost first.
    let loc = &p.location[p.sample[0].location_id[1] as usize - 1];
    let names: Vec<&str> = loc.line.iter().map(|l| s(p.function[l.function_id as usize - 1].name)).collect();
    assert_eq!(names, ["helper", "make"]);
    assert_eq!(p.sample[0].location_id[1], p.sample[1].location_id[0], "locations are shared");
    assert_eq!(p.mapping.len(), 2);
    assert_eq!(s(p.mapping[0].filename), "/bin/app", "the program's mapping first");
    assert_eq!(s(p.mapping[0].build_id), "abcd");
    assert!(p.location.iter().skip(1).all(|l| l.mapping_id == 1), "{:?}", p.location);
    assert_eq!(p.mapping[1].memory_start, 0x70ff, "libc's mapping is made up around its addresses");
}

#[test]
fn without_stacks_the_sites_stand_for_them() {
    let mut r = report();
    r.profile = None;
    let p = build(&r);
    assert_eq!(p.sample.len(), 1);
    assert_eq!(p.sample[0].value[..2], [96, 3]);
    assert_eq!(p.mapping[0].memory_start, 0x11ff, "a mapping made up around the addresses");
    assert_eq!(p.mapping[0].memory_limit, 0x1201);
}
