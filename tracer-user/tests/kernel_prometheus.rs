//! Privileged: a real Prometheus server (Debian's package, started here on
//! a free port with a generated config) scrapes `leaktrace attach --metrics`
//! over a process leaking 40 KiB/s; its HTTP API finds the site's series
//! and Prometheus's own deriv() gives the rate within 10%.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RATE: f64 = 40_960.0; // bytes a second

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Ends a child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"_.-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// GET `path` from 127.0.0.1:`port`: the body, None when it cannot connect.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// A PromQL instant query: its results.
fn query(port: u16, promql: &str) -> Vec<serde_json::Value> {
    let body = get(port, &format!("/api/v1/query?query={}", encode(promql))).expect("Prometheus answers");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"].as_array().unwrap().clone()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_scrapes_the_sites_series_rising_at_the_leaks_rate() {
    require_root();
    let (dir, exe) = build_one("grow");
    let mut target = Reaped(Command::new(&exe).args(["leak", &format!("{RATE}"), "60"]).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(target.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");

    let (metrics, web) = (free_port(), free_port());
    let tracer = Reaped(
        leaktrace()
            .args(["attach", "--pid", &target.0.id().to_string(), "--duration", "50", "--no-tui", "--metrics"])
            .arg(format!("127.0.0.1:{metrics}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("leaktrace's /metrics", Duration::from_secs(20), || get(metrics, "/metrics").is_some_and(|b| b.contains("leak_step")));

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: leaktrace\n    static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Reaped(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package; cargo xtask setup installs it)"),
    );
    let series = "leaktrace_site_outstanding_bytes{job=\"leaktrace\",kind=\"heap\",function=\"leak_step\"}";
    wait_for("Prometheus's first scrape", Duration::from_secs(30), || {
        get(web, "/-/ready").is_some_and(|b| b.contains("Ready")) && !query(web, series).is_empty()
    });
    // Prometheus's own slope over twenty seconds of scrapes, once it has them.
    let samples = format!("count_over_time({series}[20s])");
    wait_for("twenty seconds of scrapes", Duration::from_secs(60), || {
        query(web, &samples).first().and_then(|r| r["value"][1].as_str()?.parse::<u32>().ok()).is_some_and(|n| n >= 18)
    });
    let found = query(web, series);
    assert_eq!(found.len(), 1, "one series for the site: {found:#?}");
    assert_eq!(found[0]["metric"]["file"].as_str().map(|f| f.ends_with("grow.c")), Some(true), "{found:#?}");
    let slope = query(web, &format!("deriv({series}[20s])"));
    let rate: f64 = slope[0]["value"][1].as_str().unwrap().parse().unwrap();
    eprintln!("Prometheus: deriv = {rate:.0} B/s (the program: {RATE} B/s)");
    assert!((rate - RATE).abs() < RATE * 0.1, "Prometheus sees {rate:.0} B/s, the program leaks {RATE} B/s");
    let up = query(web, "up{job=\"leaktrace\"}");
    assert_eq!(up[0]["value"][1], "1", "{up:#?}");
    let lost = query(web, "leaktrace_lost_events_total");
    assert_eq!(lost[0]["value"][1], "0", "{lost:#?}");
    drop(tracer);
}
