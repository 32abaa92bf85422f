//! The fixture's leaks are real: valgrind (independent of leaktrace) sees
//! exactly the manifest's leaks in the leaky build and nothing in the fixed one.

use std::path::{Path, PathBuf};

use xtask::fixture;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn valgrind_agrees_with_the_manifest() {
    // Fails with the reason (make, gcc or valgrind missing) rather than skipping.
    let table = fixture::check(&root()).unwrap();
    println!("{table}");
}

#[test]
fn every_manifest_line_holds_the_named_call() {
    let root = root();
    let m = fixture::manifest(&root).unwrap();
    for leak in m.expected(&[]).unwrap() {
        let src = std::fs::read_to_string(root.join("fixtures/net").join(&leak.file)).unwrap();
        let line = src.lines().nth(leak.line as usize - 1).unwrap_or("");
        let call = ["calloc(", "malloc(", "strdup(", "socket(", "accept4(", "timerfd_create("].iter().any(|c| line.contains(c));
        assert!(call, "{}:{} should call an allocator or a syscall wrapper: {line}", leak.file, leak.line);
        let defined_in = src
            .lines()
            .take(leak.line as usize)
            .filter(|l| !l.starts_with(' ') && l.contains('(') && l.ends_with('{'))
            .last()
            .unwrap_or("");
        assert!(
            defined_in.contains(&format!("{}(", leak.function)),
            "{}:{} is not inside {}: {defined_in}",
            leak.file,
            leak.line,
            leak.function
        );
    }
}
