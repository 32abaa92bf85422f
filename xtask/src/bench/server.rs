//! A real server from Debian's packages, redis, under its own load generator.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::measure::{read_report, Config, Measurement, Tools};

const PORT: &str = "6399";

/// Kills and reaps on every exit path. Each child leads its own process
/// group, killed whole: valgrind and heaptrack's wrapper script have the
/// server as a child of their own, which must not outlive the run.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: signalling a process group we created.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// Returns once `stream` has printed a line containing `needle`.
fn wait_for_line(stream: impl Read + Send + 'static, needle: &'static str, limit: Duration, who: &str) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(limit).with_context(|| format!("{who} did not print {needle:?} within {limit:?}"))
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

/// What the server is measured under.
pub fn configs(quick: bool) -> &'static [Config] {
    if quick {
        &[Config::Untraced, Config::Exact, Config::InProcess]
    } else {
        &[
            Config::Untraced,
            Config::ProbeFloor,
            Config::Exact,
            Config::InProcess,
            Config::Sample64,
            Config::Memleak,
            Config::Heaptrack,
            Config::Valgrind,
        ]
    }
}

/// Requests per second (SET and GET averaged) under `config`.
pub fn run(tools: &Tools, config: Config, requests: u64) -> Result<(f64, Measurement)> {
    if ping() {
        bail!("something already answers on port {PORT}: stop it first, or its figures would be measured");
    }
    let mut guard = Guard(Vec::new());
    let report = tools.scratch.join("redis-report.json");
    let _ = std::fs::remove_file(&report);
    let pid = start_server(tools, config, &mut guard)?;
    attach_tracer(tools, config, pid, &report, &mut guard)?;
    let out = Command::new("redis-benchmark")
        .args(["-p", PORT, "-q", "-t", "set,get", "-c", "20", "-n", &requests.to_string()])
        .output()
        .context("running redis-benchmark")?;
    if guard.0.iter_mut().any(|c| c.try_wait().ok().flatten().is_some()) {
        bail!("the server or its tracer ended during the {} run", config.name());
    }
    let rps = parse_rps(&String::from_utf8_lossy(&out.stdout)).context("redis-benchmark printed no requests per second")?;
    let mut m = Measurement::default();
    if config.is_leaktrace() {
        // SIGINT: leaktrace detaches (or, under run, stops the server) and writes its report.
        let lt = guard.0.pop().expect("the tracer");
        unsafe { libc::kill(lt.id() as i32, libc::SIGINT) };
        let mut lt = lt;
        let _ = lt.wait();
        read_report(&report, &mut m)?;
    }
    Ok((rps, m))
}

/// redis-server under `config`'s tool (valgrind, heaptrack) or bare; its pid once it answers.
fn start_server(tools: &Tools, config: Config, guard: &mut Guard) -> Result<u32> {
    let args = server_args();
    let mut server = match config {
        Config::Valgrind => Command::new("valgrind")
            .args(["-q", "--leak-check=full", "--track-fds=yes"])
            .args(&args)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn(),
        // The in-process recorder is preloaded: the server runs under `leaktrace run`.
        Config::InProcess => Command::new(&tools.leaktrace)
            .args(["run", "--no-tui", "--heap-probes", "inprocess", "--format", "json", "--output"])
            .arg(tools.scratch.join("redis-report.json"))
            .arg("--")
            .args(&args)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn(),
        Config::Heaptrack => Command::new("heaptrack")
            .arg("-o")
            .arg(tools.scratch.join("heaptrack-redis"))
            .args(&args)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn(),
        _ => Command::new(args[0]).args(&args[1..]).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn(),
    }
    .context("starting redis-server (cargo xtask bench installs it)")?;
    wait_ready(Duration::from_secs(90))?;
    if server.try_wait()?.is_some() {
        bail!("redis-server under {} exited at start", config.name());
    }
    let pid = server.id();
    guard.0.push(server);
    Ok(pid)
}

/// Attaching tracers: to the running server, measured once they are attached.
fn attach_tracer(tools: &Tools, config: Config, pid: u32, report: &Path, guard: &mut Guard) -> Result<()> {
    match config {
        Config::Exact | Config::Sample64 | Config::Depth8 | Config::ProbeFloor => {
            let mut c = Command::new(&tools.leaktrace);
            c.args(["attach", "--no-tui", "--pid", &pid.to_string(), "--format", "json", "--output"]).arg(report);
            match config {
                Config::Sample64 => c.args(["--sample", "64"]),
                Config::Depth8 => c.args(["--stack-depth", "8"]),
                Config::ProbeFloor => c.arg("--probe-floor"),
                _ => &mut c,
            };
            let mut t = c.process_group(0).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
            let ready = t.stderr.take().expect("piped");
            guard.0.push(t);
            wait_for_line(ready, "tracing pid", Duration::from_secs(60), "leaktrace")?;
        }
        Config::Memleak => {
            // The script names libc's allocator; Debian's redis allocates with
            // jemalloc, so the anchor probes the library that serves malloc there
            // (probing libc would measure nothing).
            let script = std::fs::read_to_string(tools.anchors.join("memleak.bt"))?
                .replace("cpid", &pid.to_string())
                .replace(LIBC, &allocator_of(pid)?);
            let mut t =
                Command::new("bpftrace").args(["-e", &script]).process_group(0).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
            let ready = t.stdout.take().expect("piped");
            guard.0.push(t);
            wait_for_line(ready, "Attaching", Duration::from_secs(60), "bpftrace")?;
        }
        _ => {}
    }
    Ok(())
}

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// The jemalloc that `pid` has mapped, else libc.
fn allocator_of(pid: u32) -> Result<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).context("reading the server's maps")?;
    Ok(maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.contains("libjemalloc")).unwrap_or(LIBC).to_owned())
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
