//! The pipeline's dependency rule, checked on the source: a module may use only modules of its
//! own stage or of earlier stages (docs/architecture.md). A `crate::` path in code (comments
//! are not read) that reaches a later stage fails this test, naming the file and line.

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

/// The top-level module a file under src/ belongs to (`src/eval/stats.rs` → `eval`); `None`
/// for the crate root and the binary's files.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if ["lib.rs", "main.rs", "cli.rs"].contains(&first.as_str()) {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
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

/// The modules a line of code names as `crate::NAME`, comments removed.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if rest.starts_with('{') {
            // `use crate::{a, b::c}`: every name in the group.
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            out.extend(group.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()));
        } else {
            out.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    out.retain(|m| !m.is_empty() && !["Error", "Result"].contains(&m.as_str()));
    out
}

#[test]
fn no_stage_uses_a_later_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let own = stage_of(&module).unwrap_or_else(|| {
            panic!("{}: module `{module}` has no stage in tests/architecture.rs", file.display())
        });
        for (i, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            for used in crate_paths(line) {
                checked += 1;
                let Some(stage) = stage_of(&used) else {
                    violations.push(format!("{}:{}: `crate::{used}` is no module", file.display(), i + 1));
                    continue;
                };
                if stage > own {
                    violations.push(format!(
                        "{}:{}: `{module}` (stage {own}) uses `crate::{used}` (stage {stage}), a later stage",
                        file.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "the scan found only {checked} crate paths");
    assert!(violations.is_empty(), "imports against the pipeline:\n{}", violations.join("\n"));
}

/// The scanner itself: it finds plain and grouped paths and ignores comments.
#[test]
fn crate_paths_are_found_in_code_only() {
    assert_eq!(crate_paths("use crate::data::Split; // crate::store"), ["data"]);
    assert_eq!(crate_paths("use crate::{eval::x, train};"), ["eval", "train"]);
    assert_eq!(crate_paths("let r: crate::Result<()> = f(crate::sweep::run());"), ["sweep"]);
    assert!(crate_paths("/// see [`crate::analysis`]").is_empty());
    assert!(stage_of("store").unwrap() > stage_of("train").unwrap());
}
