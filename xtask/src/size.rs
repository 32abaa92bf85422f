//! The size rules of the codebase: no source file over 400 lines, no function
//! over 80. Functions are found by indentation (rustfmt's layout): a line
//! opening `fn NAME` and the first later line at the same indentation that
//! closes it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub const MAX_FILE_LINES: usize = 400;
pub const MAX_FN_LINES: usize = 80;

/// (line of the `fn`, length) of every function in `text` longer than the limit.
pub fn long_functions(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(pos) = trimmed.find("fn ") else { continue };
        let head = &trimmed[..pos];
        let is_fn = head
            .split_whitespace()
            .all(|w| matches!(w, "pub" | "pub(crate)" | "pub(super)" | "const" | "unsafe" | "async" | "extern" | "\"C\""));
        if !is_fn || trimmed.trim_end().ends_with(';') {
            continue;
        }
        let end = lines[i + 1..].iter().position(|l| l.starts_with(indent) && l[indent.len()..].starts_with('}'));
        if let Some(end) = end {
            let len = end + 2;
            if len > MAX_FN_LINES {
                let name = trimmed[pos + 3..].split(['(', '<']).next().unwrap_or("").to_owned();
                out.push((i + 1, len, name));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

pub fn check(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    for krate in ["tracer-common", "tracer-ebpf", "tracer-user", "xtask"] {
        rust_files(&root.join(krate), &mut files);
    }
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let shown = f.strip_prefix(root).unwrap_or(&f).display().to_string();
        let n = text.lines().count();
        if n > MAX_FILE_LINES {
            problems.push(format!("{shown}: {n} lines (at most {MAX_FILE_LINES})"));
        }
        for (line, len, name) in long_functions(&text) {
            problems.push(format!("{shown}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})"));
        }
    }
    if !problems.is_empty() {
        bail!("size rules broken:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_long_functions_by_indentation() {
        let long = format!("impl X {{\n    pub fn big(&self) {{\n{}    }}\n\n    fn small() {{}}\n}}\n", "        x();\n".repeat(90));
        let found = long_functions(&long);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].1, found[0].2.as_str()), (2, 92, "big"));
        assert!(long_functions("fn f() {\n}\nfn g();\n").is_empty());
    }
}
