//! /proc/PID/maps text (bytes, as the kernel writes it): parsed or refused,
//! never a panic; lookups stay in range.
#![no_main]

use leaktrace::symbolize::ProcessMaps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(maps) = ProcessMaps::parse_bytes(data) else { return };
    let words = data.chunks_exact(8).take(8).map(|w| u64::from_le_bytes(w.try_into().unwrap()));
    for addr in [0, 1, 0x1000, 0x7fff_ffff_ffff, u64::MAX].into_iter().chain(words) {
        if let Some(m) = maps.find(addr) {
            assert!(m.start <= addr && addr < m.end);
        }
    }
    let mut merged = maps.clone();
    merged.merge(maps);
});
