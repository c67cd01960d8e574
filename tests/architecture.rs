//! The pipeline's dependency rules, checked on the source (docs/architecture.md):
//!
//! 1. a module may use only modules of its own stage or of earlier stages;
//! 2. within a stage, no files use each other in a cycle (a → b → a, or longer);
//! 3. unsafe code is written in `train/kernels.rs` only: `lib.rs` denies it, and the one
//!    `#[allow(unsafe_code)]` is that on `mod kernels` in `train/mod.rs`.
//!
//! Every path in code counts (comments and string literals are not read): `use` items, grouped
//! and spread over several lines, and paths in expressions, whether they start at `crate::`,
//! `super::`, `self::`, a child module or a name a `use` brought in. A path that reaches an
//! item through a re-export (`pub use`) counts as a use of the file that defines the item; the
//! re-export itself is not a use. Violations name the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Stages in pipeline order; a module at index i may use stages 0..=i.
const STAGES: [&[&str]; 10] = [
    &["error", "provenance", "runtime", "testing"],
    &["experiment"],
    &["data"],
    &["model"],
    &["objective"],
    &["eval"],
    &["train"],
    &["store"],
    &["analysis"],
    &["sweep", "score"],
];

fn stage_of(module: &str) -> Option<usize> {
    STAGES.iter().position(|s| s.contains(&module))
}

/// A module's path from the crate root: `["train", "batched", "optim"]` (`[]`: the root).
type ModPath = Vec<String>;

/// One use of a path in a file.
struct Use {
    /// The line of the path's last segment.
    line: usize,
    /// The path from the crate root, items included: `["data", "Pair"]`.
    path: Vec<String>,
    /// A `pub use` (a re-export): not a use of its target by this file.
    reexport: bool,
}

struct File {
    /// Shown in messages: `src/train/autograd.rs`.
    name: String,
    uses: Vec<Use>,
    /// Names a `use` of this file brings into scope, and the path each stands for.
    imports: BTreeMap<String, Vec<String>>,
}

/// The library's files, by module path.
struct Crate {
    files: BTreeMap<ModPath, File>,
}

/// The module path of a library file (`src/eval/stats.rs` → `["eval", "stats"]`,
/// `src/train/batched/mod.rs` → `["train", "batched"]`); `None` for the binary's files.
fn module_path(rel: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_str().unwrap().to_string()).collect();
    if parts.len() == 1 && ["main.rs", "cli.rs"].contains(&parts[0].as_str()) {
        return None;
    }
    let last = parts.pop().unwrap();
    if last != "mod.rs" && last != "lib.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    Some(parts)
}

/// The source with comments, string literals and char literals blanked: the same length in
/// chars and the same line breaks, so positions still give line numbers.
fn code_only(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let at = |k: usize| s.get(i + k).copied().unwrap_or('\0');
        if at(0) == '/' && at(1) == '/' {
            let end = (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len());
            blank(&mut out, i, end);
            i = end;
        } else if at(0) == '/' && at(1) == '*' {
            let (mut depth, mut j) = (1, i + 2);
            while j < s.len() && depth > 0 {
                if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 1;
                } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            blank(&mut out, i, j);
            i = j;
        } else if at(0) == 'r' && (at(1) == '"' || at(1) == '#') && (i == 0 || !ident_char(s[i - 1])) {
            // A raw string r"…" or r#"…"#: it ends at a quote followed by as many #s.
            let hashes = (1..).take_while(|&k| at(k) == '#').count();
            if at(1 + hashes) != '"' {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let body = i + 2 + hashes;
            let rest: String = s[body..].iter().collect();
            let end = rest.find(&close).map_or(s.len(), |k| body + rest[..k].chars().count() + close.len());
            blank(&mut out, i + 1, end);
            i = end;
        } else if at(0) == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j);
            i = j + 1;
        } else if at(0) == '\'' && (at(1) == '\\' || at(2) == '\'') {
            // A char literal ('{', '\n', '\''); a lifetime ('a) has no closing quote.
            let end = if at(1) == '\\' {
                (i + 3..s.len()).find(|&j| s[j] == '\'').unwrap_or(s.len())
            } else {
                i + 2
            };
            blank(&mut out, i + 1, end);
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A cursor over blanked code.
struct Cursor<'a> {
    s: &'a [char],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let t: Vec<char> = token.chars().collect();
        if self.s[self.i..].starts_with(&t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    /// A word after `pub`'s `(`, or `as`: the token itself, not a prefix of a longer name.
    fn eat_word(&mut self, word: &str) -> bool {
        let start = self.i;
        if self.eat(word) && self.s.get(self.i).is_none_or(|&c| !ident_char(c)) {
            return true;
        }
        self.i = start;
        false
    }

    /// An identifier, or the glob `*`, and where it starts.
    fn ident(&mut self) -> Option<(String, usize)> {
        self.skip_ws();
        let start = self.i;
        if self.s.get(self.i) == Some(&'*') {
            self.i += 1;
        } else {
            while self.i < self.s.len() && ident_char(self.s[self.i]) {
                self.i += 1;
            }
        }
        (self.i > start).then(|| (self.s[start..self.i].iter().collect(), start))
    }

    /// A use tree after `use ` (or a path after its first segment's `::`): every path it
    /// names, each with the position of its last segment and the name it binds (`as`).
    fn tree(&mut self) -> Vec<(Vec<String>, usize, String)> {
        if self.eat("{") {
            let mut out = Vec::new();
            while !self.eat("}") {
                if self.i >= self.s.len() {
                    break;
                }
                out.extend(self.tree());
                self.eat(",");
            }
            return out;
        }
        let Some((name, at)) = self.ident() else { return Vec::new() };
        if self.eat("::") {
            let mut subs = self.tree();
            if subs.is_empty() {
                // `x::<T>` (a turbofish) ends the path at x.
                return vec![(vec![name.clone()], at, name)];
            }
            for (p, _, _) in &mut subs {
                p.insert(0, name.clone());
            }
            return subs;
        }
        let bound =
            if self.eat_word("as") { self.ident().map_or(name.clone(), |a| a.0) } else { name.clone() };
        vec![(vec![name], at, bound)]
    }
}

/// What `module` (written in `file`) makes of a path's first segments: the path from the crate
/// root, or `None` for another crate's path.
fn absolute(
    path: &[String],
    module: &[String],
    file: &[String],
    children: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String>;
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base = Vec::new();
            rest = &path[1..];
        }
        "self" => {
            base = module.to_vec();
            rest = &path[1..];
        }
        "super" => {
            base = module.to_vec();
            while rest.first().is_some_and(|p| p == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        name if children.contains(name) => base = file.to_vec(),
        _ => return None,
    }
    // `use x::{self}` names x itself.
    let rest: Vec<String> = rest.iter().filter(|p| *p != "self").cloned().collect();
    base.extend(rest);
    Some(base)
}

impl Crate {
    fn from_sources(sources: &[(String, String)]) -> Crate {
        let mut files = BTreeMap::new();
        for (rel, src) in sources {
            let Some(module) = module_path(Path::new(rel)) else { continue };
            files.insert(module.clone(), scan(&format!("src/{rel}"), &module, src));
        }
        Crate { files }
    }

    fn read(src: &Path) -> Crate {
        let mut paths = Vec::new();
        rust_files(src, &mut paths);
        paths.sort();
        let sources: Vec<(String, String)> = paths
            .iter()
            .map(|p| {
                let rel = p.strip_prefix(src).unwrap().to_str().unwrap().to_string();
                (rel, std::fs::read_to_string(p).unwrap())
            })
            .collect();
        Crate::from_sources(&sources)
    }

    /// The file that defines what `path` names: the deepest module on it, followed through
    /// the imports of that module's file (re-exports and private `use`s alike).
    fn resolve(&self, path: &[String]) -> ModPath {
        let mut path = path.to_vec();
        for _ in 0..16 {
            let k = (0..=path.len()).rev().find(|&k| self.files.contains_key(&path[..k])).unwrap_or(0);
            let module = path[..k].to_vec();
            let Some(target) = path.get(k).and_then(|name| self.files.get(&module)?.imports.get(name)) else {
                return module;
            };
            let mut next = target.clone();
            next.extend_from_slice(&path[k + 1..]);
            if next == path {
                return module;
            }
            path = next;
        }
        path
    }
}

/// A file's uses and imports. Inline modules (`mod tests { … }`) shift `super` by one level.
fn scan(name: &str, module: &[String], src: &str) -> File {
    let code: Vec<char> = code_only(src).chars().collect();
    let line_of = |pos: usize| code[..pos].iter().filter(|&&c| c == '\n').count() + 1;
    let word_at = |i: usize, w: &str| {
        let w: Vec<char> = w.chars().collect();
        code[i..].starts_with(&w)
            && (i == 0 || !ident_char(code[i - 1]))
            && code.get(i + w.len()).is_none_or(|&c| !ident_char(c))
    };
    // The code just before a position, whitespace trimmed (what a keyword follows).
    let before = |i: usize| -> String {
        let text: String = code[i.saturating_sub(80)..i].iter().collect();
        text.trim_end().to_string()
    };
    // Child modules (`mod x;`) and inline modules (`mod x { … }`, with their extent).
    let mut children = BTreeSet::new();
    let mut inline: Vec<(usize, usize, String)> = Vec::new();
    for i in 0..code.len() {
        if !word_at(i, "mod") {
            continue;
        }
        let mut c = Cursor { s: &code, i: i + 3 };
        let Some((child, _)) = c.ident() else { continue };
        if c.eat(";") {
            children.insert(child);
        } else if c.eat("{") {
            let (mut depth, mut j) = (1, c.i);
            while j < code.len() && depth > 0 {
                depth += match code[j] {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                j += 1;
            }
            inline.push((c.i, j, child));
        }
    }
    let module_at = |pos: usize| {
        let mut m = module.to_vec();
        m.extend(inline.iter().filter(|(a, b, _)| (*a..*b).contains(&pos)).map(|x| x.2.clone()));
        m
    };
    let mut uses = Vec::new();
    let mut imports = BTreeMap::new();
    let mut in_use: Vec<(usize, usize)> = Vec::new();
    for i in 0..code.len() {
        if !word_at(i, "use") {
            continue;
        }
        // `pub use`, `pub(crate) use`, `pub(in a::b) use`: a re-export.
        let before = before(i);
        let before = match before.strip_suffix(')') {
            Some(b) => b.rfind('(').map_or(b, |k| &b[..k]).trim_end(),
            None => &before,
        };
        let reexport = before.ends_with("pub") && !before[..before.len() - 3].ends_with(ident_char);
        let mut c = Cursor { s: &code, i: i + 3 };
        let tree = c.tree();
        in_use.push((i, c.i));
        let here = module_at(i);
        for (path, at, bound) in tree {
            let Some(abs) = absolute(&path, &here, module, &children) else { continue };
            if bound != "*" && here.len() == module.len() {
                // `use a::b::{self}` binds b.
                let bound = if bound == "self" { abs.last().cloned().unwrap_or(bound) } else { bound };
                imports.insert(bound, abs.clone());
            }
            uses.push(Use { line: line_of(at), path: abs, reexport });
        }
    }
    // Paths in expressions and types: `crate::`, `super::`, `self::`, a child module's or an
    // imported name's, not inside a `use` and not a visibility (`pub(in crate::x)`).
    const ROOTS: [&str; 3] = ["crate", "super", "self"];
    for i in 0..code.len() {
        if !ident_char(code[i]) || (i > 0 && (ident_char(code[i - 1]) || code[i - 1] == ':')) {
            continue;
        }
        if in_use.iter().any(|(a, b)| (*a..*b).contains(&i)) {
            continue;
        }
        let mut c = Cursor { s: &code, i };
        let Some((first, _)) = c.ident() else { continue };
        let known =
            ROOTS.contains(&first.as_str()) || children.contains(&first) || imports.contains_key(&first);
        if !known || !c.eat("::") {
            continue;
        }
        let visibility = before(i).strip_suffix("in").is_some_and(|b| b.trim_end().ends_with('('));
        if visibility {
            continue;
        }
        for (mut path, at, _) in c.tree() {
            path.insert(0, first.clone());
            let abs = match imports.get(&first).filter(|_| !ROOTS.contains(&first.as_str())) {
                Some(imported) => Some(imported.iter().chain(&path[1..]).cloned().collect()),
                None => absolute(&path, &module_at(i), module, &children),
            };
            if let Some(abs) = abs {
                uses.push(Use { line: line_of(at), path: abs, reexport: false });
            }
        }
    }
    File { name: name.to_string(), uses, imports }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Uses of a later stage, and paths that name no module: one message each.
fn layering_violations(krate: &Crate) -> (Vec<String>, usize) {
    let mut violations = Vec::new();
    let mut checked = 0;
    for (module, file) in &krate.files {
        let Some(top) = module.first() else { continue }; // the crate root
        let own = stage_of(top)
            .unwrap_or_else(|| panic!("{}: module `{top}` has no stage in tests/architecture.rs", file.name));
        for u in &file.uses {
            checked += 1;
            let target = krate.resolve(&u.path);
            let Some(used) = target.first() else {
                violations.push(format!(
                    "{}:{}: `crate::{}` is no module",
                    file.name,
                    u.line,
                    u.path.join("::")
                ));
                continue;
            };
            let stage = stage_of(used).expect("every top module has a stage");
            if stage > own {
                violations.push(format!(
                    "{}:{}: `{top}` (stage {own}) uses `crate::{}` (in `{used}`, stage {stage}), a later stage",
                    file.name,
                    u.line,
                    u.path.join("::")
                ));
            }
        }
    }
    (violations, checked)
}

/// Strongly connected components of a directed graph (Tarjan's algorithm), each a list of
/// nodes; every node is in one.
fn components(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        succ: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.succ[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort();
                self.out.push(comp);
            }
        }
    }
    let n = succ.len();
    let mut t = Tarjan {
        succ,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// Where a file sits: its directories under src/, then its name
/// (`src/train/batched/mod.rs` → `["train", "batched", "mod.rs"]`).
fn location(file: &File) -> Vec<String> {
    file.name.trim_start_matches("src/").split('/').map(str::to_string).collect()
}

/// Cycles among the entries of one directory (its files, `mod.rs` among them, and its
/// subdirectories, each standing for every file below it): one message for each set of
/// entries that use each other, naming one cycle through them and a use for each step on it
/// (`src/train/: autograd.rs → batched/ → autograd.rs (src/train/autograd.rs:9 uses batched/;
/// …)`). A cycle of files of one directory is one of these; so is one of files in different
/// directories, at the directory that holds both (and across stages, at src/, were a stage to
/// use a later one).
fn cycles(krate: &Crate) -> Vec<String> {
    // (directory, entry) → (directory, entry) it uses, with the first such use as file:line.
    type Node = (Vec<String>, String);
    let mut steps: BTreeMap<(Node, Node), String> = BTreeMap::new();
    for (module, file) in &krate.files {
        let from = location(file);
        for u in file.uses.iter().filter(|u| !u.reexport) {
            let target = krate.resolve(&u.path);
            let Some(to) = krate.files.get(&target).filter(|_| target != *module).map(location) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let entry = |loc: &[String]| {
                let mut e = loc[common].clone();
                if common + 1 < loc.len() {
                    e.push('/');
                }
                e
            };
            let dir = from[..common].to_vec();
            steps
                .entry(((dir.clone(), entry(&from)), (dir, entry(&to))))
                .or_insert_with(|| format!("{}:{}", file.name, u.line));
        }
    }
    let nodes: Vec<&Node> =
        steps.keys().flat_map(|(a, b)| [a, b]).collect::<BTreeSet<_>>().into_iter().collect();
    let index_of = |n: &Node| nodes.binary_search(&n).unwrap();
    let mut succ = vec![Vec::new(); nodes.len()];
    for (a, b) in steps.keys() {
        succ[index_of(a)].push(index_of(b));
    }
    let mut out = Vec::new();
    for comp in components(&succ).into_iter().filter(|c| c.len() > 1) {
        // The shortest cycle through the component's first entry (breadth-first, inside it).
        let start = comp[0];
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = start;
        'search: while let Some(v) = queue.pop_front() {
            for &w in succ[v].iter().filter(|w| comp.contains(w)) {
                if w == start {
                    last = v;
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                    e.insert(v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = vec![last];
        while let Some(&p) = prev.get(path.last().unwrap()) {
            path.push(p);
        }
        path.reverse();
        path.push(start);
        let names: Vec<&str> = path.iter().map(|&v| nodes[v].1.as_str()).collect();
        let uses: Vec<String> = path
            .windows(2)
            .map(|w| format!("{} uses {}", steps[&(nodes[w[0]].clone(), nodes[w[1]].clone())], nodes[w[1]].1))
            .collect();
        let dir: String = nodes[start].0.iter().map(|d| format!("{d}/")).collect();
        let mut message = format!("src/{dir}: {} ({})", names.join(" → "), uses.join("; "));
        if comp.len() + 1 > path.len() {
            let all: Vec<&str> = comp.iter().map(|&v| nodes[v].1.as_str()).collect();
            message.push_str(&format!("; all entries that use each other: {}", all.join(", ")));
        }
        out.push(message);
    }
    out
}

#[test]
fn no_stage_uses_a_later_one() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let (violations, checked) = layering_violations(&krate);
    assert!(checked > 200, "the scan found only {checked} crate paths");
    assert!(violations.is_empty(), "imports against the pipeline:\n{}", violations.join("\n"));
}

#[test]
fn no_files_of_a_stage_use_each_other_in_a_cycle() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let found = cycles(&krate);
    assert!(found.is_empty(), "files that use each other in a cycle:\n{}", found.join("\n"));
}

/// Unsafe code outside `train/kernels.rs`, one message each (`file:line: what`): the word
/// `unsafe` in code of any other file, an `unsafe_code` lint attribute other than `lib.rs`'s
/// `#![deny(unsafe_code)]` and `#[allow(unsafe_code)] mod kernels;` in `train/mod.rs`, or
/// that deny missing. `sources` are (path under `src/`, text).
fn unsafe_outside_kernels(sources: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut denied = false;
    for (rel, src) in sources {
        let code: Vec<char> = code_only(src).chars().collect();
        let squeezed = |range: &[char]| range.iter().filter(|c| !c.is_whitespace()).collect::<String>();
        let mut i = 0;
        while i < code.len() {
            if !ident_char(code[i]) || (i > 0 && ident_char(code[i - 1])) {
                i += 1;
                continue;
            }
            let end = (i..code.len()).find(|&j| !ident_char(code[j])).unwrap_or(code.len());
            let word: String = code[i..end].iter().collect();
            let line = code[..i].iter().filter(|&&c| c == '\n').count() + 1;
            let (before, after) =
                (squeezed(&code[i.saturating_sub(40)..i]), squeezed(&code[end..(end + 400).min(code.len())]));
            match word.as_str() {
                "unsafe" if rel != "train/kernels.rs" => out.push(format!("src/{rel}:{line}: unsafe code")),
                "unsafe_code"
                    if rel == "lib.rs" && before.ends_with("#![deny(") && after.starts_with(")]") =>
                {
                    denied = true
                }
                "unsafe_code"
                    if rel == "train/mod.rs"
                        && before.ends_with("#[allow(")
                        && after.starts_with(")]modkernels;") => {}
                "unsafe_code" => out.push(format!("src/{rel}:{line}: an unsafe_code lint attribute")),
                _ => {}
            }
            i = end;
        }
    }
    if !denied {
        out.push("src/lib.rs: no #![deny(unsafe_code)]".into());
    }
    out
}

#[test]
fn unsafe_code_is_written_in_the_kernels_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let sources: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            (p.strip_prefix(&src).unwrap().to_str().unwrap().to_string(), std::fs::read_to_string(p).unwrap())
        })
        .collect();
    assert!(sources.iter().any(|(rel, src)| rel == "train/kernels.rs" && src.contains("unsafe fn")));
    let found = unsafe_outside_kernels(&sources);
    assert!(found.is_empty(), "unsafe code outside train/kernels.rs:\n{}", found.join("\n"));
}

/// The allowed attributes pass (comments and strings are not code); an unsafe block
/// elsewhere, another allow, and a missing deny are each found.
#[test]
fn unsafe_code_outside_the_kernels_is_found() {
    let case = |files: &[(&str, &str)]| {
        unsafe_outside_kernels(&files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>())
    };
    let lib = ("lib.rs", "#![deny(unsafe_code)]\npub mod train;\n");
    let train = (
        "train/mod.rs",
        "mod batched;\n#[allow(unsafe_code)] // a comment as long as the one in train/mod.rs, which blanks to spaces\nmod kernels;\n",
    );
    let kernels = ("train/kernels.rs", "unsafe fn f() {}\npub fn g() { unsafe { f() } }\n");
    let quiet = ("train/batched/mod.rs", "// an unsafe word in a comment\nconst S: &str = \"unsafe\";\n");
    assert_eq!(case(&[lib, train, kernels, quiet]), Vec::<String>::new());
    let block = ("train/batched/mod.rs", "fn f(p: *const f32) -> f32 {\n    unsafe { *p }\n}\n");
    assert_eq!(case(&[lib, train, kernels, block]), ["src/train/batched/mod.rs:2: unsafe code"]);
    let allow =
        ("train/mod.rs", "#[allow(unsafe_code)]\nmod batched;\n#[allow(unsafe_code)]\nmod kernels;\n");
    assert_eq!(case(&[lib, allow, kernels]), ["src/train/mod.rs:1: an unsafe_code lint attribute"]);
    assert_eq!(
        case(&[("lib.rs", "pub mod train;\n"), train, kernels]),
        ["src/lib.rs: no #![deny(unsafe_code)]"]
    );
}

fn synthetic(files: &[(&str, &str)]) -> Crate {
    Crate::from_sources(&files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>())
}

/// The scanner reads grouped `use` lists over several lines, `super` and `self` paths, paths in
/// expressions, and re-exports, and reads no comment or string.
#[test]
fn paths_are_found_in_code_only() {
    let krate = synthetic(&[
        ("lib.rs", "pub mod data;\npub mod eval;\npub mod store;\npub use error::Result;\nmod error;"),
        ("error.rs", "pub type Result<T> = std::result::Result<T, ()>;"),
        ("data/mod.rs", "mod pair;\nmod graph;\npub use pair::Pair;\n"),
        ("data/pair.rs", "pub struct Pair;\n"),
        (
            "data/graph.rs",
            "use crate::{\n    error::Result,\n    store::{\n        Store as S, //\n    },\n};\nuse super::Pair;\n\
             // crate::eval::x\nconst T: &str = \"crate::eval::y\";\nfn f() -> crate::Result<()> { let _ = '{'; super::pair::Pair; Ok(()) }\n\
             pub(in crate::data) fn g() {}\n",
        ),
        ("eval/mod.rs", ""),
        ("store/mod.rs", "pub struct Store;"),
    ]);
    let graph = &krate.files[&vec!["data".to_string(), "graph".to_string()]];
    let uses: Vec<(usize, String)> = graph.uses.iter().map(|u| (u.line, u.path.join("::"))).collect();
    assert_eq!(
        uses,
        [
            (2, "error::Result".to_string()),
            (4, "store::Store".to_string()),
            (7, "data::Pair".to_string()),
            (10, "Result".to_string()),
            (10, "data::pair::Pair".to_string()),
        ]
    );
    assert_eq!(krate.resolve(&["data".into(), "Pair".into()]), ["data", "pair"]);
    assert_eq!(krate.resolve(&["Result".into()]), ["error"]);
    let (violations, _) = layering_violations(&krate);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("src/data/graph.rs:4: `data` (stage 2) uses `crate::store::Store`"));
    // In an inline module `super` is the file's own module.
    let k = synthetic(&[("data/mod.rs", "mod a;"), ("data/a.rs", "mod tests {\n use super::super::b;\n}")]);
    assert_eq!(k.files[&vec!["data".to_string(), "a".to_string()]].uses[0].path, ["data", "b"]);
}

/// Two files that use each other, through a re-export, and three in a ring, are cycles; a parent
/// that re-exports a child using an item of the parent, and uses across stages, are not.
#[test]
fn cycles_are_found() {
    let krate = synthetic(&[
        ("data/mod.rs", "mod graph;\nmod preferences;\npub use preferences::Pair;\npub struct Split;"),
        ("data/graph.rs", "use crate::data::Pair;\npub enum Kind {}"),
        ("data/preferences.rs", "pub struct Pair;\nstruct P { k: super::graph::Kind, s: super::Split }"),
        ("train/mod.rs", "mod a;\nmod b;\nmod c;\npub use a::A;\npub struct Engine;"),
        ("train/a.rs", "use super::{\n    b::B,\n    Engine,\n};\npub struct A;"),
        ("train/b.rs", "pub struct B(super::c::C);"),
        ("train/c.rs", "pub struct C(crate::train::A, crate::data::Split);"),
        ("eval/mod.rs", "pub struct E(crate::data::Split);"),
    ]);
    let found = cycles(&krate);
    assert_eq!(
        found,
        [
            "src/data/: graph.rs → preferences.rs → graph.rs (src/data/graph.rs:1 uses preferences.rs; \
             src/data/preferences.rs:2 uses graph.rs)",
            "src/train/: a.rs → b.rs → c.rs → a.rs (src/train/a.rs:2 uses b.rs; src/train/b.rs:1 uses c.rs; \
             src/train/c.rs:1 uses a.rs)",
        ]
    );
    // Files in two directories that use each other: a cycle of the two directories.
    let krate = synthetic(&[
        ("train/mod.rs", "mod autograd;\nmod batched;\n"),
        ("train/autograd.rs", "use super::batched::FlatOptimizer;"),
        (
            "train/batched/mod.rs",
            "mod optim;\npub use optim::FlatOptimizer;\nfn f() { super::autograd::g(); }",
        ),
        ("train/batched/optim.rs", "pub struct FlatOptimizer;"),
    ]);
    assert_eq!(
        cycles(&krate),
        ["src/train/: autograd.rs → batched/ → autograd.rs (src/train/autograd.rs:1 uses batched/; \
          src/train/batched/mod.rs:3 uses autograd.rs)"]
    );
}
