//! The fixture: building it, and the oracle independent of leaktrace —
//! valgrind memcheck with --track-fds=yes must agree with the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use tracer_common::manifest::{ExpectedLeak, Manifest};

pub const VARIANTS: [&str; 4] = ["leaky", "fixed", "leaky-nofp", "fixed-nofp"];

/// `make -C fixtures`: all four builds.
pub fn build(root: &Path) -> Result<()> {
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root.join("fixtures"))
        .status()
        .context("running make (cargo xtask setup installs it)")?;
    if !status.success() {
        bail!("building the fixture failed ({status})");
    }
    Ok(())
}

pub fn driver(root: &Path, variant: &str) -> PathBuf {
    root.join("fixtures/build").join(variant).join("net-driver")
}

pub fn manifest(root: &Path) -> Result<Manifest> {
    Ok(Manifest::load(&root.join("fixtures/manifest.json"))?)
}

/// (kind, function, file, line) → (count, bytes)
pub type Sites = BTreeMap<(String, String, String, u32), (u64, u64)>;

/// What valgrind reports still held at exit, attributed to the innermost
/// frame in the fixture's sources.
pub fn oracle(root: &Path, variant: &str) -> Result<Sites> {
    let out = Command::new("valgrind")
        .args(["--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes", "--num-callers=30"])
        .arg(driver(root, variant))
        .output()
        .context("running valgrind (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!("valgrind over the {variant} build failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    parse_valgrind(&String::from_utf8_lossy(&out.stderr))
}

/// Parses valgrind's text report: loss records ("N bytes in M blocks are ...")
/// and open descriptors ("Open AF_INET socket 5: ...", "Open file descriptor
/// 7: anon_inode:[timerfd]"), each followed by its stack.
pub fn parse_valgrind(text: &str) -> Result<Sites> {
    let lines: Vec<&str> = text.lines().map(|l| l.split_once("== ").map_or(l, |(_, rest)| rest)).collect();
    let mut sites = Sites::new();
    for (i, line) in lines.iter().enumerate() {
        let entry = if let Some(rest) = line.strip_prefix("Open ") {
            let creator = lines.get(i + 1).and_then(|l| l.trim_start().strip_prefix("at ")).unwrap_or("");
            fd_kind(rest, creator).map(|k| (k.to_owned(), 1, 0))
        } else if line.contains(" blocks are ") && line.contains(" in loss record ") {
            Some(("heap".to_owned(), leak_blocks(line)?, leak_bytes(line)?))
        } else {
            None
        };
        let Some((kind, count, bytes)) = entry else { continue };
        let stack = lines[i + 1..].iter().take_while(|l| l.trim_start().starts_with("at ") || l.trim_start().starts_with("by "));
        let Some(site) = stack.filter_map(|l| fixture_frame(l)).next() else { continue };
        let e = sites.entry((kind, site.0, site.1, site.2)).or_insert((0, 0));
        e.0 += count;
        e.1 += bytes;
    }
    Ok(sites)
}

/// The kind of an open descriptor, from valgrind's description or, when it
/// gives none (anonymous inodes in valgrind 3.19), from the call that created it.
fn fd_kind(rest: &str, creator: &str) -> Option<&'static str> {
    if rest.contains("<inherited from parent>") {
        return None;
    }
    let described = rest.split_once(':').map_or("", |(_, d)| d.trim());
    let rest = if described.is_empty() { creator } else { rest };
    Some(if rest.contains("socket") || rest.contains("accept") {
        "socket"
    } else if rest.contains("timerfd") {
        "timerfd"
    } else if rest.contains("eventpoll") || rest.contains("epoll_create") {
        "epoll"
    } else if rest.contains("eventfd") {
        "eventfd"
    } else if rest.contains("pipe") {
        "pipe"
    } else if rest.contains(": /") {
        "file"
    } else {
        "other"
    })
}

fn number(s: &str) -> Result<u64> {
    s.replace(',', "").parse().with_context(|| format!("not a number: {s}"))
}

/// Blocks of a loss record.
fn leak_blocks(line: &str) -> Result<u64> {
    let before = line.split(" blocks are ").next().unwrap_or("");
    number(before.rsplit(' ').next().unwrap_or(""))
}

/// Direct bytes of a loss record ("N bytes" or "N (D direct, I indirect) bytes").
fn leak_bytes(line: &str) -> Result<u64> {
    match line.split_once(" direct, ") {
        Some((head, _)) => number(head.rsplit('(').next().unwrap_or("")),
        None => number(line.split(' ').next().unwrap_or("")),
    }
}

/// (function, file, line) of a stack line in the fixture's sources (net_*.c).
fn fixture_frame(l: &str) -> Option<(String, String, u32)> {
    let (_, rest) = l.split_once(": ")?;
    let (function, loc) = rest.split_once(" (")?;
    let loc = loc.strip_suffix(')')?;
    let (file, line) = loc.rsplit_once(':')?;
    let line: u32 = line.parse().ok()?;
    (file.starts_with("net_") && file.ends_with(".c")).then(|| (function.to_owned(), file.to_owned(), line))
}

pub fn expected_sites(expected: &[ExpectedLeak]) -> Sites {
    expected.iter().map(|e| ((e.kind.clone(), e.function.clone(), e.file.clone(), e.line), (e.count, e.bytes))).collect()
}

/// Builds, runs valgrind on the leaky and fixed builds, and returns a table;
/// fails with the differences when leaky ≠ manifest or fixed holds anything.
pub fn check(root: &Path) -> Result<String> {
    build(root)?;
    let expected = expected_sites(&manifest(root)?.expected(&[])?);
    let leaky = oracle(root, "leaky")?;
    let fixed = oracle(root, "fixed")?;
    let mut table = String::from("kind     site                                         manifest        valgrind (leaky)\n");
    for (k, v) in &expected {
        let got = leaky.get(k).copied().unwrap_or((0, 0));
        table +=
            &format!("{:<8} {:<44} x{:<3} {:>6} B   x{:<3} {:>6} B\n", k.0, format!("{} ({}:{})", k.1, k.2, k.3), v.0, v.1, got.0, got.1);
    }
    table += &format!("fixed build under valgrind: {} sites held at exit\n", fixed.len());
    if leaky != expected {
        bail!("valgrind disagrees with the manifest on the leaky build:\n{table}\nvalgrind: {leaky:#?}");
    }
    if !fixed.is_empty() {
        bail!("the fixed build holds resources at exit: {fixed:#?}");
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
==1== FILE DESCRIPTORS: 5 open (3 std) at exit.
==1== Open AF_INET socket 50: 127.0.0.1:45791 <-> 127.0.0.1:57974
==1==    at 0x4965F63: accept4 (accept4.c:31)
==1==    by 0x109447: on_accept (net_callbacks.c:65)
==1==    by 0x109BF4: main (net_driver.c:188)
==1== Open file descriptor 9: anon_inode:[timerfd]
==1==    at 0x4965F63: timerfd_create (syscall-template.S:120)
==1==    by 0x109447: net_timer_init (net_loop.c:73)
==1== Open file descriptor 11:
==1==    at 0x4965157: timerfd_create (syscall-template.S:120)
==1==    by 0x10A057: net_timer_init (net_loop.c:73)
==1== Open file descriptor 10: /dev/null
==1==    <inherited from parent>
==1== 2,208 (2,112 direct, 96 indirect) bytes in 4 blocks are definitely lost in loss record 7 of 12
==1==    at 0x48407B4: calloc (vg_replace_malloc.c:1340)
==1==    by 0x10A136: js_net_connection_new (net_module.c:7)
==1== 30 bytes in 3 blocks are definitely lost in loss record 1 of 12
==1==    at 0x48407B4: malloc (vg_replace_malloc.c:381)
==1==    by 0x10A3A2: js_socket_connect (net_socket.c:15)
";

    #[test]
    fn parses_loss_records_and_open_descriptors() {
        let s = parse_valgrind(REPORT).unwrap();
        let key = |k: &str, f: &str, file: &str, l: u32| (k.to_owned(), f.to_owned(), file.to_owned(), l);
        assert_eq!(s.get(&key("socket", "on_accept", "net_callbacks.c", 65)), Some(&(1, 0)));
        assert_eq!(s.get(&key("timerfd", "net_timer_init", "net_loop.c", 73)), Some(&(2, 0)), "named or not, both are timerfds");
        assert_eq!(s.get(&key("heap", "js_net_connection_new", "net_module.c", 7)), Some(&(4, 2112)));
        assert_eq!(s.get(&key("heap", "js_socket_connect", "net_socket.c", 15)), Some(&(3, 30)));
        assert_eq!(s.len(), 4, "the inherited descriptor is not counted");
    }
}
