//! The soak: leaktrace attached to a busy, churning program for ten minutes
//! (`--quick`: 40 s). Its resident memory is sampled each second; after the
//! first minute (the first quarter in a quick run) it must stay flat within
//! 2 MiB. The figure is the growth after that point, in MiB.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::measure::{Measurement, Tools};

/// leaktrace's resident set in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// (growth after warm-up in MiB, measurement).
pub fn run(tools: &Tools, workload: &Path, secs: u64) -> Result<(f64, Measurement)> {
    let warm_up = if secs >= 600 { 60 } else { secs / 4 };
    let mut target =
        Command::new(workload).arg((secs + 30).to_string()).stdout(Stdio::null()).spawn().context("starting the soak workload")?;
    std::thread::sleep(Duration::from_millis(300));
    let report = tools.scratch.join("soak.json");
    let mut lt = Command::new(&tools.leaktrace)
        .args(["attach", "--no-tui", "--format", "json", "--pid", &target.id().to_string(), "--duration", &secs.to_string(), "--output"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting leaktrace attach")?;
    let start = Instant::now();
    let (mut base, mut peak) = (None, 0u64);
    while lt.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        let Some(rss) = rss_kib(lt.id()) else { continue };
        if start.elapsed().as_secs() >= warm_up {
            base.get_or_insert(rss);
            peak = peak.max(rss);
        }
    }
    let _ = target.kill();
    let _ = target.wait();
    let Some(base) = base else { bail!("leaktrace ended before the warm-up was over") };
    let mut m = Measurement { wall_secs: start.elapsed().as_secs_f64(), ..Measurement::default() };
    super::measure::read_report(&report, &mut m)?;
    Ok((peak.saturating_sub(base) as f64 / 1024.0, m))
}
