//! The modules one consumer has opened, each parsed once: by the file the
//! target mapped (device, inode, build-id), not by its path alone.

use std::collections::HashMap;
use std::path::PathBuf;

use super::mapped::FileId;
use super::module::Module;
use super::Mapping;

type ModuleKey = (PathBuf, FileId, Option<Vec<u8>>);

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
        let key = (path, m.file_id, m.build_id.clone());
        if let Some(&i) = self.index.get(&key) {
            return self.modules[i].as_ref().map(|_| i);
        }
        let loaded = match &m.file {
            Some(file) => Module::from_file(&key.0, file.clone()),
            None => Module::load(&key.0, key.2.as_deref()),
        };
        let module = match loaded {
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

    /// Modules whose symbols and DWARF have been read, each once.
    pub fn parsed(&self) -> usize {
        self.modules.iter().flatten().filter(|m| m.is_parsed()).count()
    }
}
