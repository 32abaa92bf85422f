//! Site labels unique by construction. A site is labelled by its function,
//! or `module+0xOFFSET` without one. A module is named by its file name
//! unless another module of the report has the same one (`/usr/bin/git` and
//! `/usr/lib/git-core/git`): then by as many trailing path components as
//! tell it apart from every such module (`bin/git`, `git-core/git`). Two
//! sites of a kind that still share a label get their line (`f at
//! file.c:12`), or their module's name when that is all that differs.

use std::collections::HashMap;

use crate::aggregate::ResourceKind;

use super::model::{Location, Site};

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The last `k` components of `path` (all of it when it has no more).
fn suffix(path: &str, k: usize) -> &str {
    match path.rmatch_indices('/').nth(k.saturating_sub(1)) {
        Some((i, _)) => &path[i + 1..],
        None => path,
    }
}

/// Each module's name: the shortest trailing part of its path, in whole
/// components, that no other module given ends with.
pub fn module_names<'a>(modules: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
    let mut by_base: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in modules {
        let same = by_base.entry(base(m)).or_default();
        if !same.contains(&m) {
            same.push(m);
        }
    }
    let mut names = HashMap::new();
    for same in by_base.values() {
        for &m in same {
            // Paths are distinct, so the whole path (k past its components) tells it apart.
            let unique = |&(k, s): &(usize, &str)| s == m || same.iter().all(|o| *o == m || suffix(o, k) != s);
            let name = (1..).map(|k| (k, suffix(m, k))).find(unique).map_or(m, |(_, s)| s);
            names.insert(m.to_owned(), name.to_owned());
        }
    }
    names
}

/// Makes the labels of `sites` unique within each kind (see the module's comment).
pub fn make_unique(sites: &mut [Site]) {
    let names = module_names(sites.iter().map(|s| s.site.module.as_str()));
    for s in sites.iter_mut() {
        let name = &names[&s.site.module];
        let l = &mut s.site;
        if let Some(offset) = l.label.strip_prefix(base(&l.module)).filter(|o| l.function.is_none() && o.starts_with("+0x")) {
            l.label = format!("{name}{offset}");
        }
    }
    let count = |sites: &[Site], f: &dyn Fn(&Site) -> String| {
        let mut seen: HashMap<(ResourceKind, String), u32> = HashMap::new();
        for s in sites {
            *seen.entry((s.kind, f(s))).or_insert(0) += 1;
        }
        seen
    };
    let labels = count(sites, &|s| s.site.label.clone());
    let at_line = |s: &Site| match (&s.site.file, s.site.line) {
        (Some(f), Some(l)) => format!("{} at {}:{l}", s.site.label, base(f)),
        _ => s.site.label.clone(),
    };
    let lines = count(sites, &at_line);
    for s in sites.iter_mut() {
        if labels[&(s.kind, s.site.label.clone())] > 1 {
            let label = at_line(s);
            s.site.label = if lines[&(s.kind, label.clone())] > 1 { format!("{label} in {}", names[&s.site.module]) } else { label };
        }
    }
}

/// The label as it was before [`make_unique`]: the same for a site
/// whatever other sites a report holds.
pub fn plain_label(l: &Location) -> String {
    let mut label = l.label.as_str();
    if let Some((head, module)) = label.rsplit_once(" in ") {
        if l.module == module || l.module.ends_with(&format!("/{module}")) {
            label = head;
        }
    }
    if let (Some(file), Some(line)) = (&l.file, l.line) {
        label = label.strip_suffix(&format!(" at {}:{line}", base(file))).unwrap_or(label);
    }
    match label.find("+0x").filter(|_| l.function.is_none()) {
        Some(i) => format!("{}{}", base(&l.module), &label[i..]),
        None => label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::FdKind;

    fn site(kind: ResourceKind, module: &str, label: &str) -> Site {
        let site = Location { module: module.into(), label: label.into(), ..Location::default() };
        Site::empty(kind, site)
    }

    #[test]
    fn modules_with_one_file_name_are_named_by_enough_of_their_paths() {
        let names =
            module_names(["/usr/bin/git", "/usr/lib/git-core/git", "/opt/bin/git", "/usr/lib/libc.so.6", "/a/x", "/b/a/x", "[jit]"]);
        let name = |m: &str| names[m].as_str();
        assert_eq!(name("/usr/lib/git-core/git"), "git-core/git");
        assert_eq!((name("/usr/bin/git"), name("/opt/bin/git")), ("usr/bin/git", "opt/bin/git"));
        assert_eq!((name("/usr/lib/libc.so.6"), name("[jit]")), ("libc.so.6", "[jit]"));
        assert_eq!((name("/a/x"), name("/b/a/x")), ("/a/x", "b/a/x"), "a path that ends another is named whole");
    }

    #[test]
    fn two_frames_of_modules_with_one_file_name_have_different_labels() {
        let git = "git+0x289718";
        let mut sites = vec![
            site(ResourceKind::Heap, "/usr/bin/git", git),
            site(ResourceKind::Heap, "/usr/lib/git-core/git", git),
            site(ResourceKind::Heap, "/usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1+0x10"),
        ];
        sites[0].site.line = Some(3); // no file: not a line to tell them apart
        make_unique(&mut sites);
        let labels: Vec<&str> = sites.iter().map(|s| s.site.label.as_str()).collect();
        assert_eq!(labels, ["bin/git+0x289718", "git-core/git+0x289718", "libz.so.1+0x10"]);
        for s in &sites {
            assert_eq!(
                plain_label(&s.site),
                s.site.module.rsplit('/').next().unwrap().to_owned() + &s.site.label[s.site.label.find('+').unwrap()..]
            );
        }
    }

    #[test]
    fn named_sites_that_differ_only_by_module_say_which_module() {
        let mut sites = vec![
            site(ResourceKind::Fd(FdKind::Socket), "/usr/bin/git", "run_command"),
            site(ResourceKind::Fd(FdKind::Socket), "/usr/lib/git-core/git", "run_command"),
        ];
        sites.iter_mut().for_each(|s| s.site.function = Some("run_command".into()));
        make_unique(&mut sites);
        assert_eq!((sites[0].site.label.as_str(), sites[1].site.label.as_str()), ("run_command in bin/git", "run_command in git-core/git"));
        assert!(sites.iter().all(|s| plain_label(&s.site) == "run_command"));
        let mut kinds =
            vec![site(ResourceKind::Fd(FdKind::Socket), "/usr/bin/git", "f"), site(ResourceKind::Heap, "/usr/lib/git-core/git", "f")];
        make_unique(&mut kinds);
        assert_eq!((kinds[0].site.label.as_str(), kinds[1].site.label.as_str()), ("f", "f"), "labels are unique within a kind");
    }
}
