//! Privileged: `leaktrace check` on this kernel prints a line for every
//! feature, probed (yes or no, never "could not tell"), what leaktrace
//! uses for each part, and exits 0: its programs load here.

mod common;

use std::process::Command;

use common::*;

const FEATURES: [&str; 9] = [
    "BTF",
    "tp_btf programs",
    "bpf_loop",
    "bpf_find_vma",
    "ring buffer",
    "mmapable arrays (BPF_F_MMAPABLE)",
    "uprobe_multi links",
    "uprobe sessions",
    "private BPF stacks",
];
const PARTS: [&str; 8] = ["descriptors", "processes", "heap", "stacks", "new objects", "unwind tables", "event loops", "events"];

#[test]
fn check_names_every_feature_and_can_trace_here() {
    require_root();
    let out = leaktrace().arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\nstderr: {}", stderr(&out));
    assert!(text.starts_with("kernel: Linux "), "{text}");
    for name in FEATURES {
        let line = text.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        let word = line.trim_start()[name.len()..].split_whitespace().next();
        assert!(matches!(word, Some("yes" | "no")), "{name} probed: {line}");
    }
    for part in PARTS {
        assert!(text.lines().any(|l| l.trim_start().starts_with(part)), "no line for {part}:\n{text}");
    }
    assert!(text.contains("leaktrace can trace here"), "{text}");
    // An optional program the kernel refuses leaves tracing possible but a
    // part missing: every program must load on every kernel of the matrix.
    assert!(!text.contains("refused program"), "a program was refused:\n{text}");
}

#[test]
fn check_as_json_has_the_same_verdict() {
    require_root();
    let out = leaktrace().args(["check", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let features = v["features"].as_array().unwrap();
    assert_eq!(features.len(), FEATURES.len());
    assert!(features.iter().all(|f| f["available"].is_boolean()), "{features:?}");
    assert_eq!(v["can_trace"], true);
    assert_eq!(v["refused"], serde_json::json!([]), "every program loads here");
    assert!(v["reason"].is_null());
    assert!(v["uses"].as_array().unwrap().iter().any(|u| u["part"] == "heap"));
}

#[test]
fn check_without_privileges_is_exit_code_2_with_the_reason() {
    require_root();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_leaktrace"))
        .arg("check")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).starts_with("leaktrace: error: not permitted"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one line: {}", stderr(&out));
}
