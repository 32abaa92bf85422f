//! A crate's module tree read from its files with syn, and the resolution of
//! a path to the file that defines the item it names.
//!
//! What a module's scope holds: the items it defines (fn, struct, enum,
//! union, trait, type, const, static, macro), its child modules, the names
//! its `use` declarations bring in (those in function bodies counted as the
//! module's) and its glob imports. A name brought in by `use` is followed to
//! where it is defined, so a `pub use` in a `mod.rs` is never the definer.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// How far re-exports and globs are followed before a name counts as foreign.
const MAX_DEPTH: usize = 32;

pub struct Module {
    pub file: usize,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    items: BTreeSet<String>,
    /// (name bound, path as written) of each `use` leaf.
    pub imports: Vec<(String, Vec<String>)>,
    /// Whether each of `imports` is private: a re-export (`pub use`,
    /// `pub(crate) use`) names nothing by itself, only what uses it does.
    pub private: Vec<bool>,
    /// Paths of `use ...::*`.
    pub globs: Vec<Vec<String>>,
    /// The items of an inline module (`mod x { ... }`); a file's are in `Crate::asts`.
    pub inline: Option<Vec<syn::Item>>,
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Module(usize),
    /// An item defined in this file.
    Item(usize),
    /// Nothing of this crate (std, another crate, a local variable).
    Foreign,
}

pub struct Crate {
    /// Paths relative to the source directory.
    pub files: Vec<PathBuf>,
    pub asts: Vec<syn::File>,
    pub modules: Vec<Module>,
    /// The module a file opens.
    pub module_of_file: Vec<usize>,
    /// Lookups done, by (module, name, last segment), and those under way
    /// (`None`: a glob or re-export that leads back to itself names nothing).
    seen: RefCell<HashMap<(usize, String, bool), Option<Target>>>,
}

impl Crate {
    /// The module tree from `root` (`lib.rs`), each file's text given by `read`.
    pub fn load(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Result<Crate, String> {
        let mut c =
            Crate { files: Vec::new(), asts: Vec::new(), modules: Vec::new(), module_of_file: Vec::new(), seen: RefCell::default() };
        c.load_file(root, None, read)?;
        Ok(c)
    }

    fn load_file(&mut self, path: &Path, parent: Option<usize>, read: &dyn Fn(&Path) -> Option<String>) -> Result<usize, String> {
        let text = read(path).ok_or_else(|| format!("{}: cannot read", path.display()))?;
        let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        self.asts.push(ast.clone());
        let m = self.new_module(file, parent, None);
        self.module_of_file.push(m);
        self.fill(m, &ast.items, path, read)?;
        Ok(m)
    }

    fn new_module(&mut self, file: usize, parent: Option<usize>, inline: Option<Vec<syn::Item>>) -> usize {
        let m = Module {
            file,
            parent,
            children: BTreeMap::new(),
            items: BTreeSet::new(),
            imports: Vec::new(),
            private: Vec::new(),
            globs: Vec::new(),
            inline,
        };
        self.modules.push(m);
        self.modules.len() - 1
    }

    fn fill(&mut self, m: usize, items: &[syn::Item], path: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Result<(), String> {
        for item in items {
            let name = match item {
                syn::Item::Mod(x) => {
                    let child = match &x.content {
                        Some((_, inner)) => {
                            let child = self.new_module(self.modules[m].file, Some(m), Some(inner.clone()));
                            self.fill(child, inner, path, read)?;
                            child
                        }
                        None => self.load_file(&child_file(path, x, read), Some(m), read)?,
                    };
                    self.modules[m].children.insert(x.ident.to_string(), child);
                    continue;
                }
                syn::Item::Use(u) => {
                    let module = &mut self.modules[m];
                    flatten(&u.tree, &mut Vec::new(), module);
                    let private = matches!(u.vis, syn::Visibility::Inherited);
                    module.private.resize(module.imports.len(), private);
                    continue;
                }
                syn::Item::Fn(x) => Some(&x.sig.ident),
                syn::Item::Struct(x) => Some(&x.ident),
                syn::Item::Enum(x) => Some(&x.ident),
                syn::Item::Union(x) => Some(&x.ident),
                syn::Item::Trait(x) => Some(&x.ident),
                syn::Item::TraitAlias(x) => Some(&x.ident),
                syn::Item::Type(x) => Some(&x.ident),
                syn::Item::Const(x) => Some(&x.ident),
                syn::Item::Static(x) => Some(&x.ident),
                syn::Item::Macro(x) => x.ident.as_ref(),
                _ => None,
            };
            if let Some(name) = name {
                self.modules[m].items.insert(name.to_string());
            }
            // `use` inside function bodies: counted as the module's.
            let mut uses = BodyUses(&mut self.modules[m]);
            uses.visit_item(item);
        }
        Ok(())
    }

    /// What `segs`, written in module `m`, names. A path's last segment
    /// prefers an item to a module of the same name (`report::verdict(..)`
    /// beside `mod verdict`); the others prefer the module.
    pub fn resolve(&self, m: usize, segs: &[String], depth: usize) -> Target {
        if depth > MAX_DEPTH || segs.is_empty() {
            return Target::Foreign;
        }
        let mut cur = m;
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            match seg.as_str() {
                "crate" if i == 0 => cur = 0,
                "self" => {}
                "super" => match self.modules[cur].parent {
                    Some(p) => cur = p,
                    None => return Target::Foreign,
                },
                "" | "Self" => return Target::Foreign,
                name => match self.lookup(cur, name, last, depth) {
                    Target::Module(x) => cur = x,
                    t => return t,
                },
            }
        }
        Target::Module(cur)
    }

    /// A name in module `m`'s scope, remembered.
    fn lookup(&self, m: usize, name: &str, last: bool, depth: usize) -> Target {
        let key = (m, name.to_owned(), last);
        if let Some(known) = self.seen.borrow().get(&key) {
            return known.unwrap_or(Target::Foreign);
        }
        self.seen.borrow_mut().insert(key.clone(), None);
        let t = self.lookup_anew(m, name, last, depth);
        self.seen.borrow_mut().insert(key, Some(t));
        t
    }

    /// A name in module `m`'s scope: its items and children, then what its
    /// `use`s bring in, then its globs.
    fn lookup_anew(&self, m: usize, name: &str, last: bool, depth: usize) -> Target {
        let module = &self.modules[m];
        let child = module.children.get(name).map(|&c| Target::Module(c));
        let item = module.items.contains(name).then_some(Target::Item(module.file));
        let imported: Vec<Target> = module
            .imports
            .iter()
            .filter(|(bound, _)| bound == name)
            .map(|(_, p)| self.resolve(m, p, depth + 1))
            .filter(|t| *t != Target::Foreign)
            .collect();
        let mut found: Vec<Target> = child.into_iter().chain(item).chain(imported).collect();
        if found.is_empty() {
            for glob in &module.globs {
                if let Target::Module(g) = self.resolve(m, glob, depth + 1) {
                    let t = self.lookup(g, name, last, depth + 1);
                    if t != Target::Foreign {
                        found.push(t);
                        break;
                    }
                }
            }
        }
        let is_module = |t: &&Target| matches!(t, Target::Module(_));
        let preferred = if last { found.iter().find(|t| !is_module(t)) } else { found.iter().find(is_module) };
        preferred.or(found.first()).copied().unwrap_or(Target::Foreign)
    }
}

/// The file of `mod x;` declared in `path`: `#[path]` beside the file, else
/// `x.rs` or `x/mod.rs` in the file's directory (`lib.rs`, `mod.rs`) or in
/// the directory named after it.
fn child_file(path: &Path, decl: &syn::ItemMod, read: &dyn Fn(&Path) -> Option<String>) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    for attr in &decl.attrs {
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if nv.path.is_ident("path") {
                if let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value {
                    return dir.join(s.value());
                }
            }
        }
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let base = if matches!(stem, "lib" | "main" | "mod") { dir.to_path_buf() } else { dir.join(stem) };
    let name = decl.ident.to_string();
    let flat = base.join(format!("{name}.rs"));
    if read(&flat).is_some() {
        flat
    } else {
        base.join(name).join("mod.rs")
    }
}

/// Every leaf of a `use` tree, as imports and globs of `m`.
fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, m: &mut Module) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, m);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            if let Some(last) = prefix.last() {
                m.imports.push((last.clone(), prefix.clone()));
            }
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            m.imports.push((n.ident.to_string(), path));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            m.imports.push((r.rename.to_string(), path));
        }
        syn::UseTree::Glob(_) => m.globs.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, m);
            }
        }
    }
}

/// `use` declarations inside an item's function bodies.
struct BodyUses<'a>(&'a mut Module);

impl<'ast> Visit<'ast> for BodyUses<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        flatten(&u.tree, &mut Vec::new(), self.0);
        self.0.private.resize(self.0.imports.len(), true);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
}
