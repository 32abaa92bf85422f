//! `--suppress FILE`: sites to ignore, valgrind/LSan style.
//!
//! One rule a line: `function:NAME`, `module:SUBSTRING` or `file:SUBSTRING`;
//! `#` starts a comment. A stack matches when any of its frames matches any rule.

use std::path::Path;

use super::model::StackFrame;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Function(String),
    Module(String),
    File(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressions {
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error("cannot read suppressions {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}:{line}: expected `function:NAME`, `module:TEXT` or `file:TEXT`, found `{text}`")]
    Syntax { path: String, line: usize, text: String },
}

/// Memory the C runtime keeps by design, suppressed unless
/// `--no-default-suppressions`: glibc caches a joined thread's stack with its
/// TLS block (allocated by the dynamic linker) for reuse.
const BUILTIN: &str = "function:_dl_allocate_tls\nfunction:_dl_allocate_tls_storage\n";

impl Suppressions {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN, "built-in suppressions").expect("the built-in rules parse")
    }

    /// Adds another set's rules.
    pub fn extend(&mut self, other: Suppressions) {
        self.rules.extend(other.rules);
    }

    pub fn load(path: &Path) -> Result<Self, SuppressError> {
        let text = std::fs::read_to_string(path).map_err(|err| SuppressError::Read { path: path.display().to_string(), err })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, SuppressError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let rule = match line.split_once(':') {
                Some(("function", v)) if !v.trim().is_empty() => Rule::Function(v.trim().to_owned()),
                Some(("module", v)) if !v.trim().is_empty() => Rule::Module(v.trim().to_owned()),
                Some(("file", v)) if !v.trim().is_empty() => Rule::File(v.trim().to_owned()),
                _ => return Err(SuppressError::Syntax { path: origin.to_owned(), line: i + 1, text: raw.to_owned() }),
            };
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    pub fn matches(&self, stack: &[StackFrame]) -> bool {
        !self.rules.is_empty()
            && stack.iter().any(|f| {
                self.rules.iter().any(|r| match r {
                    Rule::Function(name) => f.function.as_deref() == Some(name.as_str()),
                    Rule::Module(m) => f.module.contains(m.as_str()),
                    Rule::File(p) => f.file.as_deref().is_some_and(|file| file.contains(p.as_str())),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, module: &str) -> StackFrame {
        StackFrame {
            function: Some(function.into()),
            file: Some("/src/a.c".into()),
            line: None,
            module: module.into(),
            address: 0,
            inlined: false,
            inferred: false,
        }
    }

    #[test]
    fn rules_match_function_module_and_file() {
        let s = Suppressions::parse("# known\nfunction: g_type_init\nmodule:libssl\n\nfile:/src/b.c\n", "t").unwrap();
        assert!(s.matches(&[f("x", "/bin/app"), f("g_type_init", "/bin/app")]));
        assert!(s.matches(&[f("x", "/usr/lib/libssl.so.3")]));
        assert!(!s.matches(&[f("x", "/bin/app")]));
        assert!(!Suppressions::default().matches(&[f("x", "/bin/app")]));
    }

    #[test]
    fn builtin_rules_cover_the_thread_cache() {
        let s = Suppressions::builtin();
        assert!(s.matches(&[f("_dl_allocate_tls", "/lib64/ld-linux-x86-64.so.2")]));
        assert!(!s.matches(&[f("main", "/bin/app")]));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let err = Suppressions::parse("function:a\nbogus\n", "supp.txt").unwrap_err();
        assert_eq!(err.to_string(), "supp.txt:2: expected `function:NAME`, `module:TEXT` or `file:TEXT`, found `bogus`");
    }
}
