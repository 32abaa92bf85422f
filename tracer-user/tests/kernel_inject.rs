//! Privileged (ptrace): loading the in-process recorder into a running
//! program, redirecting its malloc family through the GOT, reading what it
//! records, and detaching it again; and the injection's refusals, after
//! which the target runs on as before.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use leaktrace::process::{InjectError, Injection};
use object::read::{Object, ObjectSymbol, ObjectSymbolTable};
use tracer_common::decode::{Body, Event};
use tracer_common::inprocess::{Layout, Next, Shared};

/// The recorder leaktrace embeds.
fn recorder_library() -> Vec<u8> {
    leaktrace::inprocess::RECORDER.to_vec()
}

struct Target {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    exe: std::path::PathBuf,
    /// glibc's malloc, as the program itself finds it.
    libc_malloc: u64,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let exe = compile(dir.path(), "inject_target.c", "inject_target", extra);
        let mut child = Command::new(&exe).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let (stdin, mut stdout) = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let libc_malloc = u64::from_str_radix(line.trim().trim_start_matches("malloc 0x"), 16).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // in its loops by now
        Self { child, stdin, stdout, exe, libc_malloc, _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The program's own GOT word for `name`.
    fn got_word(&self, name: &str) -> u64 {
        let data = std::fs::read(&self.exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let symbols = file.dynamic_symbol_table().unwrap();
        let offset = file
            .dynamic_relocations()
            .unwrap()
            .find(|(_, r)| match r.target() {
                object::RelocationTarget::Symbol(i) => symbols.symbol_by_index(i).is_ok_and(|s| s.name() == Ok(name)),
                _ => false,
            })
            .map(|(off, _)| off)
            .unwrap_or_else(|| panic!("no relocation for {name}"));
        let base = regions(self.pid()).into_iter().find(|(_, _, off, path)| *off == 0 && path.ends_with("inject_target")).unwrap().0;
        let mut word = [0u8; 8];
        std::fs::File::open(format!("/proc/{}/mem", self.pid())).unwrap().read_exact_at(&mut word, base + offset).unwrap();
        u64::from_ne_bytes(word)
    }

    /// Writes a line to the program and returns what it says it read.
    fn echo(&mut self, text: &str) -> String {
        self.stdin.write_all(text.as_bytes()).unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    fn finish(mut self) -> Option<i32> {
        drop(self.stdin);
        self.child.wait().unwrap().code()
    }
}

/// (start, end, offset, path) of every mapping of `pid`.
fn regions(pid: u32) -> Vec<(u64, u64, u64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f[0].split_once('-')?;
            let hex = |x: &str| u64::from_str_radix(x, 16).unwrap();
            Some((hex(s), hex(e), hex(f[2]), f.get(5..).map(|p| p.join(" ")).unwrap_or_default()))
        })
        .collect()
}

fn mapping_of(pid: u32, addr: u64) -> String {
    regions(pid).into_iter().find(|(s, e, _, _)| (*s..*e).contains(&addr)).map(|r| r.3).unwrap_or_default()
}

/// Every record in the ring now.
fn drain(shared: &Shared) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match shared.next() {
            (Next::Record(bytes), len) => {
                events.push(Event::try_from(bytes).unwrap());
                shared.advance(len);
            }
            (Next::Pad, len) => shared.advance(len),
            _ => return events,
        }
    }
}

/// Drains the ring for `how_long`.
fn collect(shared: &Shared, how_long: Duration) -> Vec<Event> {
    let until = Instant::now() + how_long;
    let mut events = Vec::new();
    while Instant::now() < until {
        events.extend(drain(shared));
        std::thread::sleep(Duration::from_millis(5));
    }
    events
}

#[test]
fn the_recorder_is_loaded_records_and_detaches_leaving_the_program_as_it_was() {
    require_root();
    let library = recorder_library();
    let mut target = Target::start(&["-pthread"]);
    let pid = target.pid();
    assert_eq!(target.got_word("malloc"), target.libc_malloc, "before: the GOT holds glibc's malloc");

    let mut injection = Injection::load(pid, &library).unwrap();
    let layout = Layout { ring_bytes: 1 << 20, dir_slots: 64, rows_capacity: 1024, pages_capacity: 256 };
    let file = injection.create_shared(layout.total()).unwrap();
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file.file) }.unwrap();
    // SAFETY: a fresh zeroed file of the layout's size, mapped for the test's length.
    let shared = unsafe {
        Shared::init(map.as_mut_ptr(), &layout, 0, 32, std::process::id());
        Shared::new(map.as_mut_ptr(), layout.total()).unwrap()
    };
    injection.attach(&file).unwrap();
    let redirected = injection.redirect().unwrap();
    injection.close_in_target(file.target_fd).unwrap();
    let base = injection.library_base();
    injection.resume();
    assert!(redirected >= 2, "at least the program's malloc and free: {redirected}");
    assert_eq!(shared.header().connected.load(std::sync::atomic::Ordering::Relaxed), 1);

    let ours = target.got_word("malloc");
    assert_ne!(ours, target.libc_malloc);
    assert!(mapping_of(pid, ours).contains("leaktrace-recorder"), "the GOT points into the recorder: {ours:#x}");

    let events = collect(&shared, Duration::from_millis(600));
    let exe_code: Vec<(u64, u64)> = regions(pid).into_iter().filter(|r| r.3.ends_with("inject_target")).map(|r| (r.0, r.1)).collect();
    let allocs: Vec<&Event> = events.iter().filter(|e| matches!(e.body, Body::Alloc { size, .. } if (64..128).contains(&size))).collect();
    let frees = events.iter().filter(|e| matches!(e.body, Body::Free { .. })).count();
    assert!(allocs.len() >= 20 && frees >= 20, "{} allocations, {frees} frees in 600 ms", allocs.len());
    for e in &allocs {
        assert_eq!(e.tgid, pid);
        assert_ne!(e.tid, pid, "the churning thread allocates, not the main one");
        let caller = e.stack.as_ref().unwrap().frames[0];
        assert!(exe_code.iter().any(|(s, end)| (*s..*end).contains(&caller)), "the first frame is the program's: {caller:#x}");
    }

    let restored = Injection::detach_recorder(pid, base).unwrap();
    assert_eq!(restored, redirected, "every slot put back");
    assert_eq!(target.got_word("malloc"), target.libc_malloc, "after: glibc's malloc again");
    std::thread::sleep(Duration::from_millis(50));
    drain(&shared);
    let after = collect(&shared, Duration::from_millis(400));
    assert!(after.is_empty(), "nothing recorded after the detach: {} records", after.len());

    assert_eq!(target.echo("hello\n"), "read 6: hello\n", "the read it was blocked in went on");
    assert_eq!(target.finish(), Some(0));
}

#[test]
fn a_library_that_does_not_load_is_refused_and_the_program_runs_on() {
    require_root();
    let mut target = Target::start(&["-pthread"]);
    let err = Injection::load(target.pid(), b"not an ELF file").err().expect("garbage does not load");
    let text = err.to_string();
    assert!(matches!(err, InjectError::Failed { func: "dlopen", .. }), "{text}");
    assert!(!text.contains('\n') && text.contains("dlopen"), "{text}");
    assert_eq!(target.got_word("malloc"), target.libc_malloc);
    assert_eq!(target.echo("again\n"), "read 6: again\n");
    assert_eq!(target.finish(), Some(0));
}

#[test]
fn a_static_program_is_refused_without_being_stopped() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), "inject_target.c", "inject_static", &["-pthread", "-static"]);
    let mut child = Command::new(&exe).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let err = Injection::load(child.id(), b"").err().expect("no glibc to load into");
    assert!(matches!(err, InjectError::NotGlibc(p) if p == child.id()), "{err}");
    let state = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    assert!(!state.contains(") t "), "not left stopped: {state}");
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
