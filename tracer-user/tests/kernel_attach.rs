//! Privileged: `leaktrace attach` to a running process that opens and closes
//! sockets and timerfds. What it reports outstanding equals what
//! /proc/PID/fd shows of those kinds, opened after attaching.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

fn fds_of_kind(pid: u32) -> (Vec<String>, Vec<String>) {
    let mut sockets = Vec::new();
    let mut timers = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
        let name = e.file_name().to_string_lossy().into_owned();
        if target.starts_with("socket:") {
            sockets.push(name);
        } else if target == "anon_inode:[timerfd]" {
            timers.push(name);
        }
    }
    (sockets, timers)
}

/// Sends `command` to the churn and returns the count in its answer.
fn ask(ctl: &mut impl Write, answers: &mut impl BufRead, command: u8, answer: &str) -> u64 {
    ctl.write_all(&[command]).unwrap();
    let mut line = String::new();
    answers.read_line(&mut line).unwrap();
    let count = line.strip_prefix(answer).and_then(|n| n.trim().parse().ok());
    count.unwrap_or_else(|| panic!("the churn answered {line:?} to {:?}", command as char))
}

#[test]
fn outstanding_handles_equal_proc_fd() {
    require_root();
    let dir = build_programs();
    let mut child = Command::new(dir.path().join("churn")).arg("7").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut ctl = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap());
    // Hold still while leaktrace attaches, so "opened after attach" is exact.
    ask(&mut ctl, &mut answers, b'p', "paused ");
    let (before_s, before_t) = fds_of_kind(pid);
    let report = dir.path().join("report.json");
    let (mut tracer, mut err) = attached(&["--pid", &pid.to_string()], &report);
    let from = ask(&mut ctl, &mut answers, b'r', "resumed ");
    while ask(&mut ctl, &mut answers, b'c', "kept ") < from + 15 {}
    ask(&mut ctl, &mut answers, b'p', "paused "); // stop churning, hold what it has
    kill(Pid::from_raw(tracer.id() as i32), Signal::SIGINT).unwrap();
    let status = tracer.wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let (after_s, after_t) = fds_of_kind(pid);
    drop(ctl);
    let _ = child.wait();
    let out = std::process::Output { status, stdout: Vec::new(), stderr: rest.into_bytes() };
    let r = json_report(&out, &report);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(&out));
    let new = |after: &[String], before: &[String]| after.iter().filter(|f| !before.contains(f)).count() as u64;
    let (exp_s, exp_t) = (new(&after_s, &before_s), new(&after_t, &before_t));
    assert!(exp_s > 10 && exp_t > 10, "the churn kept handles while attached: {exp_s} sockets, {exp_t} timerfds");
    assert_eq!(r["totals"]["handles"]["socket"].as_u64().unwrap_or(0), exp_s, "{:#}", r["totals"]);
    assert_eq!(r["totals"]["handles"]["timerfd"].as_u64().unwrap_or(0), exp_t, "{:#}", r["totals"]);
    assert_eq!(r["target"]["state"], "detached");
    assert!(r["anomalies"]["unknown_closes"].as_u64().unwrap() <= 2, "closes of pre-attach fds are at most the two in flight");
}

/// A program that opens a socket and a timerfd, holds them 2 ms and closes
/// them, again and again: a handle it opened the moment before the detach
/// and closes the moment after is not a leak. 50 attaches in a row.
#[test]
fn handles_opened_in_the_last_moments_of_an_attach_are_not_leaks() {
    require_root();
    let dir = build_programs();
    let mut child = Command::new(dir.path().join("hold_briefly")).stdin(Stdio::piped()).spawn().unwrap();
    let mut false_leaks = Vec::new();
    for run in 0..50 {
        let report = dir.path().join(format!("churn-{run}.json"));
        let pid = child.id().to_string();
        let (mut tracer, _err) = attached(&["--no-tui", "--ci", "--pid", &pid, "--duration", "0.2"], &report);
        let status = tracer.wait().unwrap();
        let out = std::process::Output { status, stdout: Vec::new(), stderr: Vec::new() };
        let r = json_report(&out, &report);
        let handles = &r["outstanding"]["handles"];
        if status.code() != Some(0) || handles.as_object().is_some_and(|h| h.values().any(|n| n.as_u64() != Some(0))) {
            false_leaks.push(format!("run {run}: exit {:?}, outstanding {handles}", status.code()));
        }
    }
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(false_leaks.is_empty(), "{} of 50 attaches reported a leak:\n{}", false_leaks.len(), false_leaks.join("\n"));
}
