//! Reading valgrind memcheck's report (`--leak-check=full
//! --show-leak-kinds=all --track-fds=yes`): the independent oracle the
//! fixture and the unwinding tests compare leaktrace with. Each loss record
//! and open descriptor is attributed to the innermost frame in the sources
//! the caller cares about.

use std::borrow::ToOwned;
use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

/// (kind, function, file basename, line) → (count, bytes).
pub type Sites = BTreeMap<(String, String, String, u32), (u64, u64)>;

#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unreadable valgrind report: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// One loss record or open descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub count: u64,
    pub bytes: u64,
    /// A heap record's leak kind in valgrind's words: `definite`, `indirect`,
    /// `possible` or `reachable` (`None` for descriptors).
    pub class: Option<&'static str>,
    /// (function, file basename, line) of each frame with a source location,
    /// innermost first, from the first frame `ours` accepts.
    pub stack: Vec<(String, String, u32)>,
}

/// Parses valgrind's text report: loss records ("N bytes in M blocks are
/// ...") and open descriptors ("Open AF_INET socket 5: ...", "Open file
/// descriptor 7: anon_inode:[timerfd]"), each with its stack from the
/// innermost frame whose file `ours` accepts; records with no such frame are left out.
pub fn records(text: &str, ours: impl Fn(&str) -> bool) -> Result<Vec<Record>, ParseError> {
    let lines: Vec<&str> = text.lines().map(|l| l.split_once("== ").map_or(l, |(_, rest)| rest)).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let entry = if let Some(rest) = line.strip_prefix("Open ") {
            let creator = lines.get(i + 1).and_then(|l| l.trim_start().strip_prefix("at ")).unwrap_or("");
            fd_kind(rest, creator).map(|k| (k.to_owned(), 1, 0, None))
        } else if line.contains(" blocks are ") && line.contains(" in loss record ") {
            Some(("heap".to_owned(), leak_blocks(line)?, leak_bytes(line)?, leak_class(line)))
        } else {
            None
        };
        let Some((kind, count, bytes, class)) = entry else { continue };
        let frames: Vec<_> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim_start().starts_with("at ") || l.trim_start().starts_with("by "))
            .filter_map(|l| frame(l))
            .collect();
        let Some(first) = frames.iter().position(|f| ours(&f.1)) else { continue };
        out.push(Record { kind, count, bytes, class, stack: frames[first..].to_vec() });
    }
    Ok(out)
}

/// The records summed per site: the innermost frame in our sources.
pub fn parse(text: &str, ours: impl Fn(&str) -> bool) -> Result<Sites, ParseError> {
    let mut sites = Sites::new();
    for r in records(text, ours)? {
        let (function, file, line) = r.stack[0].clone();
        let e = sites.entry((r.kind, function, file, line)).or_insert((0, 0));
        e.0 += r.count;
        e.1 += r.bytes;
    }
    Ok(sites)
}

/// Descriptor kinds by the anonymous inode's or memfd's name in valgrind's
/// description, or by the creating call when it gives none.
const NAMED: [(&str, &str); 19] = [
    ("anon_inode:inotify", "inotify"),
    ("[signalfd]", "signalfd"),
    ("[io_uring]", "io_uring"),
    ("[pidfd]", "pidfd"),
    ("[fanotify]", "fanotify"),
    ("/memfd:", "memfd"),
    ("/secretmem", "memfd"),
    ("[perf_event]", "perf"),
    ("[userfaultfd]", "userfaultfd"),
    ("anon_inode:bpf", "bpf"),
    ("anon_inode:btf", "bpf"),
    ("inotify_init", "inotify"),
    ("signalfd (", "signalfd"),
    ("io_uring_setup (", "io_uring"),
    ("pidfd_open (", "pidfd"),
    ("fanotify_init (", "fanotify"),
    ("memfd_create (", "memfd"),
    ("perf_event_open (", "perf"),
    ("userfaultfd (", "userfaultfd"),
];

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
    } else if let Some(kind) = NAMED.iter().find_map(|(pat, kind)| rest.contains(pat).then_some(*kind)) {
        kind
    } else if rest.contains("pipe") {
        "pipe"
    } else if rest.contains(": /") {
        "file"
    } else {
        "other"
    })
}

fn number(s: &str) -> Result<u64, ParseError> {
    s.replace(',', "").parse().map_err(|_| ParseError(std::format!("not a number: {s}")))
}

/// The leak kind of a loss record ("are definitely lost in loss record").
fn leak_class(line: &str) -> Option<&'static str> {
    let kind = line.split(" blocks are ").nth(1)?.split(" in loss record ").next()?;
    Some(match kind {
        "definitely lost" => "definite",
        "indirectly lost" => "indirect",
        "possibly lost" => "possible",
        "still reachable" => "reachable",
        _ => return None,
    })
}

/// Blocks of a loss record.
fn leak_blocks(line: &str) -> Result<u64, ParseError> {
    let before = line.split(" blocks are ").next().unwrap_or("");
    number(before.rsplit(' ').next().unwrap_or(""))
}

/// Direct bytes of a loss record ("N bytes" or "N (D direct, I indirect) bytes").
fn leak_bytes(line: &str) -> Result<u64, ParseError> {
    match line.split_once(" direct, ") {
        Some((head, _)) => number(head.rsplit('(').next().unwrap_or("")),
        None => number(line.split(' ').next().unwrap_or("")),
    }
}

/// (function, file, line) of a stack line with a source location.
fn frame(l: &str) -> Option<(String, String, u32)> {
    let (_, rest) = l.split_once(": ")?;
    let (function, loc) = rest.split_once(" (")?;
    let loc = loc.strip_suffix(')')?;
    let (file, line) = loc.rsplit_once(':')?;
    Some((function.to_owned(), file.to_string(), line.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\\
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
==1== 8 bytes in 1 blocks are still reachable in loss record 2 of 12
==1==    at 0x48407B4: malloc (vg_replace_malloc.c:381)
==1==    by 0x10A3A2: _dl_init (dl-init.c:70)
";

    #[test]
    fn parses_loss_records_and_open_descriptors() {
        let s = parse(REPORT, |f| f.starts_with("net_")).unwrap();
        let key = |k: &str, f: &str, file: &str, l: u32| (k.to_owned(), f.to_owned(), file.to_owned(), l);
        assert_eq!(s.get(&key("socket", "on_accept", "net_callbacks.c", 65)), Some(&(1, 0)));
        assert_eq!(s.get(&key("timerfd", "net_timer_init", "net_loop.c", 73)), Some(&(2, 0)), "named or not, both are timerfds");
        assert_eq!(s.get(&key("heap", "js_net_connection_new", "net_module.c", 7)), Some(&(4, 2112)));
        assert_eq!(s.get(&key("heap", "js_socket_connect", "net_socket.c", 15)), Some(&(3, 30)));
        assert_eq!(s.len(), 4, "the inherited descriptor and the record outside our files are not counted");
    }

    #[test]
    fn loss_records_carry_their_leak_kind() {
        let r = records(REPORT, |f| f.starts_with("net_")).unwrap();
        let heap: Vec<_> = r.iter().filter(|r| r.kind == "heap").map(|r| (r.bytes, r.class)).collect();
        assert_eq!(heap, [(2112, Some("definite")), (30, Some("definite"))]);
        assert!(r.iter().filter(|r| r.kind != "heap").all(|r| r.class.is_none()));
        let line = "==1== 4,224 bytes in 8 blocks are still reachable in loss record 11 of 12";
        assert_eq!(leak_class(line), Some("reachable"));
        assert_eq!(leak_class(&line.replace("still reachable", "possibly lost")), Some("possible"));
    }

    #[test]
    fn every_descriptor_kind_is_named() {
        for (rest, creator, kind) in [
            ("descriptor 4: anon_inode:inotify", "", "inotify"),
            ("descriptor 4: anon_inode:[io_uring]", "", "io_uring"),
            ("descriptor 4: /memfd:leaky (deleted)", "", "memfd"),
            ("descriptor 4: anon_inode:bpf-map", "", "bpf"),
            ("descriptor 4:", "signalfd (signalfd.c:9)", "signalfd"),
            ("descriptor 4: /etc/hosts", "", "file"),
            ("descriptor 4: anon_inode:[fscontext]", "", "other"),
        ] {
            assert_eq!(fd_kind(rest, creator), Some(kind), "{rest} {creator}");
        }
    }
}
