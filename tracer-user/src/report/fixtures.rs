//! Hand-built reports for the tests of what reads reports (verdict,
//! `--expect`, the formats).

use tracer_common::FdKind;

use super::model::{ExitStatus, Location, Report, Site, StackFrame, Target, TargetState};
use crate::aggregate::ResourceKind;

/// A site in the fixture's net module with a one-frame stack.
pub fn site(kind: ResourceKind, function: &str, file: &str, line: u32, count: u64, bytes: u64) -> Site {
    let module = "/bin/net-driver";
    let location = Location {
        function: Some(function.into()),
        file: Some(format!("/src/fixtures/net/{file}")),
        line: Some(line),
        column: None,
        line_is_function_start: false,
        module: module.into(),
        label: function.into(),
    };
    let frame = StackFrame {
        function: Some(function.into()),
        file: Some(file.into()),
        line: Some(line),
        module: module.into(),
        address: 0x1234,
        module_offset: 0x1234,
        ..StackFrame::default()
    };
    Site {
        count,
        bytes,
        allocations: count + 1,
        releases: 1,
        oldest_age_secs: 1.5,
        stacks: 1,
        stack: vec![frame],
        ..Site::empty(kind, location)
    }
}

/// A report of an exited `net-driver` over `sites`.
pub fn report(sites: Vec<Site>, lost: u64) -> Report {
    let mut r = Report::of_sites(
        Target {
            pid: 42,
            command: "net-driver".into(),
            state: TargetState::Exited,
            exit: Some(ExitStatus { code: Some(0), signal: None }),
            duration_secs: 1.0,
            allocator: None,
            heap_probes: None,
        },
        sites,
        lost,
    );
    r.descriptors.mechanism = "per-syscall exit tracepoints";
    r
}

/// Three sockets and 30 bytes leaked at `js_socket_connect`.
pub fn leaky() -> Report {
    report(
        vec![
            site(ResourceKind::Heap, "js_socket_connect", "net_socket.c", 57, 3, 30),
            site(ResourceKind::Fd(FdKind::Socket), "js_socket_connect", "net_socket.c", 52, 3, 0),
        ],
        0,
    )
}
