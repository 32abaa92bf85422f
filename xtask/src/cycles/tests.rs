use std::collections::BTreeMap;
use std::path::Path;

use super::modules::Crate;
use super::*;

/// The crate's files, by path, and its edges as (from, to) names.
fn graph(files: &[(&str, &str)]) -> (Crate, BTreeMap<(String, String), Vec<String>>) {
    let files: BTreeMap<&str, &str> = files.iter().copied().collect();
    let read = |p: &Path| files.get(p.to_str().unwrap()).map(|s| s.to_string());
    let c = Crate::load(Path::new("lib.rs"), &read).unwrap();
    let named = edges(&c)
        .into_iter()
        .map(|((a, b), how)| ((c.files[a].display().to_string(), c.files[b].display().to_string()), how.into_iter().collect()))
        .collect();
    (c, named)
}

fn cycles(files: &[(&str, &str)]) -> Vec<String> {
    let (c, _) = graph(files);
    describe(&c, &edges(&c))
}

#[test]
fn a_cycle_through_use_and_qualified_paths_is_found() {
    let found = cycles(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::Thing;\npub struct Other;\npub fn f(_: Thing) {}\n"),
        ("b.rs", "pub struct Thing;\npub fn g() -> super::a::Other { crate::a::Other }\n"),
    ]);
    assert_eq!(found, ["a.rs → b.rs (crate::b::Thing) → a.rs (crate::a::Other, super::a::Other)"]);
}

#[test]
fn a_re_export_is_resolved_to_the_defining_file() {
    let (_, edges) = graph(&[
        ("lib.rs", "pub mod report;\npub mod cli;\n"),
        ("report/mod.rs", "mod model;\npub use model::Report;\n"),
        ("report/model.rs", "pub struct Report;\n"),
        ("cli/mod.rs", "use crate::report::Report;\npub fn f(_: &Report) {}\n"),
    ]);
    let keys: Vec<(&str, &str)> = edges.keys().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(keys, [("cli/mod.rs", "report/model.rs")]);
}

#[test]
fn a_mod_declaration_makes_no_edge() {
    let (_, edges) = graph(&[
        ("lib.rs", "pub mod growth;\n"),
        ("growth/mod.rs", "mod slope;\n#[cfg(test)]\n#[path = \"checks.rs\"]\nmod tests;\npub struct Sample;\n"),
        ("growth/slope.rs", "use super::Sample;\npub fn slope(_: &[Sample]) {}\n"),
        ("growth/checks.rs", "use super::*;\nfn t() { let _ = Sample; }\n"),
    ]);
    let keys: Vec<(&str, &str)> = edges.keys().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(keys, [("growth/checks.rs", "growth/mod.rs"), ("growth/slope.rs", "growth/mod.rs")]);
}

#[test]
fn a_module_path_prefers_the_item_of_the_same_name_at_its_end() {
    let found = cycles(&[
        ("lib.rs", "pub mod report;\npub mod cli;\n"),
        ("report/mod.rs", "mod verdict;\npub use verdict::verdict;\n"),
        ("report/verdict.rs", "pub fn verdict() -> u8 { crate::cli::code() }\n"),
        ("cli.rs", "use crate::report;\npub fn code() -> u8 { 0 }\nfn f() { report::verdict(); }\n"),
    ]);
    assert_eq!(found, ["report/verdict.rs → cli.rs (crate::cli::code) → report/verdict.rs (report::verdict)"]);
}

#[test]
fn macro_arguments_and_body_uses_count() {
    let found = cycles(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "pub const N: u8 = 1;\nfn f() { assert_eq!(crate::b::M, 2); }\n"),
        ("b.rs", "pub const M: u8 = 2;\nfn g() { use crate::a::N; let _ = N; }\n"),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("a.rs → b.rs (crate::b::M) → a.rs (crate::a::N)"), "{found:?}");
}

#[test]
fn foreign_names_and_methods_make_no_edge() {
    let found = cycles(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use std::fmt::Write;\npub struct A;\nimpl A { pub fn go(&self) {} }\n"),
        ("b.rs", "use crate::a::A;\nfn f(a: A) { a.go(); let _ = std::mem::size_of::<u8>(); }\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn the_tracer_tree_is_read_whole() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-user/src");
    let read = |p: &Path| std::fs::read_to_string(src.join(p)).ok();
    let c = Crate::load(Path::new("lib.rs"), &read).unwrap();
    let on_disk = walk(&src).len();
    // main.rs and bin/: crates of their own, outside the library's tree.
    assert_eq!(c.files.len(), on_disk - 2, "a file of the library not reached from lib.rs");
    for cycle in describe(&c, &edges(&c)) {
        eprintln!("{cycle}");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}
