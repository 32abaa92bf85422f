//! Starting and stopping: what tracing adds to a program that does little
//! but start, fork or exit (the lifecycle issue's timing goals).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::measure::{self, Config, Measured, Measurement, Tools};

/// One row: workload, configuration, unit, and the figure.
pub type Row = (String, Config, &'static str, Measured);

pub const TRUE_ROW: &str = "run /bin/true";
pub const FORKS_ROW: &str = "fork 300 children, each exits";
pub const QUIT_ROW: &str = "quit the live view (q)";
pub const PREFORK_ROW: &str = "fork 200 children of a parent holding 100,000 blocks";
pub const PREFORK_RSS_ROW: &str = "a parent holding 100,000 blocks, leaktrace's RSS";

/// The median wall time of `n` runs (one start-up is noisy at this scale).
pub fn median_wall(tools: &Tools, config: Config, cmd: &[String], n: usize) -> Measured {
    let runs = (0..n).map(|_| measure::run(tools, config, cmd, Duration::from_secs(60))).collect::<Result<Vec<_>>>()?;
    let m = measure::median_by(runs, |m| m.wall_secs);
    Ok((Some(m.wall_secs), m))
}

pub fn rows(tools: &Tools, forker: &str, quick: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let truth = vec!["/bin/true".to_owned()];
    let n = if quick { 3 } else { 9 };
    for c in [Config::Untraced, Config::Exact] {
        rows.push((TRUE_ROW.to_owned(), c, "s", median_wall(tools, c, &truth, n)));
    }
    // Per child: fork, probes attached before it runs, its exit stop, probes off.
    let cmd = vec![forker.to_owned(), "300".to_owned()];
    for c in [Config::Untraced, Config::FollowForks] {
        let r = measure::run(tools, c, &cmd, Duration::from_secs(300)).map(|m| (m.ns_per_op.map(|ns| ns / 1e6), m));
        rows.push((FORKS_ROW.to_owned(), c, "ms/child", r));
    }
    // A pre-fork server: every child inherits the parent's blocks (shared, not copied).
    let cmd = vec![forker.to_owned(), "200".to_owned(), "100000".to_owned()];
    for c in [Config::Untraced, Config::FollowForks] {
        let r = measure::run(tools, c, &cmd, Duration::from_secs(600));
        if c == Config::FollowForks {
            let rss = r.as_ref().map(|m| (m.tracer_peak_rss_mib, m.clone())).map_err(|e| anyhow::anyhow!("{e:#}"));
            rows.push((format!("{PREFORK_RSS_ROW} (200 children)"), c, "MiB", rss));
        }
        rows.push((PREFORK_ROW.to_owned(), c, "ms/child", r.map(|m| (m.ns_per_op.map(|ns| ns / 1e6), m))));
    }
    let alone = vec![forker.to_owned(), "0".to_owned(), "100000".to_owned()];
    let r = measure::run(tools, Config::FollowForks, &alone, Duration::from_secs(60)).map(|m| (m.tracer_peak_rss_mib, m));
    rows.push((format!("{PREFORK_RSS_ROW} (no child)"), Config::FollowForks, "MiB", r));
    rows.push((QUIT_ROW.to_owned(), Config::Exact, "s", quit_live_view(tools)));
    rows
}

fn tmux(args: &[&str]) -> Result<String> {
    let out = Command::new("tmux").args(args).output().context("tmux (cargo xtask setup installs it)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `leaktrace run -- sleep 100` in a terminal (tmux): seconds from the `q`
/// key to the shell's next command, the command ended and the report printed.
fn quit_live_view(tools: &Tools) -> Result<(Option<f64>, Measurement)> {
    let name = format!("leaktrace-bench-{}", std::process::id());
    let done = tools.scratch.join("quit.done");
    let _ = std::fs::remove_file(&done);
    let line = format!("{} run -- sleep 100; touch {}", tools.leaktrace.display(), done.display());
    tmux(&["new-session", "-d", "-s", &name, "-x", "160", "-y", "50", &line])?;
    let result = (|| {
        let up = Instant::now();
        while !tmux(&["capture-pane", "-p", "-t", &name])?.contains("q quit") {
            if up.elapsed() > Duration::from_secs(30) {
                bail!("the live view did not open");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pressed = Instant::now();
        tmux(&["send-keys", "-t", &name, "q"])?;
        while !done.exists() {
            if pressed.elapsed() > Duration::from_secs(30) {
                bail!("leaktrace did not return after q");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let secs = pressed.elapsed().as_secs_f64();
        Ok((Some(secs), Measurement { wall_secs: secs, ..Measurement::default() }))
    })();
    let _ = tmux(&["kill-session", "-t", &name]);
    result
}
