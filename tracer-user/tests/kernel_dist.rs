//! Privileged: the binary `cargo xtask dist` ships, copied to a directory
//! outside the checkout and run with a PATH that has no cargo (and no other
//! variable), traces the fixture to the manifest's verdict.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_dist_binary_traces_the_fixture_from_anywhere() {
    require_root();
    let root = workspace();
    // cargo rebuilds only what changed: the binary is the one `dist` ships now.
    let dist = Command::new(env!("CARGO")).current_dir(&root).args(["xtask", "dist"]).output().unwrap();
    assert!(dist.status.success(), "cargo xtask dist failed:\n{}{}", String::from_utf8_lossy(&dist.stdout), stderr(&dist));
    let st = Command::new("make").args(["-s", "-C"]).arg(root.join("fixtures")).status().expect("make (cargo xtask setup installs it)");
    assert!(st.success(), "building the fixture failed");

    let away = tempfile::tempdir().unwrap();
    let binary = away.path().join("leaktrace");
    std::fs::copy(root.join("target/dist/leaktrace"), &binary).unwrap();
    let out = Command::new(&binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        // From the workspace root, as the README's demo: the focus and the manifest are relative.
        .current_dir(&root)
        .args(["run", "--ci", "--focus", "fixtures/net/", "--expect", "fixtures/manifest.json", "--"])
        .arg(root.join("fixtures/build/leaky/net-driver"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(stderr(&out).contains("all 8 expected sites match"), "{}", stderr(&out));
}
