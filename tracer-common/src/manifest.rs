//! The fixture manifest: expected leaks per scenario. Read by `leaktrace
//! --expect` and by the xtask oracle that checks the fixture with valgrind.

use std::borrow::ToOwned;
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::FdKind;

/// Kinds a leak can have: heap, then every descriptor kind.
pub const KINDS: [&str; 1 + FdKind::ALL.len()] = {
    let mut k = ["heap"; 1 + FdKind::ALL.len()];
    let mut i = 0;
    while i < FdKind::ALL.len() {
        k[i + 1] = FdKind::ALL[i].name();
        i += 1;
    }
    k
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedLeak {
    pub kind: String,
    /// The function that calls the allocator or syscall wrapper.
    pub function: String,
    /// Source file basename.
    pub file: String,
    /// Line of that call.
    pub line: u32,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub iterations: u64,
    pub description: String,
    pub leaks: Vec<ExpectedLeak>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub fixture: String,
    pub driver: String,
    #[serde(default)]
    pub note: String,
    /// The kinds the manifest speaks for (empty: every kind): sites of other
    /// kinds are not compared (a JIT runtime's own heap is no fixture's to list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    pub scenarios: Vec<Scenario>,
}

/// What `--expect` compares a report with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub leaks: Vec<ExpectedLeak>,
    /// The kinds compared; empty: every kind.
    pub kinds: Vec<String>,
}

impl Expectation {
    pub fn covers(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }
}

#[derive(Debug)]
pub enum ManifestError {
    Read { path: String, err: std::io::Error },
    Parse { path: String, err: serde_json::Error },
    UnknownKind { scenario: String, kind: String },
    UnknownScenario(String),
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, err } => write!(f, "cannot read manifest {path}: {err}"),
            Self::Parse { path, err } => write!(f, "malformed manifest {path}: {err}"),
            Self::UnknownKind { scenario, kind } => {
                write!(f, "scenario {scenario}: unknown leak kind `{kind}` (one of {} and listed in `kinds`)", KINDS.join(", "))
            }
            Self::UnknownScenario(name) => write!(f, "no scenario named `{name}` in the manifest"),
        }
    }
}

impl std::error::Error for ManifestError {}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|err| ManifestError::Read { path: path.display().to_string(), err })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_str(text).map_err(|err| ManifestError::Parse { path: origin.to_owned(), err })?;
        if let Some(k) = m.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(ManifestError::UnknownKind { scenario: "(kinds)".to_owned(), kind: k.clone() });
        }
        for s in &m.scenarios {
            let covered = |k: &str| KINDS.contains(&k) && (m.kinds.is_empty() || m.kinds.iter().any(|c| c == k));
            if let Some(l) = s.leaks.iter().find(|l| !covered(&l.kind)) {
                return Err(ManifestError::UnknownKind { scenario: s.name.clone(), kind: l.kind.clone() });
            }
        }
        Ok(m)
    }

    /// The leaks of the named scenarios (all when `scenarios` is empty), one
    /// entry per (kind, function, file, line) with counts and bytes summed.
    pub fn expected(&self, scenarios: &[&str]) -> Result<Vec<ExpectedLeak>, ManifestError> {
        if let Some(bad) = scenarios.iter().find(|n| !self.scenarios.iter().any(|s| s.name == **n)) {
            return Err(ManifestError::UnknownScenario((*bad).to_owned()));
        }
        let mut out: Vec<ExpectedLeak> = Vec::new();
        for s in self.scenarios.iter().filter(|s| scenarios.is_empty() || scenarios.contains(&s.name.as_str())) {
            for l in &s.leaks {
                match out.iter_mut().find(|o| o.kind == l.kind && o.function == l.function && o.file == l.file && o.line == l.line) {
                    Some(o) => {
                        o.count += l.count;
                        o.bytes += l.bytes;
                    }
                    None => out.push(l.clone()),
                }
            }
        }
        Ok(out)
    }

    /// The leaks of the named scenarios (see [`Self::expected`]) and the kinds compared.
    pub fn expectation(&self, scenarios: &[&str]) -> Result<Expectation, ManifestError> {
        Ok(Expectation { leaks: self.expected(scenarios)?, kinds: self.kinds.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"fixture":"net","driver":"net-driver","scenarios":[
        {"name":"a","iterations":3,"description":"","leaks":[
            {"kind":"heap","function":"f","file":"x.c","line":7,"count":3,"bytes":30},
            {"kind":"socket","function":"f","file":"x.c","line":8,"count":3,"bytes":0}]},
        {"name":"b","iterations":2,"description":"","leaks":[
            {"kind":"heap","function":"f","file":"x.c","line":7,"count":2,"bytes":20}]}]}"#;

    #[test]
    fn same_sites_merge_across_scenarios() {
        let m = Manifest::parse(TEXT, "t").unwrap();
        let all = m.expected(&[]).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].count, all[0].bytes), (5, 50));
        let only_b = m.expected(&["b"]).unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].count, 2);
    }

    #[test]
    fn errors_are_clear() {
        let m = Manifest::parse(TEXT, "t").unwrap();
        assert_eq!(m.expected(&["zzz"]).unwrap_err().to_string(), "no scenario named `zzz` in the manifest");
        for kind in ["io_uring", "pidfd", "memfd", "userfaultfd", "other"] {
            assert!(Manifest::parse(&TEXT.replace("\"socket\"", &std::format!("\"{kind}\"")), "t").is_ok(), "{kind}");
        }
        let bad = TEXT.replace("\"socket\"", "\"sock\"");
        assert!(Manifest::parse(&bad, "t").unwrap_err().to_string().contains("unknown leak kind `sock`"));
        assert!(Manifest::parse("{", "m.json").unwrap_err().to_string().starts_with("malformed manifest m.json"));
        assert!(Manifest::load(Path::new("/no/such.json")).unwrap_err().to_string().starts_with("cannot read manifest /no/such.json"));
    }

    #[test]
    fn kinds_scope_what_is_compared() {
        let scoped = TEXT.replacen("\"scenarios\"", "\"kinds\":[\"socket\",\"heap\"],\"scenarios\"", 1);
        let e = Manifest::parse(&scoped, "t").unwrap().expectation(&["a"]).unwrap();
        assert!(e.covers("socket") && e.covers("heap") && !e.covers("pipe"));
        assert!(Manifest::parse(TEXT, "t").unwrap().expectation(&[]).unwrap().covers("pipe"), "no kinds: every kind");
        let narrow = TEXT.replacen("\"scenarios\"", "\"kinds\":[\"socket\"],\"scenarios\"", 1);
        assert!(Manifest::parse(&narrow, "t").unwrap_err().to_string().contains("`heap`"), "a leak of a kind not compared");
        let bogus = TEXT.replacen("\"scenarios\"", "\"kinds\":[\"sock\"],\"scenarios\"", 1);
        assert!(Manifest::parse(&bogus, "t").is_err());
    }

    #[test]
    fn the_fixture_manifest_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/manifest.json");
        let m = Manifest::load(&path).unwrap();
        assert_eq!(m.scenarios.len(), 8);
        let names: std::collections::HashSet<u64> = m.scenarios.iter().map(|s| s.iterations).collect();
        assert_eq!(names.len(), 8, "every scenario has its own iteration count");
    }

    #[test]
    fn the_node_manifest_names_functions_where_they_are_defined() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/node");
        let m = Manifest::load(&dir.join("manifest.json")).unwrap();
        let source = std::fs::read_to_string(dir.join("server.js")).unwrap();
        let e = m.expectation(&["leaky"]).unwrap();
        assert!(!e.covers("heap") && e.covers("socket"));
        assert_eq!(e.leaks.len(), 4, "the three leak classes, and the upstream's side of its leaked connections");
        for l in &e.leaks {
            let at = source.lines().position(|s| s.starts_with(&std::format!("function {}(", l.function)));
            assert_eq!(at.map(|i| i as u32 + 1), Some(l.line), "{} in server.js", l.function);
        }
        assert!(m.expectation(&["fixed"]).unwrap().leaks.is_empty());
    }
}
