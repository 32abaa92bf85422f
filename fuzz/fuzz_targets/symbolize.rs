//! ELF, DWARF, symbol tables and CFI of arbitrary bytes, through the public
//! API the report and the pipeline use: a module file mapped at an address,
//! symbolized, its CFI compiled into rows, and a stack completed over it.
//! Never a panic; bounded memory (libFuzzer's -malloc_limit_mb fails any
//! larger allocation).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use leaktrace::symbolize::{CfiTable, ProcessMaps, Symbolizer, Unwinder};
use libfuzzer_sys::fuzz_target;
use tracer_common::decode::RawStack;
use tracer_common::{ModuleKey, StopReason, MAX_FRAMES};

const START: u64 = 0x10_0000;

/// A directory of this process for the module files.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("leaktrace-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("a scratch directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = CfiTable::build(data) {
        for k in 0..16u64 {
            let _ = table.row_at(k * data.len() as u64 / 16);
        }
    }
    // The C runtime's modules are named differently from others: both paths.
    let name = if data.len().is_multiple_of(2) { "libc.so.6" } else { "module.so" };
    let path = dir().join(name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let len = (data.len() as u64).max(1);
    let Ok(maps) = ProcessMaps::parse(&format!("{START:x}-{:x} r-xp 00000000 00:00 0 {}\n", START + len, path.display())) else {
        return;
    };
    let addrs: Vec<u64> = (0..16).map(|k| START + k * len / 16).collect();
    let mut symbolizer = Symbolizer::new();
    for &a in &addrs {
        for frame in symbolizer.symbolize(&maps, a, a.is_multiple_of(2)) {
            assert_eq!(frame.address, a);
        }
    }
    let copy: Vec<u64> = data.chunks_exact(8).take(256).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
    let raw = RawStack {
        frames: addrs[..2].to_vec(),
        exact: 1,
        stop: StopReason::NoTable,
        pc: addrs[1],
        sp: 0x7ff0_0000,
        bp: copy.first().copied().unwrap_or(0),
        module: ModuleKey::default(),
        copy,
    };
    let done = Unwinder::new().complete(&maps, &raw, MAX_FRAMES);
    assert!(done.frames.len() <= MAX_FRAMES && done.frames.starts_with(&raw.frames));
});
