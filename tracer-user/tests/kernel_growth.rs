//! Privileged: the growth verdict over a soak. A program leaking 1 KiB/s
//! for 60 s fails `--ci --max-growth` at half that rate though what it
//! leaks in all is under the absolute limit; a program that fills a 1 MiB
//! cache in 5 s and then holds it passes the same check.

mod common;

use std::path::Path;

use common::*;

const LIMIT_BYTES_PER_MIN: &str = "30720"; // 512 B/s: half the leak's rate

fn soak(exe: &Path, args: &[&str], report: &Path) -> std::process::Output {
    leaktrace()
        .args(["run", "--no-tui", "--ci", "--max-leaked-bytes", "4194304", "--max-growth", LIMIT_BYTES_PER_MIN, "--format", "json"])
        .arg("--output")
        .arg(report)
        .arg("--")
        .arg(exe)
        .args(args)
        .output()
        .unwrap()
}

fn site<'a>(r: &'a serde_json::Value, function: &str) -> &'a serde_json::Value {
    let sites = r["sites"].as_array().unwrap();
    sites.iter().find(|s| s["site"]["function"] == function).unwrap_or_else(|| panic!("no {function} site: {:#}", r["sites"]))
}

#[test]
fn a_steady_leak_fails_max_growth_and_a_full_cache_does_not() {
    require_root();
    let (dir, exe) = build_one("grow");
    let (leak_json, cache_json) = (dir.path().join("leak.json"), dir.path().join("cache.json"));
    // Both soaks at once: a minute each.
    let (e, l) = (exe.clone(), leak_json.clone());
    let leaker = std::thread::spawn(move || soak(&e, &["leak", "1024", "60"], &l));
    let cache = soak(&exe, &["cache", "1048576", "5", "60"], &cache_json);
    let leak = leaker.join().unwrap();

    let r = json_report(&leak, &leak_json);
    assert_eq!(leak.status.code(), Some(1), "the leak fails --max-growth: {}", stderr(&leak));
    assert!(stderr(&leak).contains("--max-growth: [heap] leak_step (grow.c:"), "{}", stderr(&leak));
    let s = site(&r, "leak_step");
    assert!(s["bytes"].as_u64().unwrap() <= 61_440, "under the absolute limit: {s:#}");
    let g = &s["growth"];
    let rate = g["bytes_per_min"].as_f64().unwrap();
    assert!((rate - 61_440.0).abs() < 6_144.0, "1 KiB/s is 61440 bytes/min within 10%: {g:#}");
    assert!(g["low_per_min"].as_f64().unwrap() > 30_720.0, "{g:#}");
    assert!(g["points"].as_u64().unwrap() >= 20 && g["window_secs"].as_f64().unwrap() >= 55.0, "{g:#}");

    let r = json_report(&cache, &cache_json);
    assert_eq!(cache.status.code(), Some(0), "the cache passes: {}", stderr(&cache));
    assert!(!stderr(&cache).contains("--max-growth: ["), "{}", stderr(&cache));
    let s = site(&r, "cache_fill");
    assert_eq!(s["bytes"].as_u64(), Some(1_048_576 / 20 * 20), "20 blocks of a twentieth of 1 MiB: {s:#}");
    let g = &s["growth"];
    assert!(g["bytes_per_min"].as_f64().unwrap().abs() < 1.0, "a cache that holds does not grow: {g:#}");
    assert!(g["low_per_min"].as_f64().unwrap() <= 30_720.0, "{g:#}");
}
