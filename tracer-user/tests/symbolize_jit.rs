//! JIT frames named from the runtime's own files (no root): a program with
//! anonymous executable memory stands in for V8; the test writes its
//! /tmp/perf-PID.map and a jitdump file it maps, as V8 would. Names are read
//! at symbolization time (a later entry wins), after the process is gone,
//! and never from a map older than the process or one reached through a link.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use leaktrace::symbolize::{Frame, ProcessMaps, Symbolizer};

struct Host {
    child: Child,
    code: u64,
    perf_map: PathBuf,
}

impl Host {
    fn start(dir: &Path, args: &[&Path]) -> Self {
        let exe = dir.join("jit_host");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jit_host.c");
        let out = Command::new("cc").args(["-O1", "-o"]).arg(&exe).arg(src).output().expect("cc (cargo xtask setup installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut child = Command::new(exe).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let code = u64::from_str_radix(line.trim().trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("address: {line}"));
        let perf_map = PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        Self { child, code, perf_map }
    }

    fn write_map(&self, text: &str, append: bool) {
        let mut f = std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(&self.perf_map).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn stop(mut self) -> PathBuf {
        drop(self.child.stdin.take());
        self.child.wait().unwrap();
        self.perf_map.clone()
    }
}

/// The function, file, line and column of the return address `addr`.
fn named(sym: &mut Symbolizer, maps: &ProcessMaps, addr: u64) -> (Option<String>, Option<String>, Option<u32>, Option<u32>, String) {
    let f: Vec<Frame> = sym.symbolize(maps, addr, true);
    assert_eq!(f.len(), 1);
    let f = &f[0];
    (f.function.as_deref().map(str::to_owned), f.file.as_deref().map(str::to_owned), f.line, f.column, f.module.to_string())
}

fn js(function: &str, file: &str, line: u32, column: u32) -> (Option<String>, Option<String>, Option<u32>, Option<u32>, String) {
    (Some(function.into()), Some(file.into()), Some(line), Some(column), "[jit]".into())
}

#[test]
fn perf_map_names_jit_frames_later_entries_win_and_survive_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]);
    let c = host.code;
    host.write_map(&format!("{:x} 80 JS:~handler /srv/app/server.js:12:5\n{:x} 40 RegExp:^a+$\n", c + 0x100, c + 0x200), false);
    let maps = ProcessMaps::capture(host.child.id()).unwrap();
    let mut sym = Symbolizer::new();
    assert_eq!(named(&mut sym, &maps, c + 0x110), js("handler", "/srv/app/server.js", 12, 5));
    let regexp = named(&mut sym, &maps, c + 0x210);
    assert_eq!((regexp.0.as_deref(), regexp.1, regexp.4.as_str()), (Some("RegExp:^a+$"), None, "[jit]"));
    let outside = named(&mut sym, &maps, c + 0x1000);
    assert_eq!((outside.0, outside.4.as_str()), (None, "[anonymous]"), "code no entry names");

    // Code moved and recompiled at the same address: the later line wins once read again.
    std::thread::sleep(Duration::from_millis(150));
    host.write_map(&format!("{:x} 80 LazyCompile:*onRequest file:///srv/my%20app/s.mjs:30:7\n", c + 0x100), true);
    assert_eq!(named(&mut sym, &maps, c + 0x110), js("onRequest", "/srv/my app/s.mjs", 30, 7));

    // Read after the process is gone (its root kept open): code compiled just before it exited.
    host.write_map(&format!("{:x} 10 JS:~atExit /srv/app/server.js:40:1\n", c + 0x1000), true);
    let map = host.stop();
    assert_eq!(named(&mut sym, &maps, c + 0x1008), js("atExit", "/srv/app/server.js", 40, 1));
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
    std::fs::remove_file(map).unwrap();
}

#[test]
fn a_map_older_than_the_process_or_behind_a_link_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(dir.path(), &[]);
    let c = host.code;
    host.write_map(&format!("{:x} 80 JS:~stale /old/app.js:1:1\n", c + 0x100), false);
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&host.perf_map).unwrap().set_modified(hour_ago).unwrap();
    let maps = ProcessMaps::capture(host.child.id()).unwrap();
    let mut sym = Symbolizer::new();
    assert_eq!(named(&mut sym, &maps, c + 0x110).0, None, "an earlier process with this pid wrote it");
    let warnings = sym.warnings();
    assert!(warnings.iter().any(|w| w.contains("was last written before the process started")), "{warnings:?}");

    let real = dir.path().join("real.map");
    std::fs::write(&real, format!("{:x} 80 JS:~linked /x.js:1:1\n", c + 0x100)).unwrap();
    std::fs::remove_file(&host.perf_map).unwrap();
    std::os::unix::fs::symlink(&real, &host.perf_map).unwrap();
    let maps = ProcessMaps::capture(host.child.id()).unwrap();
    let mut sym = Symbolizer::new();
    assert_eq!(named(&mut sym, &maps, c + 0x110).0, None, "a symbolic link is not followed");
    std::fs::remove_file(host.stop()).unwrap();
}

fn record(id: u32, body: &[u8]) -> Vec<u8> {
    let mut r = id.to_le_bytes().to_vec();
    r.extend(((16 + body.len()) as u32).to_le_bytes());
    r.extend(0u64.to_le_bytes());
    r.extend(body);
    r
}

fn code_load(addr: u64, size: u64, name: &str) -> Vec<u8> {
    let mut b = [7u32.to_le_bytes(), 7u32.to_le_bytes()].concat();
    for v in [addr, addr, size, 1] {
        b.extend(v.to_le_bytes());
    }
    b.extend(name.as_bytes());
    b.push(0);
    b.extend(vec![0xcc; size as usize]);
    record(0, &b)
}

fn debug_info(addr: u64, entries: &[(u64, u32, u32)], file: &str) -> Vec<u8> {
    let mut b = [addr.to_le_bytes(), (entries.len() as u64).to_le_bytes()].concat();
    for (pc, line, column) in entries {
        b.extend(pc.to_le_bytes());
        b.extend(line.to_le_bytes());
        b.extend(column.to_le_bytes());
        b.extend(file.as_bytes());
        b.push(0);
    }
    record(2, &b)
}

#[test]
fn a_mapped_jitdump_names_code_and_lines_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("jit-4242.dump");
    let mut header = Vec::new();
    for v in [0x4A69_5444u32, 1, 40, 62, 0, 4242] {
        header.extend(v.to_le_bytes());
    }
    header.extend([0u8; 16]);
    std::fs::write(&dump, &header).unwrap();
    let host = Host::start(dir.path(), &[&dump]);
    let maps = ProcessMaps::capture(host.child.id()).unwrap();
    let c = host.code;
    // V8 writes its positions 64 bytes past the instructions (see jitdump.rs).
    let mut records = debug_info(c + 0x400, &[(c + 0x440, 20, 3), (c + 0x470, 22, 9)], "/srv/app/hot.js");
    records.extend(code_load(c + 0x400, 0x80, "JS:*hotPath /srv/app/hot.js:19:17"));
    std::fs::OpenOptions::new().append(true).open(&dump).unwrap().write_all(&records).unwrap();
    let mut sym = Symbolizer::new();
    assert_eq!(named(&mut sym, &maps, c + 0x409), js("hotPath", "/srv/app/hot.js", 20, 3));
    assert_eq!(named(&mut sym, &maps, c + 0x431), js("hotPath", "/srv/app/hot.js", 22, 9), "the line of the call inside the function");
    host.stop();
}
