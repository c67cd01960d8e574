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
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::checkpoint;
use super::config::{
    DataConfig, DataKind, EvalConfig, InvalidValue, LossConfig, ModelConfig, RunConfig, TrainConfig,
};
use super::figure::{self, FigureSpec};
use super::grid::{Axis, Origin, SECTIONS, display_value, parse_sweep, set_path, sweepable_keys};
use super::location::{Source, Step};
use crate::error::{Error, Result};

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
    figure: Vec<FigureSpec>,
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
    /// Declared figures (empty: use [`figure::catalogue`]).
    pub figures: Vec<FigureSpec>,
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
        let figures: Vec<FigureSpec> = match doc.remove("figure") {
            Some(v) => {
                v.try_into().map_err(|e: toml::de::Error| src.error_at(0..0, "figure", e.message()))?
            }
            None => Vec::new(),
        };
        let keys: std::collections::BTreeSet<String> = sweepable_keys().into_iter().collect();
        let mut names = HashSet::new();
        for (i, fig) in figures.iter().enumerate() {
            let at = [Step::Key("figure".into()), Step::Index(i)];
            if let Err((key, message)) = figure::check(fig, &keys) {
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
        };
        spec.cells()?;
        Ok(spec)
    }

    /// A spec error about config key `key` (dotted), located at the key's first swept value,
    /// else at the key in its base section: for checks made after the spec is read (a data
    /// file's rows, an encoder's checkpoint).
    pub fn error_at_key(&self, key: &str, message: &str) -> Error {
        let src = Source { file: self.path.display().to_string(), text: &self.text };
        let swept = self.axes.iter().find_map(|a| {
            let j = a.keys.iter().position(|k| k == key)?;
            Some(a.points[0][j].1.path.clone())
        });
        let path = swept.unwrap_or_else(|| key.split('.').map(|s| Step::Key(s.into())).collect());
        src.error_at_path(&path, key, message)
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
            // The file's rows are checked by the data stage (`data::check_files`) before a sweep
            // runs; here it is only named by its content.
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            config.data.file_sha256 = Some(sha);
            config.data.resolved_path = Some(full);
        }
        if let Some(name) = config.model.encoder.clone() {
            // Named by its content like a data file; its config, tokenizer and weights are
            // checked by the model stage (`model::check_encoders`) before a sweep runs.
            let at = |m: String| src.error_at_path(&locate("model.encoder"), "model.encoder", &m);
            let dir = checkpoint::resolve(&name, self.path.parent().unwrap_or(Path::new("."))).map_err(at)?;
            config.model.encoder_sha256 = Some(checkpoint::sha256(&dir).map_err(at)?);
            config.model.resolved_encoder = Some(dir);
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
            if key == "data.path" || (key == "model.encoder" && (raw.contains('/') || raw.starts_with('.'))) {
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
