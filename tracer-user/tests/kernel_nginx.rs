//! Privileged: Debian's nginx, a pre-fork server leaktrace did not write
//! (a master and two workers, requests over loopback, stopped with SIGQUIT),
//! under `run --follow-forks` and under valgrind `--trace-children=yes`:
//! each process holds what valgrind says it holds — heap blocks by class,
//! descriptors — and no free is unknown. A worker's `cycle->connections`
//! is definitely lost (the cycle that held it is freed before exit) and its
//! event arrays indirectly: no stale pointer in a block's unwritten bytes
//! may hold them (see tracer-recorder's entry.rs).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::processes::{self, valgrind_logs, Held, VALGRIND};
use common::*;

const NGINX: &str = "/usr/sbin/nginx";
const WORKERS: usize = 2;
/// At its start nginx copies its environment strings into one block
/// (ngx_init_setproctitle, still reachable in every process): valgrind
/// adds its variables to the environment (its LD_PRELOAD of two objects,
/// GLIBCXX_FORCE_NEW and the like: 158 bytes with Debian 12's valgrind;
/// leaktrace's recorder takes its own out before main), so that block alone
/// differs, by their size. Every other figure is equal.
const ENVIRONMENT_SLACK: i64 = 256;
/// nginx's whole environment under both tools, the same each run: the
/// block above and the addresses after it do not depend on the test's.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Blocks kept by a pointer rounded up to an alignment, named by a function
/// on their allocation stack: ngx_crc32_table_init's table (nginx rounds
/// the pointer up to a 64-byte cache line) and glibc's dl_find_object
/// segment (`_dlfo_mappings_segment_allocate` keeps an aligned pointer into
/// the block it allocates; a worker's dlopen for NSS makes one). Such a
/// block is reached by its start (still reachable) only when malloc
/// returned an aligned address, else from inside (possibly lost), under
/// either tool. Where it lands depends on the allocator (valgrind's is not
/// glibc's) and on what was allocated before it (the environment, the
/// prefix's path), so its class may differ between the two tools and from
/// one machine to another; no other block's may.
const ALIGNED_KEPT: [&str; 2] = ["ngx_crc32_table_init", "_dlfo_mappings_segment_allocate"];

/// A temporary prefix: the configuration, a page, the logs; a free port.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
}

impl Site {
    fn new() -> Self {
        assert!(Path::new(NGINX).exists(), "{NGINX} is missing: run `cargo xtask setup` (it installs Debian's nginx)");
        // Loopback may be down in a fresh network namespace.
        let _ = Command::new("ip").args(["link", "set", "lo", "up"]).status();
        // Under /tmp whatever TMPDIR says: nginx copies the prefix's path
        // to its heap, so its length moves the blocks allocated after it.
        let dir = tempfile::Builder::new().prefix("nginx").tempdir_in("/tmp").unwrap();
        // The workers run as nobody: the page must be readable to them.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("html")).unwrap();
        std::fs::write(dir.path().join("html/index.html"), "hello\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes {WORKERS};\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{ listen 127.0.0.1:{port}; root {d}/html; }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        Self { dir, port }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// nginx's arguments: this prefix and configuration.
    fn args(&self) -> Vec<PathBuf> {
        vec!["-p".into(), self.path().into(), "-c".into(), self.path().join("nginx.conf")]
    }

    /// Waits until nginx answers and both workers wait for events (within
    /// `limit`), makes a few requests, waits for the workers to be idle
    /// again, and stops it with SIGQUIT (a graceful stop: the workers finish
    /// and exit). A worker that gets SIGQUIT before its event loop (still
    /// setting up) leaves a pointer into its connections behind (possibly
    /// lost, under valgrind too): the processes must end as they would in
    /// service, and the same way under both tools.
    fn serve_and_quit(&self, child: &mut Child, limit: Duration) {
        let started = Instant::now();
        let pidfile = self.path().join("nginx.pid");
        let mut master = None;
        loop {
            assert!(child.try_wait().unwrap().is_none(), "nginx ended at start; see {}", self.path().join("error.log").display());
            master = master.or_else(|| std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()));
            if master.is_some_and(workers_idle) && self.get().is_some() {
                break;
            }
            assert!(started.elapsed() < limit, "nginx did not answer on port {} within {limit:?}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
        let master = master.expect("the master's pid");
        for _ in 0..4 {
            let page = self.get().expect("a request");
            assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("hello\n"), "{page}");
        }
        let served = Instant::now();
        while !workers_idle(master) {
            assert!(served.elapsed() < Duration::from_secs(10), "nginx's workers still busy 10 s after the requests");
            std::thread::sleep(Duration::from_millis(50));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), nix::sys::signal::Signal::SIGQUIT).expect("SIGQUIT to the master");
        let quit = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if quit.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("nginx did not end within 30 s of SIGQUIT");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut page = String::new();
        s.read_to_string(&mut page).ok()?;
        Some(page)
    }
}

/// Whether the master has its workers, each waiting in epoll_wait.
fn workers_idle(master: i32) -> bool {
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
    let workers: Vec<&str> = children.split_whitespace().collect();
    // epoll_wait and epoll_pwait's numbers on x86-64, first in /proc/PID/syscall.
    let waiting = |pid: &&str| {
        let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        matches!(call.split_whitespace().next(), Some("232" | "281"))
    };
    workers.len() == WORKERS && workers.iter().all(waiting)
}

/// valgrind's view of one process, from its own log: the descriptors it
/// lists but those open when valgrind started ("<inherited from parent>"),
/// and the blocks of [`ALIGNED_KEPT`] counted still reachable.
fn valgrind_held(log: &str) -> Held {
    let lines: Vec<&str> = log.lines().collect();
    let descriptors = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| l.contains("== Open ") && !lines.get(i + 1).is_some_and(|n| n.contains("<inherited from parent>")))
        .count();
    let mut held = processes::valgrind_held(log, descriptors as u64);
    for record in aligned_kept(log).into_iter().filter(|r| r.possibly_lost) {
        held.classes[2] = minus(held.classes[2], record.size).expect("the possibly lost hold the record");
        held.classes[3] = plus(held.classes[3], record.size);
    }
    held
}

/// One of valgrind's loss records.
struct LossRecord {
    /// (bytes, blocks)
    size: (u64, u64),
    possibly_lost: bool,
}

/// The loss records of `log` whose stack has a function of [`ALIGNED_KEPT`].
fn aligned_kept(log: &str) -> Vec<LossRecord> {
    // "==PID== 128 bytes in 1 blocks are possibly lost in loss record 14 of 29",
    // then the stack, to a line empty after its "==PID==".
    let text = |l: &str| l.splitn(3, "==").nth(2).unwrap_or("").trim().to_owned();
    let mut records = Vec::new();
    let mut lines = log.lines().map(text);
    while let Some(line) = lines.next() {
        if !line.contains(" in loss record ") {
            continue;
        }
        let stack: Vec<String> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
        if stack.iter().any(|f| ALIGNED_KEPT.iter().any(|k| f.contains(k))) {
            records.push(LossRecord { size: processes::bytes_in_blocks(&line, ""), possibly_lost: line.contains("are possibly lost") });
        }
    }
    records
}

fn plus(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

fn minus(a: (u64, u64), b: (u64, u64)) -> Option<(u64, u64)> {
    Some((a.0.checked_sub(b.0)?, a.1.checked_sub(b.1)?))
}

/// Each of `v`'s figures with some of `kept` possibly lost rather than
/// still reachable: leaktrace's may be any of them.
fn with_aligned_moved(v: &Held, kept: &[(u64, u64)]) -> Vec<Held> {
    let mut all = vec![v.clone()];
    for size in kept {
        let moved: Vec<Held> = all
            .iter()
            .filter_map(|h| {
                let mut h = h.clone();
                h.classes[3] = minus(h.classes[3], *size)?;
                h.classes[2] = plus(h.classes[2], *size);
                Some(h)
            })
            .collect();
        all.extend(moved);
    }
    all
}

/// Each process's figures, and the sizes of the blocks of [`ALIGNED_KEPT`].
fn valgrind_processes(site: &Site) -> (Vec<Held>, Vec<(u64, u64)>) {
    let logs = site.path().join("vg");
    std::fs::create_dir(&logs).unwrap();
    let mut vg = Command::new("valgrind")
        .env_clear()
        .env("PATH", PATH)
        .args(VALGRIND)
        .arg(format!("--log-file={}/%p", logs.display()))
        .arg(NGINX)
        .args(site.args())
        .stdout(Stdio::null())
        .spawn()
        .expect("valgrind (cargo xtask setup)");
    site.serve_and_quit(&mut vg, Duration::from_secs(60));
    let mut kept: Vec<(u64, u64)> = std::fs::read_dir(&logs)
        .unwrap()
        .flat_map(|e| aligned_kept(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .map(|r| r.size)
        .collect();
    kept.sort();
    kept.dedup();
    (valgrind_logs(&logs, vg.id(), WORKERS, valgrind_held), kept)
}

fn leaktrace_processes(site: &Site) -> (Vec<Held>, serde_json::Value) {
    let report = site.path().join("nginx.json");
    let mut lt = leaktrace()
        .env_clear()
        .env("PATH", PATH)
        .args(["run", "--no-tui", "--follow-forks", "--format", "json", "--output"])
        .arg(&report)
        .arg("--")
        .arg(NGINX)
        .args(site.args())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    site.serve_and_quit(&mut lt, Duration::from_secs(30));
    let out = lt.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_report(&out, &report);
    assert_eq!(r["complete"], true, "{:#}", r["untraced"]);
    (processes::leaktrace_processes(&r, WORKERS), r)
}

#[test]
fn each_nginx_process_holds_what_valgrind_says_it_holds() {
    require_root();
    let site = Site::new();
    let (vg, kept) = valgrind_processes(&site);
    assert!(!kept.is_empty(), "no block of {ALIGNED_KEPT:?} in valgrind's logs: the names changed?");
    // What nginx does: each worker loses its connections (and, with them, its event arrays).
    assert!(vg[1..].iter().all(|w| w.classes[0] == (15_360, 1) && w.classes[1] == (12_288, 2)), "{vg:#?}");
    let site = Site::new();
    let (lt, r) = leaktrace_processes(&site);
    let a = &r["anomalies"];
    assert_eq!((&a["unknown_frees"], &a["unknown_closes"]), (&0.into(), &0.into()), "{a:#}");
    for (i, (l, v)) in lt.iter().zip(&vg).enumerate() {
        let who = if i == 0 { "the master".to_owned() } else { format!("worker {i}") };
        let env = l.heap.0 as i64 - v.heap.0 as i64;
        eprintln!("{who}: leaktrace {l:?}\n{}  valgrind {v:?}", " ".repeat(who.len()));
        assert!(env.abs() <= ENVIRONMENT_SLACK, "{who}: {env} bytes apart (leaktrace {l:?}, valgrind {v:?})");
        // The environment's copy is still reachable: it is the only
        // difference but for where the blocks of ALIGNED_KEPT landed
        // (valgrind's figures count them still reachable).
        let mut expected = v.clone();
        expected.heap.0 = l.heap.0;
        expected.classes[3].0 = (v.classes[3].0 as i64 + env) as u64;
        assert!(
            with_aligned_moved(&expected, &kept).contains(l),
            "{who}: leaktrace {l:?}\nvalgrind, but for the environment's {env} bytes: {expected:?}\n(or with some of {kept:?} possibly lost)"
        );
    }
    let scans = r["scans"].as_array().unwrap();
    assert!(scans.len() == WORKERS + 1 && scans.iter().all(|s| s["heap_known"] == true), "{scans:#?}");
}
