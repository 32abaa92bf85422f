//! Inputs the fuzz targets once failed on (fuzz/regressions/TARGET/), replayed
//! on every `cargo test` through the same public API, with overflow checks on.

use std::path::{Path, PathBuf};

use leaktrace::symbolize::{ProcessMaps, Symbolizer, UnwindInput, Unwinder};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
}

#[test]
fn symbolizer_regressions_symbolize_and_unwind_without_panicking() {
    let files = inputs("symbolize");
    assert!(!files.is_empty(), "fuzz/regressions/symbolize holds the inputs");
    for file in files {
        let len = std::fs::metadata(&file).unwrap().len().max(1);
        let start = 0x10_0000u64;
        let maps = ProcessMaps::parse(&format!("{start:x}-{:x} r-xp 00000000 00:00 0 {}\n", start + len, file.display())).unwrap();
        let addrs: Vec<u64> = (0..16).map(|k| start + k * len / 16).collect();
        let mut symbolizer = Symbolizer::new();
        for &a in &addrs {
            assert!(!symbolizer.symbolize(&maps, a, a.is_multiple_of(2)).is_empty(), "{}", file.display());
        }
        let input = UnwindInput { kernel_frames: &addrs, sp: 0x7ff0_0000, bp: 0, stack_top: &[] };
        assert!(!Unwinder::new().unwind(&maps, &input).frames.is_empty());
    }
}
