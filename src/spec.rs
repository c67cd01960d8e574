//! Experiment specs: a TOML file of base sections and a `[sweep]` grid, expanded into cells.
//!
//! ```toml
//! name = "lambda"
//! description = "What does λ do to reward magnitude?"
//! [loss]
//! lambda = 0.0          # base sections: data, model, train, loss, eval (all optional)
//! [sweep]
//! seeds = 3             # a count (0, 1, 2) or a list [0, 7]
//! "loss.lambda" = [0.0, 0.01, 0.1]   # any config key path → list of values: a grid axis
//! [[sweep.zip]]         # axes that vary together, one value from each list at a time
//! "data.beta" = [1.0, 4.0]
//! "data.flip" = [0.2, 0.0]
//! ```
//!
//! Every error names the key path and the file:line:column it refers to.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::config::{
    DataConfig, DataKind, EvalConfig, InvalidValue, LossConfig, ModelConfig, RunConfig, TrainConfig,
};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The on-disk shape, used to check the file's keys and types with their locations, and for
/// `rmlab schema`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the values are read from the raw table; this pass only checks them
struct SpecFile {
    /// The experiment's name in the store: letters, digits, '_', '-', '.'.
    name: String,
    /// The question the experiment answers.
    #[serde(default)]
    description: String,
    #[serde(default)]
    data: DataConfig,
    #[serde(default)]
    model: ModelConfig,
    #[serde(default)]
    train: TrainConfig,
    #[serde(default)]
    loss: LossConfig,
    #[serde(default)]
    eval: EvalConfig,
    /// Figures of this experiment (`[[figure]]`); the default catalogue when none.
    #[serde(default)]
    figure: Vec<crate::plot::FigureSpec>,
    /// The grid: config key paths → lists of values, `seeds`, and `[[sweep.zip]]` groups.
    #[serde(default)]
    #[schemars(schema_with = "sweep_schema")]
    sweep: toml::Table,
}

fn sweep_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let axis = serde_json::json!({
        "type": "array", "minItems": 1,
        "description": "values of this config key path, one grid point each"
    });
    let key_path = format!("^({})\\.[a-z_]+$", SECTIONS.join("|"));
    schemars::json_schema!({
        "type": "object",
        "description": "Grid axes: a dotted config key path (\"loss.lambda\") → list of values.",
        "properties": {
            "seeds": {
                "description": "a count N (seeds 0..N) or a list of distinct seeds; default [0]",
                "anyOf": [
                    { "type": "integer", "minimum": 1 },
                    { "type": "array", "minItems": 1, "uniqueItems": true, "items": { "type": "integer", "minimum": 0 } }
                ]
            },
            "zip": {
                "description": "groups of axes that vary together (equal-length lists)",
                "type": "array",
                "items": {
                    "type": "object", "minProperties": 2,
                    "propertyNames": { "pattern": key_path },
                    "additionalProperties": axis
                }
            }
        },
        "propertyNames": { "pattern": format!("^(seeds|zip|({})\\.[a-z_]+)$", SECTIONS.join("|")) },
        "additionalProperties": axis
    })
}

/// JSON Schema of a spec file, for editors (e.g. taplo's `#:schema` directive).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(SpecFile)).expect("a schema serializes");
    schema["title"] = "rmlab experiment spec".into();
    schema
}

/// Base sections a sweep axis may address.
const SECTIONS: [&str; 5] = ["data", "model", "train", "loss", "eval"];

/// A step in a path through the TOML document.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a swept value came from in the file.
#[derive(Clone, Debug)]
struct Origin {
    /// Path of the value in the document, e.g. `sweep / "loss.lambda" / 2`.
    path: Vec<Step>,
}

/// One grid dimension: a single key, or a zip group of keys that move together.
#[derive(Clone, Debug)]
struct Axis {
    /// Config key paths set by this axis.
    keys: Vec<String>,
    /// `points[i][j]`: value of `keys[j]` at the axis' i-th point, with its origin.
    points: Vec<Vec<(toml::Value, Origin)>>,
}

/// A parsed, checked experiment spec.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub text: String,
    base: toml::Table,
    axes: Vec<Axis>,
    seeds: Vec<u64>,
    /// Declared figures (empty: use [`crate::plot::catalogue`]).
    pub figures: Vec<crate::plot::FigureSpec>,
    /// Preference files (SHA-256, skip_bad_rows) whose rows have been checked.
    checked_files: std::sync::Arc<std::sync::Mutex<HashSet<(String, bool)>>>,
}

/// One grid point × seed: a fully resolved run.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Position in the spec's cell order.
    pub index: usize,
    pub config: RunConfig,
    /// `(key path, value)` of every swept key (seed included), in axis order.
    pub swept: Vec<(String, toml::Value)>,
    /// [`RunConfig::hash`] of `config`.
    pub hash: String,
}

impl Cell {
    /// Swept values as `key=value` for display.
    pub fn label(&self) -> String {
        self.swept.iter().map(|(k, v)| format!("{k}={}", display_value(v))).collect::<Vec<_>>().join(" ")
    }

    pub fn swept_keys(&self) -> Vec<String> {
        self.swept.iter().map(|(k, _)| k.clone()).collect()
    }
}

fn display_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Spec {
    /// Reads and checks the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Input(format!("{}: no such spec file", path.display())),
            std::io::ErrorKind::InvalidData => Error::Input(format!("{}: not UTF-8 text", path.display())),
            _ => Error::io(path, e),
        })?;
        Spec::parse(path, text)
    }

    /// Checks spec `text` as if read from `path`, and expands its grid to catch every error
    /// of every cell now rather than mid-sweep.
    pub fn parse(path: &Path, text: String) -> Result<Spec> {
        let src = Source { file: path.display().to_string(), text: &text };
        if let Err(e) = toml::from_str::<SpecFile>(&text) {
            let span = e.span().unwrap_or(0..0);
            // serde names a missing field only in its message; the span is its table's.
            let key = match e.message().strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                Some(field) if span.start == 0 => field.to_string(),
                Some(field) => format!("{}.{field}", src.key_at(span.start)),
                None => src.key_at(span.start),
            };
            return Err(src.error_at(span.clone(), &key, e.message()));
        }
        let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            src.error_at(e.span().unwrap_or(0..0), "(document)", e.message())
        })?;
        let name = match doc.remove("name") {
            Some(toml::Value::String(s)) => s,
            _ => unreachable!("checked by SpecFile"),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(src.error_at_path(
                &[Step::Key("name".into())],
                "name",
                "must be non-empty and use only letters, digits, '_', '-' and '.'",
            ));
        }
        let description = match doc.remove("description") {
            Some(toml::Value::String(s)) => s,
            _ => String::new(),
        };
        let sweep = match doc.remove("sweep") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        let (axes, seeds) = parse_sweep(&src, &sweep)?;
        let figures: Vec<crate::plot::FigureSpec> = match doc.remove("figure") {
            Some(v) => {
                v.try_into().map_err(|e: toml::de::Error| src.error_at(0..0, "figure", e.message()))?
            }
            None => Vec::new(),
        };
        let keys: std::collections::BTreeSet<String> = sweepable_keys().into_iter().collect();
        let mut names = HashSet::new();
        for (i, fig) in figures.iter().enumerate() {
            let at = [Step::Key("figure".into()), Step::Index(i)];
            if let Err((key, message)) = crate::plot::check(fig, &keys) {
                return Err(src.error_at_path(&at, &key, &message));
            }
            if !names.insert(fig.name.clone()) {
                return Err(src.error_at_path(
                    &at,
                    "figure.name",
                    &format!("two figures are named `{}`", fig.name),
                ));
            }
        }
        let spec = Spec {
            name,
            description,
            path: path.to_path_buf(),
            base: doc,
            axes,
            seeds,
            text: text.clone(),
            figures,
            checked_files: Default::default(),
        };
        spec.cells()?;
        Ok(spec)
    }

    /// Seeds of every grid point.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// Expands the grid: axes in file order (the first varies slowest), seeds innermost.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let src = Source { file: self.path.display().to_string(), text: &self.text };
        let mut cells = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        let n_points: usize = self.axes.iter().map(|a| a.points.len()).product();
        for point in 0..n_points {
            // Mixed-radix decomposition of `point`, last axis fastest.
            let mut rest = point;
            let mut choice = vec![0; self.axes.len()];
            for (i, axis) in self.axes.iter().enumerate().rev() {
                choice[i] = rest % axis.points.len();
                rest /= axis.points.len();
            }
            for &seed in &self.seeds {
                let mut table = self.base.clone();
                let mut swept = Vec::new();
                let mut origins = Vec::new();
                for (axis, &c) in self.axes.iter().zip(&choice) {
                    for (key, (value, origin)) in axis.keys.iter().zip(&axis.points[c]) {
                        set_path(&mut table, key, value.clone());
                        swept.push((key.clone(), value.clone()));
                        origins.push((key.clone(), value.clone(), origin.clone()));
                    }
                }
                table.insert("seed".into(), toml::Value::Integer(seed as i64));
                let config = self.config_from(&src, table, &origins)?;
                swept.push(("seed".into(), toml::Value::Integer(seed as i64)));
                let hash = config.hash();
                let index = cells.len();
                if let Some(&other) = seen.get(&hash) {
                    let first = &origins.first().map(|o| o.2.path.clone()).unwrap_or_default();
                    return Err(src.error_at_path(
                        first,
                        "sweep",
                        &format!(
                            "cells {other} and {index} resolve to the same run ({}); remove the duplicate value",
                            Cell { index, config: config.clone(), swept: swept.clone(), hash: hash.clone() }.label()
                        ),
                    ));
                }
                seen.insert(hash.clone(), index);
                cells.push(Cell { index, config, swept, hash });
            }
        }
        Ok(cells)
    }

    /// Deserializes, resolves and validates one cell's table, locating any error at the swept
    /// value responsible or else at the base key.
    fn config_from(
        &self,
        src: &Source,
        table: toml::Table,
        origins: &[(String, toml::Value, Origin)],
    ) -> Result<RunConfig> {
        let config = match RunConfig::deserialize(toml::Value::Table(table)) {
            Ok(c) => c,
            Err(e) => {
                // The base alone passed the typed check, so a swept value is at fault: find it.
                for (key, value, origin) in origins {
                    let mut probe = self.base.clone();
                    set_path(&mut probe, key, value.clone());
                    probe.insert("seed".into(), toml::Value::Integer(0));
                    if let Err(e) = RunConfig::deserialize(toml::Value::Table(probe)) {
                        return Err(src.error_at_path(&origin.path, key, e.message()));
                    }
                }
                return Err(src.error_at(0..0, "sweep", e.message()));
            }
        };
        let mut config = config.resolve();
        let locate = |key: &str| -> Vec<Step> {
            match origins.iter().find(|(k, _, _)| *k == key) {
                Some((_, _, o)) => o.path.clone(),
                None => key.split('.').map(|s| Step::Key(s.into())).collect(),
            }
        };
        config
            .validate()
            .map_err(|InvalidValue { key, message }| src.error_at_path(&locate(&key), &key, &message))?;
        if let (DataKind::PreferenceFile, Some(p)) = (config.data.kind, config.data.path.clone()) {
            // Relative to the spec's directory, as a spec is read wherever it is run from.
            let full = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                self.path.parent().unwrap_or(Path::new(".")).join(&p)
            };
            let bytes = std::fs::read(&full).map_err(|e| {
                src.error_at_path(
                    &locate("data.path"),
                    "data.path",
                    &format!("cannot read {}: {e}", full.display()),
                )
            })?;
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            // Every row is checked once now, so a bad file is bad input (exit 2) before any
            // cell runs, with the file and line of the first bad row.
            let checked = (sha.clone(), config.data.skip_bad_rows);
            if !self.checked_files.lock().expect("lock").contains(&checked) {
                crate::data::preference_file::read(&full, config.data.skip_bad_rows)?;
                self.checked_files.lock().expect("lock").insert(checked);
            }
            config.data.file_sha256 = Some(sha);
            config.data.resolved_path = Some(full);
        }
        Ok(config)
    }

    /// Sets base config keys from `key=value` overrides (`--set data.path=/x.jsonl`), before
    /// the grid is expanded. Values are read as TOML (numbers, `inf`, `true`, `[1, 2]`), else
    /// as text; a relative `data.path` is taken from the current directory.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Spec> {
        let valid = sweepable_keys();
        for o in overrides {
            let Some((key, raw)) = o.split_once('=') else {
                return Err(Error::Input(format!("--set {o}: expected key=value, e.g. loss.lambda=0.1")));
            };
            let key = key.trim();
            if !valid.contains(key) {
                return Err(Error::Input(format!("--set {o}: unknown config key `{key}`")));
            }
            let mut value = format!("v = {raw}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            if key == "data.path" {
                let p = PathBuf::from(raw);
                let abs = std::path::absolute(&p).map_err(|e| Error::io(&p, e))?;
                value = toml::Value::String(abs.display().to_string());
            }
            set_path(&mut self.base, key, value);
        }
        // Re-check every cell with the new base values.
        self.cells().map_err(|e| match e {
            Error::Spec { key, message, .. } => Error::Input(format!("--set: {key}: {message}")),
            other => other,
        })?;
        Ok(self)
    }
}

/// Sets `a.b.c` in a table, creating intermediate tables.
fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut cur = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let next = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !next.is_table() {
            *next = toml::Value::Table(toml::Table::new());
        }
        cur = next.as_table_mut().expect("just made a table");
    }
}

/// Every dotted config key a sweep may set (from the serialized defaults).
fn sweepable_keys() -> HashSet<String> {
    let defaults = RunConfig {
        seed: 0,
        data: Default::default(),
        model: Default::default(),
        train: Default::default(),
        loss: Default::default(),
        eval: Default::default(),
    };
    let json = serde_json::to_value(defaults).expect("defaults serialize");
    let mut keys = HashSet::new();
    for section in SECTIONS {
        if let Some(obj) = json.get(section).and_then(|v| v.as_object()) {
            keys.extend(obj.keys().map(|k| format!("{section}.{k}")));
        }
    }
    keys
}

fn parse_sweep(src: &Source, sweep: &toml::Table) -> Result<(Vec<Axis>, Vec<u64>)> {
    let valid = sweepable_keys();
    let mut axes = Vec::new();
    let mut seeds = vec![0];
    let mut used: HashSet<String> = HashSet::new();
    let at = |steps: &[Step]| -> Vec<Step> {
        let mut p = vec![Step::Key("sweep".into())];
        p.extend_from_slice(steps);
        p
    };
    let check_key = |key: &str, path: &[Step], used: &mut HashSet<String>| -> Result<()> {
        if key == "seed" {
            return Err(src.error_at_path(
                path,
                &format!("sweep.{key}"),
                "set seeds with `seeds = N` or `seeds = [..]`",
            ));
        }
        if !valid.contains(key) {
            let mut known: Vec<&String> =
                valid.iter().filter(|k| k.split('.').next() == key.split('.').next()).collect();
            known.sort();
            let hint = if known.is_empty() {
                format!("a key path starts with one of {}", SECTIONS.join(", "))
            } else {
                format!(
                    "known keys there: {}",
                    known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(src.error_at_path(
                path,
                &format!("sweep.\"{key}\""),
                &format!("unknown config key `{key}`; {hint}"),
            ));
        }
        if !used.insert(key.to_string()) {
            return Err(src.error_at_path(
                path,
                &format!("sweep.\"{key}\""),
                "this key is swept twice (as an axis and in a zip group, or in two zip groups)",
            ));
        }
        Ok(())
    };
    // `unique`: a plain axis may not repeat a value; a zip column may (its tuples are checked).
    let values_of =
        |key: &str, v: &toml::Value, path: Vec<Step>, unique: bool| -> Result<Vec<(toml::Value, Origin)>> {
            let label = format!("sweep.\"{key}\"");
            let toml::Value::Array(items) = v else {
                return Err(src.error_at_path(
                    &path,
                    &label,
                    &format!("an axis is a list of values, found {}", v.type_str()),
                ));
            };
            if items.is_empty() {
                return Err(src.error_at_path(
                    &path,
                    &label,
                    "an axis needs at least one value, found an empty list",
                ));
            }
            let mut out: Vec<(toml::Value, Origin)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(Step::Index(i));
                if let Some(j) = out.iter().position(|(o, _)| unique && o == item) {
                    return Err(src.error_at_path(
                        &p,
                        &label,
                        &format!("value {} repeats value {j} of this axis", display_value(item)),
                    ));
                }
                out.push((item.clone(), Origin { path: p }));
            }
            Ok(out)
        };
    for (key, value) in sweep {
        let path = at(&[Step::Key(key.clone())]);
        match key.as_str() {
            "seeds" => seeds = parse_seeds(src, value, &path)?,
            "zip" => {
                let toml::Value::Array(groups) = value else {
                    return Err(src.error_at_path(
                        &path,
                        "sweep.zip",
                        "expected [[sweep.zip]] tables of key paths → lists",
                    ));
                };
                for (g, group) in groups.iter().enumerate() {
                    let gpath = at(&[Step::Key("zip".into()), Step::Index(g)]);
                    let toml::Value::Table(group) = group else {
                        return Err(src.error_at_path(
                            &gpath,
                            "sweep.zip",
                            "expected a table of key paths → lists",
                        ));
                    };
                    if group.len() < 2 {
                        return Err(src.error_at_path(
                            &gpath,
                            "sweep.zip",
                            "a zip group needs at least two keys (use a plain axis for one)",
                        ));
                    }
                    let mut keys = Vec::new();
                    let mut columns = Vec::new();
                    for (k, v) in group {
                        let kpath = at(&[Step::Key("zip".into()), Step::Index(g), Step::Key(k.clone())]);
                        check_key(k, &kpath, &mut used)?;
                        let col = values_of(k, v, kpath.clone(), false)?;
                        if let Some(first) = columns.first().map(|c: &Vec<_>| c.len())
                            && col.len() != first
                        {
                            return Err(src.error_at_path(
                                &kpath,
                                &format!("sweep.zip.\"{k}\""),
                                &format!(
                                    "zip lists must have equal lengths: `{}` has {first}, `{k}` has {}",
                                    keys[0],
                                    col.len()
                                ),
                            ));
                        }
                        keys.push(k.clone());
                        columns.push(col);
                    }
                    let n = columns[0].len();
                    let points: Vec<Vec<(toml::Value, Origin)>> =
                        (0..n).map(|i| columns.iter().map(|c| c[i].clone()).collect()).collect();
                    for i in 1..n {
                        let same = |j: usize| points[j].iter().zip(&points[i]).all(|(x, y)| x.0 == y.0);
                        if let Some(j) = (0..i).find(|&j| same(j)) {
                            return Err(src.error_at_path(
                                &points[i][0].1.path,
                                "sweep.zip",
                                &format!("point {i} of this zip group repeats point {j}"),
                            ));
                        }
                    }
                    axes.push(Axis { keys, points });
                }
            }
            _ => {
                check_key(key, &path, &mut used)?;
                let points = values_of(key, value, path, true)?.into_iter().map(|v| vec![v]).collect();
                axes.push(Axis { keys: vec![key.clone()], points });
            }
        }
    }
    Ok((axes, seeds))
}

fn parse_seeds(src: &Source, v: &toml::Value, path: &[Step]) -> Result<Vec<u64>> {
    let err = |p: &[Step], m: &str| src.error_at_path(p, "sweep.seeds", m);
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok((0..*n as u64).collect()),
        toml::Value::Integer(n) => Err(err(path, &format!("a seed count must be > 0, found {n}"))),
        toml::Value::Array(items) if items.is_empty() => Err(err(path, "the seed list is empty")),
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let mut p = path.to_vec();
                p.push(Step::Index(i));
                match item {
                    toml::Value::Integer(s) if *s >= 0 => {
                        if out.contains(&(*s as u64)) {
                            return Err(err(&p, &format!("seed {s} appears twice")));
                        }
                        out.push(*s as u64);
                    }
                    other => {
                        return Err(err(&p, &format!("a seed is an integer ≥ 0, found {other}")));
                    }
                }
            }
            Ok(out)
        }
        other => Err(err(path, &format!("expected a count or a list of seeds, found {}", other.type_str()))),
    }
}

/// The spec text, for turning byte spans and key paths into file:line:column.
struct Source<'a> {
    file: String,
    text: &'a str,
}

impl Source<'_> {
    fn error_at(&self, span: Range<usize>, key: &str, message: &str) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Spec {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// An error at the value found by following `path`, or at its deepest existing ancestor.
    fn error_at_path(&self, path: &[Step], key: &str, message: &str) -> Error {
        let span = DeTable::parse(self.text).ok().map(|doc| locate(doc.get_ref(), path)).unwrap_or(0..0);
        self.error_at(span, key, message)
    }

    /// The dotted key path of the innermost value whose span contains `offset`.
    fn key_at(&self, offset: usize) -> String {
        let Ok(doc) = DeTable::parse(self.text) else {
            return "(document)".into();
        };
        let mut path = Vec::new();
        find_key(doc.get_ref(), offset, &mut path);
        if path.is_empty() { "(top level)".into() } else { path.join(".") }
    }
}

/// Span of the value at `path` (or of the deepest part of it that exists).
fn locate(root: &DeTable, path: &[Step]) -> Range<usize> {
    let mut span = 0..0;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue>]> = None;
    for step in path {
        let value = match (step, table, array) {
            (Step::Key(k), Some(t), _) => match t.iter().find(|(key, _)| key.get_ref() == k) {
                Some((_, v)) => v,
                None => return span,
            },
            (Step::Index(i), _, Some(a)) if *i < a.len() => &a[*i],
            _ => return span,
        };
        span = value.span();
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    span
}

/// Appends to `path` the keys leading to `offset`. A `[table]` body lies outside its header's
/// span, so when no entry contains the offset, the last table whose header precedes it is
/// searched.
fn find_key(table: &DeTable, offset: usize, path: &mut Vec<String>) {
    let inside = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
    let containing = table.iter().find(|(k, v)| inside(&k.span()) || inside(&v.span()));
    let preceding = || {
        table
            .iter()
            .filter(|(k, v)| {
                k.span().start <= offset && matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_))
            })
            .max_by_key(|(k, _)| k.span().start)
    };
    let Some((key, value)) = containing.or_else(preceding) else {
        return;
    };
    path.push(key.get_ref().to_string());
    match value.get_ref() {
        DeValue::Table(t) => find_key(t, offset, path),
        DeValue::Array(items) => {
            let item = items.iter().rfind(|i| i.span().start <= offset);
            if let Some(DeValue::Table(t)) = item.map(|i| i.get_ref()) {
                find_key(t, offset, path);
            }
        }
        _ => {}
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}
