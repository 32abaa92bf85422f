//! The stack walker's cost: the same deep-stack malloc/free loop built with
//! and without frame pointers, traced with the kernel's frame-pointer walk
//! (`--unwind fp`, which only frame-pointer code allows) and with the CFI
//! walker (the default, which needs none), at depth 0 and 24 for the cost of
//! one frame.

use super::measure::Config;
use super::targets::{value, Check};
use super::BenchResult;

/// The deep stack: 24 frames of `descend` above the loop (about 28 in all).
const DEPTH: u32 = 24;

fn workload(fp: bool, depth: u32) -> String {
    format!("malloc/free 1T depth {depth}, {}", if fp { "frame pointers" } else { "no frame pointers" })
}

/// (workload, configuration, command) of every run.
pub fn runs(exe: &dyn Fn(&str) -> String, pairs: u64) -> Vec<(String, Config, Vec<String>)> {
    let mut out = Vec::new();
    for (fp, binary) in [(true, "malloc_loop"), (false, "malloc_loop_nofp")] {
        for depth in [0, DEPTH] {
            let cmd = vec![exe(binary), "1".into(), depth.to_string(), pairs.to_string()];
            let configs: &[Config] =
                if fp { &[Config::Untraced, Config::UnwindFp, Config::Exact] } else { &[Config::Untraced, Config::Exact] };
            out.extend(configs.iter().map(|&c| (workload(fp, depth), c, cmd.clone())));
        }
    }
    out
}

pub fn evaluate(r: &[BenchResult]) -> Vec<Check> {
    let over = |fp: bool, depth: u32, c: Config| {
        let w = workload(fp, depth);
        Some(value(r, &w, c)? - value(r, &w, Config::Untraced)?)
    };
    let mut checks = Vec::new();
    if let (Some(cfi), Some(fp)) = (over(false, DEPTH, Config::Exact), over(true, DEPTH, Config::UnwindFp)) {
        checks.push(Check {
            target: "deep stack without frame pointers (CFI walk) ≤ 1.5 × frame-pointer exact mode, per malloc/free pair",
            figure: format!("{cfi:.0} ns vs {fp:.0} ns = {:.2}×", cfi / fp),
            pass: Some(cfi <= 1.5 * fp),
        });
    }
    let per_frame = |fp: bool, c: Config| Some((over(fp, DEPTH, c)? - over(fp, 0, c)?) / f64::from(DEPTH));
    if let (Some(cfi), Some(fp)) = (per_frame(false, Config::Exact), per_frame(true, Config::UnwindFp)) {
        checks.push(Check {
            target: "unwinder cost per frame (informational)",
            figure: format!("CFI walk {cfi:.0} ns/frame, kernel frame-pointer walk {fp:.0} ns/frame"),
            pass: None,
        });
    }
    checks
}
