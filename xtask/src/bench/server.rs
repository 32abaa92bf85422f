//! A real server from Debian's packages, redis, under its own load generator.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::measure::{read_report, Config, Measurement, Tools};

const PORT: &str = "6399";

/// Kills and reaps on every exit path.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server_args() -> Vec<&'static str> {
    vec!["redis-server", "--port", PORT, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
}

fn ping() -> bool {
    Command::new("redis-cli").args(["-p", PORT, "ping"]).output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
}

fn wait_ready(limit: Duration) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ping() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("redis did not answer within {limit:?}")
}

/// Requests per second (SET and GET averaged) under `config`.
pub fn run(tools: &Tools, config: Config, requests: u64) -> Result<(f64, Measurement)> {
    let mut guard = Guard(Vec::new());
    let args = server_args();
    let server = match config {
        Config::Valgrind => Command::new("valgrind").args(["-q", "--leak-check=full", "--track-fds=yes"]).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn(),
        Config::Heaptrack => Command::new("heaptrack").arg("-o").arg(tools.scratch.join("heaptrack-redis")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn(),
        _ => Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).spawn(),
    }
    .context("starting redis-server (cargo xtask bench installs it)")?;
    let pid = server.id();
    guard.0.push(server);
    wait_ready(Duration::from_secs(90))?;
    let report = tools.scratch.join("redis-report.json");
    let _ = std::fs::remove_file(&report);
    // Attaching tracers: to the running server.
    let tracer = match config {
        Config::Exact | Config::Sample64 | Config::Depth8 | Config::ProbeFloor => {
            let mut c = Command::new(&tools.leaktrace);
            c.args(["attach", "--no-tui", "--pid", &pid.to_string(), "--format", "json", "--output"]).arg(&report);
            match config {
                Config::Sample64 => c.args(["--sample", "64"]),
                Config::Depth8 => c.args(["--stack-depth", "8"]),
                Config::ProbeFloor => c.arg("--probe-floor"),
                _ => &mut c,
            };
            Some(c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?)
        }
        Config::Memleak => {
            let script = std::fs::read_to_string(tools.anchors.join("memleak.bt"))?.replace("cpid", &pid.to_string());
            Some(Command::new("bpftrace").args(["-e", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?)
        }
        _ => None,
    };
    if let Some(t) = tracer {
        guard.0.push(t);
        std::thread::sleep(Duration::from_secs(3)); // loading and attaching
    }
    let out = Command::new("redis-benchmark")
        .args(["-p", PORT, "-q", "-t", "set,get", "-c", "20", "-n", &requests.to_string()])
        .output()
        .context("running redis-benchmark")?;
    let rps = parse_rps(&String::from_utf8_lossy(&out.stdout)).context("redis-benchmark printed no requests per second")?;
    let mut m = Measurement::default();
    if config.is_leaktrace() {
        // SIGINT: leaktrace detaches and writes its report.
        let lt = guard.0.pop().expect("the tracer");
        unsafe { libc::kill(lt.id() as i32, libc::SIGINT) };
        let mut lt = lt;
        let _ = lt.wait();
        read_report(&report, &mut m)?;
    }
    Ok((rps, m))
}

/// "SET: 81037.28 requests per second, p50=0.135 msec" lines, averaged.
pub fn parse_rps(out: &str) -> Option<f64> {
    let v: Vec<f64> = out
        .split(['\n', '\r'])
        .filter_map(|l| l.split_once(": ").map(|(_, r)| r))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn averages_set_and_get() {
        let out = "SET: 80000.00 requests per second, p50=0.135 msec\r\nGET: 100000.00 requests per second, p50=0.1 msec\n";
        assert_eq!(super::parse_rps(out), Some(90000.0));
    }
}
