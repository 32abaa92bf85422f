//! Inputs the fuzz targets once failed on (fuzz/regressions/TARGET/), replayed
//! on every `cargo test` through the same public API, with overflow checks on.

use std::path::{Path, PathBuf};

use leaktrace::symbolize::{CfiTable, ProcessMaps, Symbolizer, Unwinder};
use tracer_common::decode::RawStack;
use tracer_common::{ModuleKey, StopReason, MAX_FRAMES};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
}

#[test]
fn symbolizer_regressions_symbolize_and_unwind_without_panicking() {
    let files = inputs("symbolize");
    assert!(!files.is_empty(), "fuzz/regressions/symbolize holds the inputs");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if let Ok(table) = CfiTable::build(&data) {
            for k in 0..16u64 {
                let _ = table.row_at(k * data.len() as u64 / 16);
            }
        }
        let len = (data.len() as u64).max(1);
        let start = 0x10_0000u64;
        let maps = ProcessMaps::parse(&format!("{start:x}-{:x} r-xp 00000000 00:00 0 {}\n", start + len, file.display())).unwrap();
        let addrs: Vec<u64> = (0..16).map(|k| start + k * len / 16).collect();
        let mut symbolizer = Symbolizer::new();
        for &a in &addrs {
            assert!(!symbolizer.symbolize(&maps, a, a.is_multiple_of(2)).is_empty(), "{}", file.display());
        }
        let copy: Vec<u64> = data.chunks_exact(8).take(256).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
        let raw = RawStack {
            frames: addrs[..2].to_vec(),
            exact: 1,
            stop: StopReason::NoTable,
            pc: addrs[1],
            sp: 0x7ff0_0000,
            bp: 0,
            module: ModuleKey::default(),
            copy,
        };
        assert!(Unwinder::new().complete(&maps, &raw, MAX_FRAMES).frames.len() <= MAX_FRAMES);
    }
}
