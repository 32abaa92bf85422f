//! The modules one consumer has opened, by (path, build-id), each parsed once.

use std::collections::HashMap;
use std::path::PathBuf;

use super::module::Module;
use super::Mapping;

type ModuleKey = (PathBuf, Option<Vec<u8>>);

/// The C library and the dynamic linker: named from their symbol tables only.
/// Their full debug information (when installed) costs tens of MiB to parse,
/// for file:line inside glibc that a leak report does not need.
fn is_c_runtime(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("libc.so") || name.starts_with("ld-linux") || name.starts_with("libc-")
}

#[derive(Default)]
pub struct ModuleSet {
    modules: Vec<Option<Module>>,
    index: HashMap<ModuleKey, usize>,
    warnings: Vec<String>,
}

impl ModuleSet {
    /// The module of a mapping, parsed on first use; None when it cannot be read.
    pub fn index_of(&mut self, m: &Mapping) -> Option<usize> {
        let path = m.path.clone()?;
        let key = (path, m.build_id.clone());
        if let Some(&i) = self.index.get(&key) {
            return self.modules[i].as_ref().map(|_| i);
        }
        let module = match Module::load(&key.0, key.1.as_deref(), is_c_runtime(&key.0)) {
            Ok(m) => Some(m),
            Err(e) => {
                self.warnings.push(format!("{e}: its frames are shown as module+offset"));
                None
            }
        };
        let i = self.modules.len();
        self.modules.push(module);
        self.index.insert(key, i);
        self.modules[i].as_ref().map(|_| i)
    }

    pub fn get(&self, i: usize) -> Option<&Module> {
        self.modules.get(i).and_then(Option::as_ref)
    }

    /// Problems met so far (a rebuilt binary, an unreadable module).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
