// PLACEHOLDER written by the lead so the workspace builds while the fixture
// manifest is being written. The fixture's manifest.rs replaces this file.
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedLeak { pub kind: String, pub function: String, pub file: String, pub line: u32, pub count: u64, pub bytes: u64 }
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario { pub name: String, pub iterations: u64, pub description: String, pub leaks: Vec<ExpectedLeak> }
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest { pub fixture: String, pub driver: String, pub scenarios: Vec<Scenario> }
#[derive(Debug)]
pub struct ManifestError(pub String);
impl std::fmt::Display for ManifestError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
impl std::error::Error for ManifestError {}
impl Manifest {
    pub fn load(path: &std::path::Path) -> Result<Self, ManifestError> {
        let t = std::fs::read_to_string(path).map_err(|e| ManifestError(e.to_string()))?;
        serde_json::from_str(&t).map_err(|e| ManifestError(e.to_string()))
    }
    pub fn expected(&self, _s: &[&str]) -> Result<Vec<ExpectedLeak>, ManifestError> { Ok(self.scenarios.iter().flat_map(|s| s.leaks.clone()).collect()) }
}
