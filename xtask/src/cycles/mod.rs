//! No cycle between the files of `tracer-user/src`: the lint step that
//! keeps its layers layered.
//!
//! The graph's nodes are the files of the library's module tree (from
//! `lib.rs`, `#[path]` followed); there is an edge A → B when A names an
//! item that B defines: through a `use` (at the top or in a function body),
//! a qualified path (`crate::x::Item`, `super::Item`, `self::m::Item`,
//! `module::item` through an imported module) or a name a glob brings in,
//! in code, types, patterns and macro arguments. A name re-exported by
//! `pub use` is followed to the file that defines it, and neither the
//! re-export itself nor a `mod` declaration is an edge: a `mod.rs` that
//! declares a child and passes its items on does not depend on it. Methods
//! called on a value name nothing, and make no edge.

mod modules;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use anyhow::{bail, Result};
use modules::{Crate, Target};
use syn::visit::Visit;

/// (from, to) → the paths that make the edge.
pub type Edges = BTreeMap<(usize, usize), BTreeSet<String>>;

/// Every edge between two files of `c`.
pub fn edges(c: &Crate) -> Edges {
    let mut out = Edges::new();
    for (m, module) in c.modules.iter().enumerate() {
        let private = |i: usize| module.private.get(i).copied().unwrap_or(true);
        let mut paths: Vec<Vec<String>> =
            module.imports.iter().enumerate().filter(|&(i, _)| private(i)).map(|(_, (_, p))| p.clone()).collect();
        paths.extend(module.globs.iter().cloned());
        let mut code = Paths::default();
        match &module.inline {
            Some(items) => items.iter().for_each(|i| code.visit_item(i)),
            None => code.visit_file(&c.asts[module.file]),
        }
        // A bare name a private `use` binds: that `use` is already counted.
        let imported_privately = |name: &str| module.imports.iter().enumerate().any(|(i, (bound, _))| bound == name && private(i));
        paths.extend(code.0.into_iter().filter(|p| p.len() > 1 || !imported_privately(&p[0])));
        for p in paths {
            if let Target::Item(f) = c.resolve(m, &p, 0) {
                if f != module.file {
                    out.entry((module.file, f)).or_default().insert(p.join("::"));
                }
            }
        }
    }
    out
}

/// The paths named in a module's own items (not its inline children's).
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl<'ast> Visit<'ast> for Paths {
    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.0.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}

    /// A macro's arguments: as expressions where they parse so, else every
    /// `a::b` sequence in its tokens.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        match m.parse_body_with(parser) {
            Ok(exprs) => exprs.iter().for_each(|e| self.visit_expr(e)),
            Err(_) => token_paths(m.tokens.clone(), &mut self.0),
        }
    }
}

/// Sequences `a::b::c` in a token stream, at any depth.
fn token_paths(tokens: proc_macro2::TokenStream, out: &mut Vec<Vec<String>>) {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Group(g) => token_paths(g.stream(), out),
            TokenTree::Ident(id) => {
                let mut path = vec![id.to_string()];
                while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(next))) =
                    (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    path.push(next.to_string());
                    i += 3;
                }
                if path.len() > 1 {
                    out.push(path);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The strongly connected components of more than one file (Tarjan's).
pub fn components(n: usize, edges: &Edges) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        next: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        out: &'a mut Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.counter);
            self.low[v] = self.counter;
            self.counter += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for w in self.next[v].clone() {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(i) if self.on_stack[w] => self.low[v] = self.low[v].min(i),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut next = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        next[a].push(b);
    }
    let mut out = Vec::new();
    let mut t =
        Tarjan { next, index: vec![None; n], low: vec![0; n], on_stack: vec![false; n], stack: Vec::new(), counter: 0, out: &mut out };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    out.sort();
    out
}

/// A shortest cycle through the component's first file, in order.
pub fn shortest_cycle(scc: &[usize], edges: &Edges) -> Vec<usize> {
    let start = scc[0];
    let mut from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(_, w) in edges.range((v, 0)..=(v, usize::MAX)).map(|(k, _)| k) {
            if w == start {
                let mut path = vec![v];
                while let Some(&p) = from.get(path.last().unwrap()) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if scc.contains(&w) && !from.contains_key(&w) && w != start {
                from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

/// Each cycle as one line: `a.rs → b.rs (the paths) → a.rs (...)`, then
/// the other files of its component.
pub fn describe(c: &Crate, edges: &Edges) -> Vec<String> {
    let name = |f: usize| c.files[f].display().to_string();
    components(c.files.len(), edges)
        .iter()
        .map(|scc| {
            let cycle = shortest_cycle(scc, edges);
            let mut line = name(cycle[0]);
            for (i, &a) in cycle.iter().enumerate() {
                let b = cycle[(i + 1) % cycle.len()];
                let how: Vec<&str> = edges[&(a, b)].iter().map(String::as_str).collect();
                line += &format!(" → {} ({})", name(b), how.join(", "));
            }
            let rest: Vec<String> = scc.iter().filter(|f| !cycle.contains(f)).map(|&f| name(f)).collect();
            if !rest.is_empty() {
                line += &format!("; in the same knot: {}", rest.join(", "));
            }
            line
        })
        .collect()
}

/// The cycles of the crate whose root is `src/lib.rs`, described.
pub fn find(src: &Path) -> Result<Vec<String>> {
    let read = |p: &Path| std::fs::read_to_string(src.join(p)).ok();
    let c = Crate::load(Path::new("lib.rs"), &read).map_err(anyhow::Error::msg)?;
    Ok(describe(&c, &edges(&c)))
}

/// Fails with every cycle between the files of `tracer-user/src`.
pub fn check(root: &Path) -> Result<()> {
    let found = find(&root.join("tracer-user/src"))?;
    if !found.is_empty() {
        bail!("cycles between the files of tracer-user/src:\n  {}", found.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
