//! Starting and stopping: what tracing adds to a program that does little
//! but start, fork or exit (the lifecycle issue's timing goals).

use std::time::Duration;

use anyhow::Result;

use super::measure::{self, Config, Measurement, Tools};

/// One row: workload, configuration, unit, and the figure.
pub type Row = (String, Config, &'static str, Result<(Option<f64>, Measurement)>);

pub const TRUE_ROW: &str = "run /bin/true";
pub const FORKS_ROW: &str = "fork 300 children, each exits";

/// The median wall time of `n` runs (one start-up is noisy at this scale).
fn median_wall(tools: &Tools, config: Config, cmd: &[String], n: usize) -> Result<(Option<f64>, Measurement)> {
    let mut runs = (0..n).map(|_| measure::run(tools, config, cmd, Duration::from_secs(60))).collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.wall_secs.total_cmp(&b.wall_secs));
    let m = runs.swap_remove(runs.len() / 2);
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
    rows
}
