//! Privileged: the real binary's TUI in tmux, attached to a program that keeps
//! leaking sockets and timerfds. The site appears, its count grows, sorting
//! and the baseline key work, and `q` exits with the terminal restored.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tmux::Tmux;
use common::*;

struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The count column of the first table row for a socket site in churn.c.
fn socket_count(screen: &str) -> Option<u64> {
    let row = screen.lines().find(|l| l.contains("socket") && l.contains("churn.c"))?;
    let after = row.split("churn.c:").nth(1)?;
    after.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn live_view_shows_growth_sorts_baselines_and_quits_cleanly() {
    require_root();
    let dir = build_programs();
    let churn = Target(Command::new(dir.path().join("churn")).arg("5").stdin(Stdio::piped()).spawn().unwrap());
    let term = Tmux::new(&format!("leaktrace-e2e-{}", churn.0.id()));
    term.type_line(&format!("{} attach --pid {} --tui; echo LEAKTRACE-EXITED-$?", env!("CARGO_BIN_EXE_leaktrace"), churn.0.id()));

    let first = term.wait_for("a socket site", |s| socket_count(s).is_some_and(|n| n > 0));
    let n1 = socket_count(&first).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let n2 = term.wait_for("growth", |s| socket_count(s).is_some_and(|n| n > n1));
    assert!(n2.contains("timerfd"), "the timerfd site is listed too:\n{n2}");
    assert!(n2.contains("sort: bytes"));

    term.send("s");
    term.wait_for("sort by count", |s| s.contains("sort: count") && s.contains("count▼"));

    term.send("b");
    term.wait_for("the baseline marker", |s| s.contains("baseline: +"));

    term.send("q");
    let after = term.wait_for("exit", |s| s.contains("LEAKTRACE-EXITED-0"));
    assert!(!after.contains("outstanding over time"), "the alternate screen is gone:\n{after}");
    assert!(after.contains("detached"), "the final report is printed after the view closes:\n{after}");
}
