//! A stack is complete only when a module's own unwind information says its
//! bottom was reached; code with no usable CFI (none emitted, or a zeroed
//! `.eh_frame`) and no frame pointers gives a stack that is marked cut, with
//! the reason, never one that passes for complete.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require_root, stderr};

/// The lost blocks' site of `program`: its frames and `stack_end`.
fn lose_blocks_site(dir: &Path, program: &Path) -> (Vec<String>, serde_json::Value) {
    let (out, r) = common::run_with_input(&["run", "--no-tui"], &dir.join("report.json"), &[program.as_os_str()], b"l");
    let site = r["sites"].as_array().unwrap().iter().find(|s| s["site"]["function"] == "lose_blocks").cloned();
    let site = site.unwrap_or_else(|| panic!("no site at lose_blocks: {:#}\n{}", r["sites"], stderr(&out)));
    assert_eq!(site["count"], 7, "{site:#}");
    let frames = site["stack"].as_array().unwrap().iter().map(|f| f["function"].as_str().unwrap_or("?").to_owned()).collect();
    (frames, site["stack_end"].clone())
}

/// Complete means the walk reached the program's start; anything short of it says why.
fn assert_cut_or_whole(frames: &[String], end: &serde_json::Value, what: &str) {
    if end.is_null() {
        assert!(frames.iter().any(|f| f == "main"), "{what}: a stack without main passed for complete: {frames:?}");
    } else {
        assert!(end.to_string().contains("after"), "{what}: the cut names where: {end}");
    }
}

#[test]
fn code_without_usable_cfi_gives_stacks_marked_cut() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let src = common::programs_src().join("lose_on_cue.c");
    let build = |out: &str, flags: &[&str]| {
        let exe = dir.path().join(out);
        assert!(Command::new("cc")
            .args(flags)
            .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .unwrap()
            .success());
        exe
    };
    let none = build("no-unwind-tables", &["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"]);
    let (frames, end) = lose_blocks_site(dir.path(), &none);
    assert_cut_or_whole(&frames, &end, "no unwind tables");

    // The same program with its .eh_frame zeroed after the build.
    let zeroed = build("zeroed-eh-frame", &[]);
    let data = std::fs::read(&zeroed).unwrap();
    let file = object::File::parse(data.as_slice()).unwrap();
    let (off, size) = object::ObjectSection::file_range(&object::Object::section_by_name(&file, ".eh_frame").unwrap()).unwrap();
    let mut data = data.clone();
    data[off as usize..(off + size) as usize].fill(0);
    std::fs::write(&zeroed, &data).unwrap();
    let (frames, end) = lose_blocks_site(dir.path(), &zeroed);
    assert_cut_or_whole(&frames, &end, "a zeroed .eh_frame");
}
