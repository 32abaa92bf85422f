//! Driving the real live view in tmux: typing keys and reading the screen.

use std::process::Command;
use std::time::Duration;

/// A detached tmux session, killed on drop.
pub struct Tmux {
    pub session: String,
}

impl Tmux {
    pub fn new(session: &str) -> Self {
        tmux(&["new-session", "-d", "-s", session, "-x", "200", "-y", "50"]);
        Self { session: session.to_owned() }
    }

    pub fn send(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Types a command line and presses Enter.
    pub fn type_line(&self, line: &str) {
        tmux(&["send-keys", "-t", &self.session, line, "Enter"]);
    }

    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    /// The screen once `pred` holds (10 s at most).
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; screen:\n{}", self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux must be installed (cargo xtask setup)");
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
