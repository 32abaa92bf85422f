//! `--suppress FILE`: sites to ignore, valgrind/LSan style.
//!
//! One rule a line: `function:NAME`, `module:SUBSTRING` or `file:SUBSTRING`;
//! `#` starts a comment. A stack matches when any of its frames matches any rule.
//! What is suppressed is counted apart in the report, never silently.

use std::path::Path;

use crate::symbolize::Frame;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Function(String),
    Module(String),
    File(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressions {
    rules: Vec<Rule>,
    /// The built-in rules that are more than one frame (see [`runtime_startup`]).
    startup: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error("cannot read suppressions {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}:{line}: expected `function:NAME`, `module:TEXT` or `file:TEXT`, found `{text}`")]
    Syntax { path: String, line: usize, text: String },
}

/// Memory the runtimes keep by design, suppressed unless
/// `--no-default-suppressions`: glibc caches a joined thread's stack with its
/// TLS block (allocated by the dynamic linker) for reuse; libstdc++'s
/// emergency exception pool (72,704 bytes in every C++ program), allocated by
/// its static initializer; in static binaries, what glibc's own start-up
/// allocates before `main` (the library search paths, the TLS of the main
/// thread).
const BUILTIN: &str = "\
function:_dl_allocate_tls
function:_dl_allocate_tls_storage
function:_GLOBAL__sub_I_eh_alloc.cc
function:_dl_non_dynamic_init
function:__libc_setup_tls
function:_dl_init_paths
function:__libc_init_secure
function:uv__stream_init
";

/// A stack allocated by libstdc++ itself while the dynamic linker runs the
/// libraries' initializers, with no other code on it: the emergency
/// exception pool, recognised even when libstdc++ has no symbols.
fn runtime_startup<'a>(mut stack: impl Iterator<Item = &'a Frame> + Clone) -> bool {
    let base = |f: &Frame| f.module.rsplit('/').next().unwrap_or("").to_owned();
    let in_libstdcxx = stack.clone().next().is_some_and(|f| base(f).starts_with("libstdc++.so"));
    let only_runtime = stack.clone().all(|f| {
        let b = base(f);
        b.starts_with("libstdc++.so") || b.starts_with("ld-linux")
    });
    in_libstdcxx && only_runtime && stack.any(|f| matches!(f.function.as_deref(), Some("_dl_init" | "call_init")))
}

impl Suppressions {
    pub fn builtin() -> Self {
        let mut s = Self::parse(BUILTIN, "built-in suppressions").expect("the built-in rules parse");
        s.startup = true;
        s
    }

    /// Adds another set's rules.
    pub fn extend(&mut self, other: Suppressions) {
        self.rules.extend(other.rules);
        self.startup |= other.startup;
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
        Ok(Self { rules, startup: false })
    }

    /// True when a frame of the stack (innermost first) matches a rule.
    pub fn matches<'a>(&self, stack: impl Iterator<Item = &'a Frame> + Clone) -> bool {
        (self.startup && runtime_startup(stack.clone()))
            || !self.rules.is_empty()
                && stack.clone().any(|f| {
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

    fn f(function: &str, module: &str) -> Frame {
        Frame { module: module.into(), function: Some(function.into()), file: Some("/src/a.c".into()), ..Frame::default() }
    }

    fn m(s: &Suppressions, stack: &[Frame]) -> bool {
        s.matches(stack.iter())
    }

    #[test]
    fn rules_match_function_module_and_file() {
        let s = Suppressions::parse("# known\nfunction: g_type_init\nmodule:libssl\n\nfile:/src/b.c\n", "t").unwrap();
        assert!(m(&s, &[f("x", "/bin/app"), f("g_type_init", "/bin/app")]));
        assert!(m(&s, &[f("x", "/usr/lib/libssl.so.3")]));
        assert!(!m(&s, &[f("x", "/bin/app")]));
        assert!(!m(&Suppressions::default(), &[f("x", "/bin/app")]));
    }

    #[test]
    fn builtin_rules_cover_the_thread_cache_and_runtime_start_up() {
        let s = Suppressions::builtin();
        assert!(m(&s, &[f("_dl_allocate_tls", "/lib64/ld-linux-x86-64.so.2")]));
        assert!(!m(&s, &[f("main", "/bin/app")]));
        let mut pool = f("", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
        pool.function = None;
        let init = f("call_init", "/lib64/ld-linux-x86-64.so.2");
        assert!(m(&s, &[pool.clone(), f("_dl_init", "/lib64/ld-linux-x86-64.so.2")]), "the emergency pool");
        assert!(!m(&s, &[pool.clone(), f("main", "/bin/app")]), "libstdc++ allocating for main is not start-up");
        assert!(!m(&s, &[f("make", "/bin/app"), pool.clone(), init.clone()]), "the program's own static initializers are reported");
        assert!(!m(&s, &[pool, f("lib_ctor", "/opt/libmine.so"), init]), "a library's initializer calling new is reported");
        assert!(m(&s, &[f("_dl_init_paths", "/bin/static"), f("__libc_start_main", "/bin/static")]));
        assert!(!m(&Suppressions::default(), &[f("_dl_init_paths", "/bin/static")]));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let err = Suppressions::parse("function:a\nbogus\n", "supp.txt").unwrap_err();
        assert_eq!(err.to_string(), "supp.txt:2: expected `function:NAME`, `module:TEXT` or `file:TEXT`, found `bogus`");
    }
}
