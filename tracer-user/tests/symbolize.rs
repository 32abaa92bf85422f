//! The symbolizer on real binaries built at test time (no root): the main
//! executable (PIE and not), a shared library, an inlined function, a Rust
//! name, a binary replaced on disk after it was mapped, a stripped binary, a
//! path that is not UTF-8, and symbolization after the process has exited.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use leaktrace::symbolize::{ProcessMaps, Symbolizer};

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(f)
}

fn marker_line(file: &str, marker: &str) -> u32 {
    let text = std::fs::read_to_string(data(file)).unwrap();
    text.lines().position(|l| l.contains(&format!("@line {marker}"))).expect(marker) as u32 + 1
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (cc and rustc must be installed)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn build_c(dir: &Path, pie: bool) -> PathBuf {
    run(Command::new("cc")
        .args(["-g", "-O2", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o"])
        .arg(dir.join("libsym.so"))
        .arg(data("symbols_lib.c")));
    let exe = dir.join(if pie { "sym_pie" } else { "sym_nopie" });
    let mut cc = Command::new("cc");
    cc.args(["-g", "-O2", "-fno-omit-frame-pointer"])
        .arg(if pie { "-pie" } else { "-no-pie" })
        .arg("-o")
        .arg(&exe)
        .arg(data("symbols_main.c"));
    cc.arg("-L").arg(dir).args(["-lsym", "-Wl,-rpath,$ORIGIN"]);
    run(&mut cc);
    exe
}

/// Starts the program, reads the addresses it prints, waits for it to stop.
fn start(exe: &Path) -> (Child, HashMap<String, u64>) {
    start_until(exe, |addrs, name| addrs.len() == 3 || name == "function")
}

fn start_until(exe: &Path, done: impl Fn(&HashMap<String, u64>, &str) -> bool) -> (Child, HashMap<String, u64>) {
    let mut child = Command::new(exe).stdout(Stdio::piped()).spawn().unwrap();
    let mut addrs = HashMap::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines().map_while(Result::ok) {
        let (name, hex) = line.split_once(' ').unwrap();
        addrs.insert(name.to_owned(), u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap());
        if done(&addrs, name) {
            break;
        }
    }
    // Wait until it has stopped itself (state T): its maps are then final.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("T") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} never stopped itself: {stat}", exe.display());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child, addrs)
}

fn finish(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn executable_library_and_inlined_frames_pie_and_not() {
    let dir = tempfile::tempdir().unwrap();
    for pie in [true, false] {
        let exe = build_c(dir.path(), pie);
        let (child, addrs) = start(&exe);
        let maps = ProcessMaps::capture(child.id()).unwrap();
        finish(child); // symbolization needs only the captured maps and the files
        let mut sym = Symbolizer::new();

        let f = sym.symbolize(&maps, addrs["main_call"], true);
        let last = f.last().unwrap();
        assert_eq!(last.function.as_deref(), Some("main"), "pie={pie}: {f:?}");
        assert_eq!(last.line, Some(marker_line("symbols_main.c", "main_call")));
        assert!(last.file.as_deref().unwrap().ends_with("symbols_main.c"));
        assert_eq!(&*last.module, exe.display().to_string());

        let lib = sym.symbolize(&maps, addrs["lib_function"], false);
        assert_eq!(lib.last().unwrap().function.as_deref(), Some("lib_function"), "{lib:?}");
        assert!(lib.last().unwrap().module.ends_with("libsym.so"));

        // Inside outer_function the inlined helper's body yields two frames.
        let start_addr = addrs["outer_function"];
        let inlined = (start_addr..start_addr + 64)
            .map(|a| sym.symbolize(&maps, a, false))
            .find(|fr| fr.len() == 2)
            .unwrap_or_else(|| panic!("no inlined frame in outer_function (pie={pie})"));
        assert_eq!(inlined[0].function.as_deref(), Some("inlined_helper"));
        assert!(inlined[0].inlined && !inlined[1].inlined);
        assert_eq!(inlined[0].line, Some(marker_line("symbols_main.c", "inlined_helper")));
        assert_eq!(inlined[1].function.as_deref(), Some("outer_function"));
    }
}

#[test]
fn rust_names_are_demangled() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("symrust");
    run(Command::new("rustc").args(["-g", "-C", "opt-level=1", "--crate-name", "symrust", "-o"]).arg(&exe).arg(data("symbols_rust.rs")));
    let (child, addrs) = start(&exe);
    let maps = ProcessMaps::capture(child.id()).unwrap();
    finish(child);
    let f = Symbolizer::new().symbolize(&maps, addrs["function"], false);
    let name = f.last().unwrap().function.clone().unwrap();
    assert!(name.starts_with("symrust::module::function"), "{name}");
}

#[test]
fn a_module_replaced_on_disk_after_mapping_is_symbolized_from_what_was_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), true);
    let (child, addrs) = start(&exe);
    let maps = ProcessMaps::capture(child.id()).unwrap();
    // Replace it, as a package upgrade or a rebuild does: another file at the same path.
    std::fs::write(dir.path().join("other.c"), "int other(void) { return 1; }\nint main(void) { return other() + 41; }\n").unwrap();
    let fresh = dir.path().join("fresh");
    run(Command::new("cc").args(["-g", "-o"]).arg(&fresh).arg(dir.path().join("other.c")));
    std::fs::rename(&fresh, &exe).unwrap();
    finish(child);
    let mut sym = Symbolizer::new();
    let f = sym.symbolize(&maps, addrs["main_call"], true);
    let last = f.last().unwrap();
    assert_eq!(last.function.as_deref(), Some("main"), "named from the file that ran: {f:?}");
    assert_eq!(last.line, Some(marker_line("symbols_main.c", "main_call")));
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
}

#[test]
fn a_stripped_binarys_static_function_is_not_named_after_a_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("stripped");
    run(Command::new("cc").args(["-O2", "-g", "-fno-toplevel-reorder", "-rdynamic", "-o"]).arg(&exe).arg(data("stripped.c")));
    run(Command::new("strip").arg("--strip-all").arg(&exe));
    let (child, addrs) = start_until(&exe, |a, _| a.len() == 4);
    let maps = ProcessMaps::capture(child.id()).unwrap();
    finish(child);
    let (before, after, call) = (addrs["exported_before"], addrs["exported_after"], addrs["hidden_call"]);
    assert!(before < call && call < after, "the static function lies between the exported ones: {addrs:x?}");
    let mut sym = Symbolizer::new();
    let f = sym.symbolize(&maps, call, true);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].function, None, "no symbol's extent holds it: {f:?}");
    assert!(f[0].unresolved_label().starts_with("stripped+0x"), "{}", f[0].unresolved_label());
    let named = sym.symbolize(&maps, before + 1, false);
    assert_eq!(named[0].function.as_deref(), Some("exported_before"), "exported symbols still name their own code");
}

#[test]
fn a_path_that_is_not_utf8_keeps_its_symbols() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&odd).unwrap();
    let exe = build_c(&odd, true);
    let (child, addrs) = start(&exe);
    let maps = ProcessMaps::capture(child.id()).unwrap();
    finish(child);
    let mut sym = Symbolizer::new();
    let f = sym.symbolize(&maps, addrs["main_call"], true);
    assert_eq!(f.last().unwrap().function.as_deref(), Some("main"), "{f:?}");
    let lib = sym.symbolize(&maps, addrs["lib_function"], false);
    assert_eq!(lib.last().unwrap().function.as_deref(), Some("lib_function"), "{lib:?}");
}

#[test]
fn many_addresses_symbolize_from_one_parse() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), true);
    let (child, addrs) = start(&exe);
    let maps = ProcessMaps::capture(child.id()).unwrap();
    finish(child);
    let mut sym = Symbolizer::new();
    let base = addrs["main_call"];
    let mut named = 0;
    for i in 0..100_000u64 {
        let f = sym.symbolize(&maps, base + (i % 32), true); // inside main's body
        named += usize::from(f.last().is_some_and(|f| f.function.is_some()));
    }
    assert_eq!(named, 100_000);
    assert_eq!(sym.parsed_modules(), 1, "the executable's symbols and DWARF, read once");
}
