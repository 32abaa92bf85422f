//! Privileged: the real binary's TUI in tmux, attached to a program that keeps
//! leaking sockets and timerfds. The site appears, its count grows, sorting
//! and the baseline key work, and `q` exits with the terminal restored.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Cleanup {
    session: String,
    churn: Child,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
        let _ = self.churn.kill();
        let _ = self.churn.wait();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux must be installed (cargo xtask setup)");
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

/// The count column of the first table row for a socket site in churn.c.
fn socket_count(screen: &str) -> Option<u64> {
    let row = screen.lines().find(|l| l.contains("socket") && l.contains("churn.c"))?;
    let after = row.split("churn.c:").nth(1)?;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn wait_for(session: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        let s = screen(session);
        if pred(&s) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}; screen:\n{}", screen(session));
}

#[test]
fn live_view_shows_growth_sorts_baselines_and_quits_cleanly() {
    require_root();
    let dir = build_programs();
    let churn = Command::new(dir.path().join("churn")).arg("5").stdin(Stdio::piped()).spawn().unwrap();
    let session = format!("leaktrace-e2e-{}", churn.id());
    let guard = Cleanup { session: session.clone(), churn };
    tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "50"]);
    let cmd = format!("{} attach --pid {} --tui; echo LEAKTRACE-EXITED-$?", env!("CARGO_BIN_EXE_leaktrace"), guard.churn.id());
    tmux(&["send-keys", "-t", &session, &cmd, "Enter"]);

    let first = wait_for(&session, "a socket site", |s| socket_count(s).is_some_and(|n| n > 0));
    let n1 = socket_count(&first).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let n2 = wait_for(&session, "growth", |s| socket_count(s).is_some_and(|n| n > n1));
    assert!(n2.contains("timerfd"), "the timerfd site is listed too:\n{n2}");
    assert!(n2.contains("sort: bytes"));

    tmux(&["send-keys", "-t", &session, "s"]);
    wait_for(&session, "sort by count", |s| s.contains("sort: count") && s.contains("count▼"));

    tmux(&["send-keys", "-t", &session, "b"]);
    wait_for(&session, "the baseline marker", |s| s.contains("baseline: +"));

    tmux(&["send-keys", "-t", &session, "q"]);
    let after = wait_for(&session, "exit", |s| s.contains("LEAKTRACE-EXITED-0"));
    assert!(!after.contains("outstanding over time"), "the alternate screen is gone:\n{after}");
    assert!(after.contains("detached"), "the final report is printed after the view closes:\n{after}");
    drop(guard);
}
