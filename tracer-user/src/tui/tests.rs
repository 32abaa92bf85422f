//! Rendering tests on ratatui's TestBackend: no terminal, no root.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use tracer_common::FdKind;

use super::*;
use crate::aggregate::ResourceKind;
use crate::report::model::{Location, Site, StackFrame, Target, TargetState};

fn site(kind: ResourceKind, function: &str, file: &str, line: u32, count: u64, bytes: u64) -> Site {
    Site {
        kind,
        count,
        bytes,
        allocations: count + 2,
        releases: 2,
        oldest_age_secs: count as f64,
        site: Location {
            function: Some(function.into()),
            file: Some(file.into()),
            line: Some(line),
            column: None,
            line_is_function_start: false,
            module: "/bin/net-driver".into(),
            label: function.into(),
        },
        stacks: 1,
        stack: vec![
            StackFrame {
                function: Some("__GI_socket".into()),
                module: "/lib/libc.so.6".into(),
                address: 0x7f00,
                module_offset: 0x7f00,
                ..StackFrame::default()
            },
            StackFrame {
                function: Some(function.into()),
                file: Some(file.into()),
                line: Some(line),
                module: "/bin/net-driver".into(),
                address: 0x1234,
                module_offset: 0x1234,
                ..StackFrame::default()
            },
            StackFrame {
                function: Some("main".into()),
                file: Some("net_driver.c".into()),
                line: Some(188),
                module: "/bin/net-driver".into(),
                address: 0x1300,
                module_offset: 0x1300,
                ..StackFrame::default()
            },
        ],
        truncated: false,
        stack_end: None,
        growth: None,
        detail: Vec::new(),
        received: false,
        reachability: None,
        site_from: None,
        created_stack: Vec::new(),
        server_stack: Vec::new(),
    }
}

fn report(sites: Vec<Site>, lost: u64) -> Report {
    Report::of_sites(
        Target {
            pid: 4242,
            command: "net-driver".into(),
            state: TargetState::Running,
            exit: None,
            duration_secs: 3.0,
            allocator: None,
            heap_probes: None,
        },
        sites,
        lost,
    )
}

fn two_sites() -> Vec<Site> {
    vec![
        site(ResourceKind::Heap, "js_socket_connect", "net_socket.c", 15, 3, 30),
        site(ResourceKind::Fd(FdKind::Timerfd), "net_timer_init", "net_loop.c", 73, 15, 0),
    ]
}

fn refresh(app: &mut App, r: Report, t: f64) {
    app.update(Action::Refresh { report: Box::new(r), events: (t * 1000.0) as u64, elapsed: t, ended: false });
}

fn draw(app: &App) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(140, 40)).unwrap();
    term.draw(|f| render(app, f)).unwrap();
    term.backend().buffer().clone()
}

fn lines(b: &Buffer) -> Vec<String> {
    (0..b.area.height).map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol()).collect::<String>()).collect()
}

fn row_of(lines: &[String], needle: &str) -> usize {
    lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("`{needle}` not on screen:\n{}", lines.join("\n")))
}

#[test]
fn the_table_sorts_by_bytes_then_by_count() {
    let mut app = App::new();
    refresh(&mut app, report(two_sites(), 0), 1.0);
    let l = lines(&draw(&app));
    assert!(row_of(&l, "js_socket_connect (net_socket.c:15)") < row_of(&l, "net_timer_init (net_loop.c:73)"), "by bytes");
    assert!(l.iter().any(|x| x.contains("sort: bytes")));
    app.update(Action::CycleSort);
    let l = lines(&draw(&app));
    assert!(row_of(&l, "net_timer_init (net_loop.c:73)") < row_of(&l, "js_socket_connect (net_socket.c:15)"), "by count");
    assert!(l.iter().any(|x| x.contains("count▼")));
    let timer_row = &l[row_of(&l, "net_timer_init (net_loop.c:73)")];
    assert!(timer_row.contains("timerfd") && timer_row.contains(" 15 ") && timer_row.contains("17/2"), "{timer_row}");
}

#[test]
fn the_detail_pane_shows_the_classes_after_a_scan() {
    use crate::report::model::{Amount, Reachability};
    let mut s = site(ResourceKind::Heap, "js_socket_connect", "net_socket.c", 15, 3, 30);
    s.reachability = Some(Reachability {
        definite: Amount { count: 1, bytes: 10 },
        reachable: Amount { count: 2, bytes: 20 },
        ..Reachability::default()
    });
    let mut app = App::new();
    refresh(&mut app, report(vec![s], 0), 1.0);
    let l = lines(&draw(&app));
    assert!(l.iter().any(|x| x.contains("definitely lost 10 bytes in 1; still reachable 20 bytes in 2")), "{}", l.join("\n"));
}

#[test]
fn the_detail_pane_shows_the_stack_and_the_source_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("net_socket.c");
    std::fs::write(&src, "int a;\nint b;\n    char *host_copy = strdup(host);\nint d;\n").unwrap();
    let mut app = App::with_sources(SourceReader::for_process(std::process::id()));
    refresh(&mut app, report(vec![site(ResourceKind::Heap, "js_socket_connect", src.to_str().unwrap(), 3, 3, 30)], 0), 1.0);
    let l = lines(&draw(&app));
    assert!(l.iter().any(|x| x.contains("3 │     char *host_copy = strdup(host);")), "{}", l.join("\n"));
    assert!(l.iter().any(|x| x.contains("2 │ int b;")));
    assert!(l.iter().any(|x| x.contains("__GI_socket  libc.so.6")));
    assert!(l.iter().any(|x| x.contains("main  net_driver.c:188")));
}

#[test]
fn the_baseline_shows_only_growth_since_the_mark() {
    let mut app = App::new();
    refresh(&mut app, report(two_sites(), 0), 1.0);
    app.update(Action::MarkBaseline);
    let mut grown = two_sites();
    grown[1].count = 19; // 4 more timerfds; the heap site did not grow
    refresh(&mut app, report(grown, 0), 3.0);
    let l = lines(&draw(&app));
    assert!(l.iter().any(|x| x.contains("baseline: +2s ago")), "{}", l.join("\n"));
    let r = &l[row_of(&l, "net_timer_init")];
    assert!(r.contains(" 4 ") && r.contains("+4"), "delta and growth: {r}");
    assert!(!l.iter().any(|x| x.contains("js_socket_connect (net_socket.c:15)")), "a site that did not grow is hidden");
    app.update(Action::ClearBaseline);
    assert_eq!(app.rows().len(), 2);
}

#[test]
fn the_status_bar_shows_lost_events_in_red() {
    let mut app = App::new();
    refresh(&mut app, report(two_sites(), 0), 1.0);
    let b = draw(&app);
    let l = lines(&b);
    let y = row_of(&l, "lost 0");
    let x = l[y].find("lost 0").unwrap() as u16;
    assert_ne!(b[(x, y as u16)].bg, Color::Red);
    assert!(l[y].contains("pid 4242") && l[y].contains("net-driver") && l[y].contains("running"));

    refresh(&mut app, report(two_sites(), 12), 2.0);
    let b = draw(&app);
    let l = lines(&b);
    let y = row_of(&l, "lost 12");
    let x = l[y].find("lost 12").unwrap() as u16;
    assert_eq!(b[(x, y as u16)].bg, Color::Red, "{}", l[y]);
    assert!(l[y].contains("1000 ev/s"), "{}", l[y]);
}

#[test]
fn filters_help_pause_and_keys() {
    let mut app = App::new();
    refresh(&mut app, report(two_sites(), 0), 1.0);
    app.update(Action::CycleKind); // heap
    assert_eq!(app.rows().len(), 1);
    app.update(Action::CycleKind); // timerfd: the kinds the report has, not all seventeen
    assert_eq!(app.kind, Some(ResourceKind::Fd(FdKind::Timerfd)));
    assert_eq!(app.rows().len(), 1);
    app.update(Action::CycleKind); // all again
    assert_eq!((app.kind, app.rows().len()), (None, 2));
    for a in [Action::StartFilter, Action::FilterChar('t'), Action::FilterChar('i'), Action::FilterChar('m'), Action::FilterApply] {
        app.update(a);
    }
    assert_eq!(app.rows().len(), 1);
    assert_eq!(app.rows()[0].site.kind, ResourceKind::Fd(FdKind::Timerfd));
    app.update(Action::TogglePause);
    let mut grown = two_sites();
    grown[0].count = 99;
    refresh(&mut app, report(grown, 0), 2.0);
    assert_eq!(app.report.as_ref().unwrap().sites[0].count, 3, "paused: the view stays");
    app.update(Action::ToggleHelp);
    assert!(lines(&draw(&app)).iter().any(|x| x.contains("mark a baseline")));
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert!(matches!(action_for(key('q'), false), Some(Action::Quit)));
    assert!(matches!(action_for(key('q'), true), Some(Action::FilterChar('q'))));
    assert!(matches!(action_for(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), true), Some(Action::Quit)));
}

#[test]
fn a_view_without_a_target_shows_no_source_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("net_socket.c");
    std::fs::write(&src, "int a;\nint b;\n    char *host_copy = strdup(host);\n").unwrap();
    let mut app = App::new();
    refresh(&mut app, report(vec![site(ResourceKind::Heap, "js_socket_connect", src.to_str().unwrap(), 3, 3, 30)], 0), 1.0);
    let l = lines(&draw(&app));
    assert!(!l.iter().any(|x| x.contains("strdup(host)")), "{}", l.join("\n"));
}

#[test]
fn export_never_follows_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let mut app = App::new();
    refresh(&mut app, report(two_sites(), 0), 1.0);
    // Links at names the export could generate in the next seconds: the JSON
    // of the first stem, a flame graph of the second.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for secs in now..now + 5 {
        for name in [format!("leaktrace-4242-{secs}.json"), format!("leaktrace-4242-{secs}-1.svg")] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
    }
    let message = super::export(&app, dir.path()).unwrap();
    let written = message.split(' ').next().unwrap();
    assert!(written.ends_with("-2.json"), "a set with a taken name moves on: {message}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the links' target is unchanged");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(written).unwrap()).unwrap();
    assert_eq!(json["target"]["pid"], 4242);
    let base = written.strip_suffix(".json").unwrap();
    for suffix in [".json", ".pb.gz", ".folded", ".svg"] {
        let meta = std::fs::symlink_metadata(format!("{base}{suffix}")).unwrap();
        assert!(meta.file_type().is_file() && meta.len() > 0, "{base}{suffix}");
    }
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-1.") && !n.ends_with("-1.svg"))
        .collect();
    assert!(stray.is_empty(), "files of an abandoned set are removed: {stray:?}");
}
