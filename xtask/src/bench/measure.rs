//! Running one workload under one configuration and reading its figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How the workload is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    Untraced,
    /// leaktrace with empty programs at its own allocator probe points.
    ProbeFloor,
    /// The same at the entry points only: two bare uprobe hits per malloc/free pair.
    EntryFloor,
    /// leaktrace, the heap by the allocator's uprobes.
    Exact,
    /// leaktrace, the heap by the in-process recorder.
    InProcess,
    /// leaktrace exact with `--follow-forks`.
    FollowForks,
    /// leaktrace with the kernel's frame-pointer walk (`--unwind fp`).
    UnwindFp,
    Depth8,
    Sample64,
    /// bpftrace, empty probes at malloc entry and return and free.
    BpftraceFloor,
    /// The same plus one user stack (8 frames) per allocation.
    BpftraceFloorStack,
    /// A bcc-memleak-style bpftrace script.
    Memleak,
    Valgrind,
    Heaptrack,
}

impl Config {
    pub const ALL: [Config; 12] = [
        Self::Untraced,
        Self::ProbeFloor,
        Self::EntryFloor,
        Self::Exact,
        Self::InProcess,
        Self::Depth8,
        Self::Sample64,
        Self::BpftraceFloor,
        Self::BpftraceFloorStack,
        Self::Memleak,
        Self::Valgrind,
        Self::Heaptrack,
    ];

    /// What the malloc/free workloads are measured under.
    pub fn for_malloc(quick: bool) -> &'static [Config] {
        if quick {
            &[Self::Untraced, Self::ProbeFloor, Self::Exact, Self::InProcess, Self::Sample64, Self::Memleak]
        } else {
            &Self::ALL
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Untraced => "untraced",
            Self::ProbeFloor => "probe floor (leaktrace points, empty)",
            Self::EntryFloor => "entry probes only (empty)",
            Self::Exact => "leaktrace exact",
            Self::InProcess => "leaktrace in-process",
            Self::FollowForks => "leaktrace --follow-forks",
            Self::UnwindFp => "leaktrace --unwind fp",
            Self::Depth8 => "leaktrace --stack-depth 8",
            Self::Sample64 => "leaktrace --sample 64",
            Self::BpftraceFloor => "bpftrace empty probes",
            Self::BpftraceFloorStack => "bpftrace empty + ustack(8)",
            Self::Memleak => "bpftrace memleak-style",
            Self::Valgrind => "valgrind memcheck --track-fds",
            Self::Heaptrack => "heaptrack",
        }
    }

    pub fn is_leaktrace(self) -> bool {
        matches!(
            self,
            Self::ProbeFloor
                | Self::EntryFloor
                | Self::Exact
                | Self::InProcess
                | Self::FollowForks
                | Self::UnwindFp
                | Self::Depth8
                | Self::Sample64
        )
    }
}

/// What one run gave.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measurement {
    /// ns per operation as the workload measured it (malloc/free pair, open/close).
    pub ns_per_op: Option<f64>,
    pub wall_secs: f64,
    /// From leaktrace's JSON report.
    pub lost_events: Option<u64>,
    pub events_per_sec: Option<f64>,
    pub tracer_cpu_secs: Option<f64>,
    pub tracer_peak_rss_mib: Option<f64>,
    /// Mean milliseconds to attach, and to detach, one process's allocator probes.
    pub probe_attach_ms: Option<f64>,
    pub probe_detach_ms: Option<f64>,
}

pub struct Tools {
    pub leaktrace: PathBuf,
    pub anchors: PathBuf,
    pub scratch: PathBuf,
}

/// The uprobe configurations say so: `run` records the heap in-process by default.
const UPROBE: [&str; 2] = ["--heap-probes", "uprobe"];

/// The command line for `cmd` under `config`, and where leaktrace writes its report.
pub fn command(tools: &Tools, config: Config, cmd: &[String]) -> (Command, Option<PathBuf>) {
    let report = tools.scratch.join("report.json");
    let lt = |extra: &[&str]| {
        let mut c = Command::new(&tools.leaktrace);
        c.args(["run", "--no-tui", "--format", "json", "--output"]).arg(&report).args(extra).arg("--").args(cmd);
        c
    };
    let bt = |script: &str| {
        let mut c = Command::new("bpftrace");
        c.arg(tools.anchors.join(script)).arg("-c").arg(cmd.join(" "));
        c
    };
    match config {
        Config::Untraced => {
            let mut c = Command::new(&cmd[0]);
            c.args(&cmd[1..]);
            (c, None)
        }
        Config::ProbeFloor => (lt(&["--probe-floor"]), Some(report)),
        Config::EntryFloor => (lt(&["--probe-floor=floor-entries"]), Some(report)),
        Config::Exact => (lt(&[UPROBE[0], UPROBE[1]]), Some(report)),
        Config::InProcess => (lt(&["--heap-probes", "inprocess"]), Some(report)),
        Config::FollowForks => (lt(&[UPROBE[0], UPROBE[1], "--follow-forks"]), Some(report)),
        Config::UnwindFp => (lt(&["--unwind", "fp"]), Some(report)),
        Config::Depth8 => (lt(&[UPROBE[0], UPROBE[1], "--stack-depth", "8"]), Some(report)),
        Config::Sample64 => (lt(&["--sample", "64"]), Some(report)),
        Config::BpftraceFloor => (bt("floor.bt"), None),
        Config::BpftraceFloorStack => (bt("floor_stack.bt"), None),
        Config::Memleak => (bt("memleak.bt"), None),
        Config::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args(["-q", "--leak-check=full", "--track-fds=yes", "--error-exitcode=0"]).args(cmd);
            (c, None)
        }
        Config::Heaptrack => {
            let mut c = Command::new("heaptrack");
            c.arg("-o").arg(tools.scratch.join("heaptrack")).args(cmd);
            (c, None)
        }
    }
}

/// A configuration's figure and the run it comes from.
pub type Measured = Result<(Option<f64>, Measurement)>;

/// The run whose `key` is the median of `runs` (not empty).
pub fn median_by(mut runs: Vec<Measurement>, key: impl Fn(&Measurement) -> f64) -> Measurement {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs.swap_remove(runs.len() / 2)
}

/// Runs to completion (bounded by `limit`) and reads the figures.
pub fn run(tools: &Tools, config: Config, cmd: &[String], limit: Duration) -> Result<Measurement> {
    let (mut c, report) = command(tools, config, cmd);
    if let Some(r) = &report {
        let _ = std::fs::remove_file(r);
    }
    let started = Instant::now();
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().with_context(|| format!("starting {}", config.name()))?;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not finish within {limit:?}", config.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = reader.join().unwrap_or_default();
    let mut m = Measurement { wall_secs: started.elapsed().as_secs_f64(), ns_per_op: parse_ns_per_op(&out), ..Measurement::default() };
    if let Some(r) = report {
        read_report(&r, &mut m)?;
    }
    Ok(m)
}

pub fn parse_ns_per_op(out: &str) -> Option<f64> {
    out.split_whitespace().find_map(|w| w.strip_prefix("ns_per_op=")).and_then(|v| v.parse().ok())
}

/// Lost events, events per second, and leaktrace's own cost from its JSON report.
pub fn read_report(path: &Path, m: &mut Measurement) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("leaktrace wrote no report at {}", path.display()))?;
    let r: serde_json::Value = serde_json::from_str(&text)?;
    m.lost_events = r["lost_events"].as_u64();
    let dur = r["target"]["duration_secs"].as_f64().unwrap_or(0.0);
    if let Some(ev) = r["tracer"]["events"].as_u64() {
        m.events_per_sec = (dur > 0.0).then(|| ev as f64 / dur);
    }
    m.tracer_cpu_secs = r["tracer"]["cpu_secs"].as_f64();
    m.tracer_peak_rss_mib = r["tracer"]["peak_rss_kib"].as_f64().map(|k| k / 1024.0);
    m.probe_attach_ms = r["tracer"]["probe_attach_ms"].as_f64();
    m.probe_detach_ms = r["tracer"]["probe_detach_ms"].as_f64();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workloads_own_figure() {
        assert_eq!(parse_ns_per_op("ns_per_op=18.8 ops=1000000 secs=0.019\n"), Some(18.8));
        assert_eq!(parse_ns_per_op("nothing here"), None);
    }
}
