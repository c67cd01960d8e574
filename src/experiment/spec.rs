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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use super::checkpoint;
use super::config::{
    DataConfig, DataKind, EvalConfig, InvalidValue, LossConfig, ModelConfig, ModelKind, RunConfig,
    TrainConfig,
};
use super::figure::{self, FigureSpec};
use super::grid::{
    Axis, Origin, SECTIONS, SweepSection, display_value, parse_sweep, set_path, sweepable_keys,
};
use super::location::{Source, Step};
use crate::error::{Error, Result};

// Read in one pass: the top-level fields typed, the base sections as the partial tables a
// cell layers its swept values and `--set` overrides onto (a typed section could not tell a
// key left unset from one set to its default; `check_base` checks them as typed), the sweep's
// entries as written. The schema shows each section's typed shape.
/// An rmlab experiment spec: its name, base config sections, `[sweep]` grid and figures.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    /// The experiment's name in the store: letters, digits, '_', '-', '.'.
    name: String,
    /// The question the experiment answers.
    #[serde(default)]
    description: String,
    /// The directory relative paths in this spec (`data.path`) are read from; default: the
    /// spec file's own directory. `rmlab slurm` sets it in the copies of a spec its tasks run.
    #[serde(default)]
    paths_relative_to: Option<String>,
    #[serde(default)]
    #[schemars(with = "DataConfig", default = "DataConfig::default")]
    data: toml::Table,
    #[serde(default)]
    #[schemars(with = "ModelConfig", default = "ModelConfig::default")]
    model: toml::Table,
    #[serde(default)]
    #[schemars(with = "TrainConfig", default = "TrainConfig::default")]
    train: toml::Table,
    #[serde(default)]
    #[schemars(with = "LossConfig", default = "LossConfig::default")]
    loss: toml::Table,
    #[serde(default)]
    #[schemars(with = "EvalConfig", default = "EvalConfig::default")]
    eval: toml::Table,
    /// Figures of this experiment (`[[figure]]`); the default catalogue when none.
    #[serde(default)]
    figure: Vec<FigureSpec>,
    /// The grid: config key paths → lists of values, `seeds`, and `[[sweep.zip]]` groups.
    #[serde(default)]
    #[schemars(schema_with = "sweep_schema", default = "toml::Table::new")]
    sweep: SweepSection,
    /// What a sweep writes besides the store.
    #[serde(default)]
    log: LogSection,
}

/// `[log]`: what a sweep writes besides the store. No key here is part of a cell's identity.
#[derive(Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LogSection {
    /// Also write each run's TensorBoard event file into this directory while it trains, as
    /// `<experiment>/<swept key=value,…>/` (the directories `rmlab export tensorboard` makes);
    /// a relative path is read from where the spec's other paths are (`paths_relative_to`).
    #[serde(default)]
    tensorboard: Option<String>,
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
    /// `--set key=value` overrides applied to the base, in order.
    pub overrides: Vec<String>,
    /// `paths_relative_to`, when the spec sets it.
    paths_relative_to: Option<PathBuf>,
    /// Whether any cell reads a preference file or an encoder (found when the cells were
    /// checked): otherwise there is nothing to read before a sweep.
    reads_inputs: bool,
    /// `[log] tensorboard`, as written.
    tensorboard: Option<PathBuf>,
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

    /// Whether the cell reads a preference file or an encoder checkpoint.
    pub fn reads_inputs(&self) -> bool {
        self.config.data.kind == DataKind::PreferenceFile || self.config.model.kind == ModelKind::Encoder
    }
}

impl Spec {
    /// Reads and checks the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec> {
        if path.is_dir() {
            return Err(Error::file(path, "is a directory, not a spec file"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::file(path, "no such spec file"),
            std::io::ErrorKind::InvalidData => Error::file(path, "not UTF-8 text"),
            std::io::ErrorKind::PermissionDenied => {
                Error::file(path, "cannot read the spec file (permission denied)")
            }
            _ => Error::io(path, e),
        })?;
        Spec::parse(path, text)
    }

    /// Checks spec `text` as if read from `path`, and expands its grid to catch every error
    /// of every cell now rather than mid-sweep.
    pub fn parse(path: &Path, text: String) -> Result<Spec> {
        let src = Source { file: path.display().to_string(), text: &text };
        let file = toml::from_str::<SpecFile>(&text).map_err(|e| {
            // A base value's error comes first when it comes first in the file, as a pass
            // reading the sections typed would have met it; a top-level missing field is
            // only found at the end of the file.
            let at_end = e.span().is_none_or(|s| s.start == 0) && e.message().starts_with("missing field");
            match base_error(&text) {
                Some(b) if at_end || b.span().map(|s| s.start) <= e.span().map(|s| s.start) => {
                    serde_error(&src, &b)
                }
                _ => serde_error(&src, &e),
            }
        })?;
        let SpecFile {
            name,
            description,
            paths_relative_to,
            data,
            model,
            train,
            loss,
            eval,
            figure,
            sweep,
            log,
        } = file;
        let base: toml::Table =
            [("data", data), ("model", model), ("train", train), ("loss", loss), ("eval", eval)]
                .into_iter()
                .filter(|(_, section)| !section.is_empty())
                .map(|(key, section)| (key.to_string(), toml::Value::Table(section)))
                .collect();
        check_base(&src, &base)?;
        if let Err(message) = check_name(&name) {
            return Err(src.error_at_path(&[Step::Key("name".into())], "name", &message));
        }
        let paths_relative_to = match paths_relative_to {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if !dir.is_absolute() || !dir.is_dir() {
                    return Err(src.error_at_path(
                        &[Step::Key("paths_relative_to".into())],
                        "paths_relative_to",
                        &format!(
                            "must be an existing directory given by its absolute path, found {}",
                            dir.display()
                        ),
                    ));
                }
                Some(dir)
            }
            None => None,
        };
        if log.tensorboard.as_deref().is_some_and(|d| d.trim().is_empty()) {
            let at = [Step::Key("log".into()), Step::Key("tensorboard".into())];
            return Err(src.error_at_path(&at, "log.tensorboard", "is empty; name a directory"));
        }
        let (axes, seeds) = parse_sweep(&src, &sweep)?;
        let spec = Spec {
            name,
            description,
            path: path.to_path_buf(),
            base,
            axes,
            seeds,
            text: text.clone(),
            figures: figure,
            overrides: Vec::new(),
            paths_relative_to,
            reads_inputs: false,
            tensorboard: log.tensorboard.map(PathBuf::from),
        };
        spec.check_size()?;
        spec.check_hidden_base_values()?;
        // Every cell checked, one at a time. Figures may show the evaluation splits of any cell
        // besides train, val and test.
        let mut splits: Vec<String> = ["train", "val", "test"].into_iter().map(String::from).collect();
        let mut reads_inputs = false;
        spec.visit_cells(|cell| {
            for e in &cell.config.data.eval {
                if !splits.contains(&e.name) {
                    splits.push(e.name.clone());
                }
            }
            reads_inputs |= cell.reads_inputs();
            Ok(())
        })?;
        let spec = Spec { reads_inputs, ..spec };
        let keys: std::collections::BTreeSet<String> = sweepable_keys().into_iter().collect();
        let mut names = HashSet::new();
        for (i, fig) in spec.figures.iter().enumerate() {
            let at = [Step::Key("figure".into()), Step::Index(i)];
            if let Err((key, message)) = figure::check(fig, &keys, &splits) {
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
        let mut cells = Vec::with_capacity(self.n_cells());
        self.visit_cells(|c| {
            cells.push(c);
            Ok(())
        })?;
        Ok(cells)
    }

    /// How many cells the grid expands to (grid points × seeds), without expanding it.
    pub fn n_cells(&self) -> usize {
        self.axes.iter().map(|a| a.points.len()).product::<usize>() * self.seeds.len()
    }

    /// Hands each cell to `visit` in [`Spec::cells`]' order as it is made, checked as there,
    /// without holding the grid: checking a large spec keeps one cell (and each one's hash)
    /// at a time. Stops at the first error, the spec's or `visit`'s.
    pub fn visit_cells(&self, mut visit: impl FnMut(Cell) -> Result<()>) -> Result<()> {
        let src = Source { file: self.path.display().to_string(), text: &self.text };
        let mut file_hashes = HashMap::new();
        let mut index = 0;
        // By hash (16 hex digits, as a number): a few bytes a cell, however large the grid.
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let n_points: usize = self.axes.iter().map(|a| a.points.len()).product();
        for point in 0..n_points {
            // Mixed-radix decomposition of `point`, last axis fastest.
            let mut rest = point;
            let mut choice = vec![0; self.axes.len()];
            for (i, axis) in self.axes.iter().enumerate().rev() {
                choice[i] = rest % axis.points.len();
                rest /= axis.points.len();
            }
            let mut table = self.base.clone();
            let mut swept_point = Vec::new();
            let mut origins = Vec::new();
            for (axis, &c) in self.axes.iter().zip(&choice) {
                for (key, (value, origin)) in axis.keys.iter().zip(&axis.points[c]) {
                    set_path(&mut table, key, value.clone());
                    swept_point.push((key.clone(), value.clone()));
                    origins.push((key.clone(), value.clone(), origin.clone()));
                }
            }
            // Made and checked once a grid point: nothing but `seed` depends on the seed.
            table
                .insert("seed".into(), toml::Value::Integer(self.seeds.first().copied().unwrap_or(0) as i64));
            let at_point = self.config_from(&src, table, &origins, &mut file_hashes)?;
            for &seed in &self.seeds {
                let config = RunConfig { seed, ..at_point.clone() };
                let mut swept = swept_point.clone();
                swept.push(("seed".into(), toml::Value::Integer(seed as i64)));
                let hash = config.hash();
                let id = u64::from_str_radix(&hash, 16).expect("a hash is 16 hex digits");
                if let Some(&other) = seen.get(&id) {
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
                seen.insert(id, index);
                visit(Cell { index, config, swept, hash })?;
                index += 1;
            }
        }
        Ok(())
    }

    /// Deserializes, resolves and validates one cell's table, locating any error at the swept
    /// value responsible or else at the base key. `file_hashes` caches the SHA-256 of each
    /// preference file by path within one expansion.
    fn config_from(
        &self,
        src: &Source,
        table: toml::Table,
        origins: &[(String, toml::Value, Origin)],
        file_hashes: &mut HashMap<PathBuf, String>,
    ) -> Result<RunConfig> {
        let config = match RunConfig::deserialize(toml::Value::Table(table)) {
            Ok(c) => c,
            Err(e) => {
                // A base value at fault (an override of a wrong type) is named by its own key.
                if let Some((key, message)) = first_bad_key(&self.base) {
                    let at: Vec<Step> = key.split('.').map(|s| Step::Key(s.into())).collect();
                    return Err(src.error_at_path(&at, &key, &message));
                }
                // Else a swept value: find it.
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
            let (full, sha) = self
                .resolve_file(&p, file_hashes)
                .map_err(|message| src.error_at_path(&locate("data.path"), "data.path", &message))?;
            config.data.file_sha256 = Some(sha);
            config.data.resolved_path = Some(full);
        }
        for (i, e) in config.data.eval.iter_mut().enumerate() {
            let (full, sha) = self.resolve_file(&e.path, file_hashes).map_err(|message| {
                let mut at = locate("data.eval");
                at.extend([Step::Index(i), Step::Key("path".into())]);
                src.error_at_path(&at, "data.eval.path", &format!("`{}`: {message}", e.name))
            })?;
            e.file_sha256 = Some(sha);
            e.resolved_path = Some(full);
        }
        if let Some(name) = config.model.encoder.clone() {
            // Named by its content like a data file; its config, tokenizer and weights are
            // checked by the model stage (`model::check_encoders`) before a sweep runs.
            let at = |m: String| src.error_at_path(&locate("model.encoder"), "model.encoder", &m);
            // Relative to the same directory as every other path of the spec (`paths_relative_to`
            // in a copy run elsewhere).
            let dir = checkpoint::resolve(&name, &self.base_dir()).map_err(at)?;
            config.model.encoder_sha256 = Some(checkpoint::sha256(&dir).map_err(at)?);
            config.model.resolved_encoder = Some(dir);
        }
        Ok(config)
    }

    /// Refuses a grid too large to plan before anything is allocated for it.
    fn check_size(&self) -> Result<()> {
        let src = Source { file: self.path.display().to_string(), text: &self.text };
        let points = self.axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.points.len()));
        let cells = points.and_then(|p| p.checked_mul(self.seeds.len()));
        match cells {
            Some(n) if n <= MAX_CELLS => Ok(()),
            _ => Err(src.error_at_path(
                &[Step::Key("sweep".into())],
                "sweep",
                &format!(
                    "the grid has {} cells ({} seeds × {} grid points); at most {MAX_CELLS} fit one spec",
                    cells.map_or("more than 2⁶⁴".to_string(), |n| n.to_string()),
                    self.seeds.len(),
                    points.map_or("more than 2⁶⁴".to_string(), |n| n.to_string())
                ),
            )),
        }
    }

    /// Checks each base value that a sweep axis hides (`[loss] lambda = -0.5` beside a
    /// `"loss.lambda"` axis): it never reaches a cell, but a value that is wrong on its own is
    /// a mistake the file should not keep. Each is checked in the first cell's context.
    fn check_hidden_base_values(&self) -> Result<()> {
        let src = Source { file: self.path.display().to_string(), text: &self.text };
        for axis in &self.axes {
            for key in &axis.keys {
                let Some(value) = get_path(&self.base, key) else { continue };
                let mut table = self.base.clone();
                for other in &self.axes {
                    for (k, (v, _)) in other.keys.iter().zip(&other.points[0]) {
                        if k != key {
                            set_path(&mut table, k, v.clone());
                        }
                    }
                }
                set_path(&mut table, key, value.clone());
                table.insert("seed".into(), toml::Value::Integer(0));
                let at: Vec<Step> = key.split('.').map(|s| Step::Key(s.into())).collect();
                let hidden = "(a base value the sweep axis replaces, but wrong on its own)";
                let config = RunConfig::deserialize(toml::Value::Table(table))
                    .map_err(|e| src.error_at_path(&at, key, &format!("{} {hidden}", e.message())))?;
                if let Err(InvalidValue { key: bad, message }) = config.resolve().validate()
                    && bad == *key
                {
                    return Err(src.error_at_path(&at, key, &format!("{message} {hidden}")));
                }
            }
        }
        Ok(())
    }

    /// `[log] tensorboard`: where runs' event files are written while they train, relative
    /// paths read from [`Spec::base_dir`].
    pub fn tensorboard_dir(&self) -> Option<PathBuf> {
        self.tensorboard.as_ref().map(|d| self.base_dir().join(d))
    }

    /// The directory relative paths of the spec are read from: `paths_relative_to`, else the
    /// spec file's directory.
    pub fn base_dir(&self) -> PathBuf {
        match &self.paths_relative_to {
            Some(dir) => dir.clone(),
            None => self
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        }
    }

    /// The spec text for a copy run elsewhere (SLURM tasks): the same, with
    /// `paths_relative_to` set to this spec's directory, so relative data paths still resolve.
    pub fn text_for_copy(&self) -> Result<String> {
        if self.paths_relative_to.is_some() {
            return Ok(self.text.clone());
        }
        let dir = std::path::absolute(self.base_dir()).map_err(|e| Error::io(&self.path, e))?;
        let quoted = toml::Value::String(dir.display().to_string()).to_string();
        Ok(format!(
            "# rmlab: a copy of {}; relative paths below are read from its directory.\npaths_relative_to = {quoted}\n{}",
            self.path.display(),
            self.text
        ))
    }

    /// The spec text as stored with its runs: the file, then the `--set` overrides applied to
    /// it as comment lines, so the store says exactly what ran.
    pub fn stored_text(&self) -> String {
        if self.overrides.is_empty() {
            return self.text.clone();
        }
        let mut text = self.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("\n# rmlab: this run applied command-line overrides to the file above:\n");
        for o in &self.overrides {
            text.push_str(&format!("#   --set {o}\n"));
        }
        text
    }

    /// A data file named in the spec: its path (relative to [`Spec::base_dir`], as a spec is
    /// read wherever it is run from) and the SHA-256 of its bytes, cached by path in
    /// `file_hashes` within one expansion. The file's rows are checked by the data stage
    /// (`data::check_files`) before a sweep runs; here it is only named by its content.
    fn resolve_file(
        &self,
        p: &str,
        file_hashes: &mut HashMap<PathBuf, String>,
    ) -> std::result::Result<(PathBuf, String), String> {
        let full = if Path::new(p).is_absolute() { PathBuf::from(p) } else { self.base_dir().join(p) };
        if let Some(sha) = file_hashes.get(&full) {
            return Ok((full, sha.clone()));
        }
        if std::fs::metadata(&full).is_ok_and(|m| !m.is_file()) {
            return Err(format!(
                "{} is not a regular file (a directory, FIFO or device); rmlab reads files only",
                full.display()
            ));
        }
        // Hashed a block at a time: a large file is never held whole.
        let hashed = std::fs::File::open(&full).and_then(|mut f| {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match std::io::Read::read(&mut f, &mut buf) {
                    Ok(0) => return Ok(h.finalize()),
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        let digest = hashed.map_err(|e| {
            let relative = if Path::new(p).is_absolute() {
                String::new()
            } else if self.paths_relative_to.is_some() {
                format!(" (relative paths are read from paths_relative_to, {})", self.base_dir().display())
            } else {
                format!(
                    " (relative paths in a spec are read from the spec file's directory, {}; a copied spec needs its paths adjusted or paths_relative_to)",
                    self.base_dir().display()
                )
            };
            format!("cannot read {}: {e}{relative}", full.display())
        })?;
        let sha: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        file_hashes.insert(full.clone(), sha.clone());
        Ok((full, sha))
    }

    /// Sets base config keys from `key=value` overrides (`--set data.path=/x.jsonl`), before
    /// the grid is expanded. Values are read as TOML (numbers, `inf`, `true`, `[1, 2]`), else
    /// as text; a relative `data.path` is taken from the current directory. Overriding a swept
    /// key replaces its axis by the one value; a key swept in a zip group cannot be overridden
    /// alone. Each error names the override.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Spec> {
        let valid = sweepable_keys();
        for o in overrides {
            let Some((key, raw)) = o.split_once('=') else {
                return Err(Error::flag("--set", o, "expected key=value, e.g. loss.lambda=0.1"));
            };
            let (key, raw) = (key.trim(), raw.trim());
            // The experiment's name and its seeds are spec keys, not config keys: a `--set`
            // sweep can be stored apart from the spec's own, and its seeds chosen.
            if key == "name" {
                check_name(raw).map_err(|m| Error::flag("--set", o, format!("name: {m}")))?;
                self.name = raw.to_string();
                self.overrides.push(format!("name={raw}"));
                continue;
            }
            if key == "sweep.seeds" {
                self.seeds =
                    override_seeds(raw).map_err(|m| Error::flag("--set", o, format!("sweep.seeds: {m}")))?;
                self.overrides.push(format!("sweep.seeds={raw}"));
                continue;
            }
            if !valid.contains(key) {
                return Err(Error::flag("--set", o, format!("unknown config key `{key}`")));
            }
            let mut value = format!("v = {raw}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            let mut recorded = raw.to_string();
            if key == "data.path" || (key == "model.encoder" && (raw.contains('/') || raw.starts_with('.'))) {
                let p = PathBuf::from(raw);
                let abs = std::path::absolute(&p).map_err(|e| Error::io(&p, e))?;
                // Recorded absolute too, so the same overrides name the same file from
                // anywhere (SLURM tasks, a later `plot --set`).
                recorded = abs.display().to_string();
                value = toml::Value::String(recorded.clone());
            }
            match self.axes.iter().position(|a| a.keys.iter().any(|k| k == key)) {
                Some(i) if self.axes[i].keys.len() > 1 => {
                    let others: Vec<&String> = self.axes[i].keys.iter().filter(|k| *k != key).collect();
                    return Err(Error::flag(
                        "--set",
                        o,
                        format!(
                            "`{key}` is swept together with {} in a [[sweep.zip]] group of {}; \
                         edit the group in the spec",
                            others.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                            self.path.display()
                        ),
                    ));
                }
                // The override replaces the axis: the sweep runs this one value.
                Some(i) => {
                    self.axes.remove(i);
                }
                None => {}
            }
            set_path(&mut self.base, key, value);
            if let Some((bad, message)) = first_bad_key(&self.base) {
                return Err(Error::flag("--set", o, format!("{bad}: {message}")));
            }
            self.overrides.push(format!("{key}={recorded}"));
        }
        if overrides.is_empty() {
            // Nothing changed since every cell was checked when the spec was read.
            return Ok(self);
        }
        // Re-check every cell with the new base values.
        let mut reads_inputs = false;
        self.visit_cells(|cell| {
            reads_inputs |= cell.reads_inputs();
            Ok(())
        })
        .map_err(|e| match e {
            Error::Spec { key, message, .. } => {
                let by = overrides.iter().find(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == key));
                match by {
                    Some(o) => Error::flag("--set", o, format!("{key}: {message}")),
                    None => {
                        Error::flag("--set", "", format!("{key}: {message} (with the overrides applied)"))
                    }
                }
            }
            other => other,
        })?;
        self.reads_inputs = reads_inputs;
        Ok(self)
    }

    /// Whether any cell reads a preference file or an encoder checkpoint.
    pub fn reads_inputs(&self) -> bool {
        self.reads_inputs
    }
}

/// Longest experiment name: it names a directory of figures and rows of the store.
const MAX_NAME: usize = 100;

/// An experiment name: 1 to 100 letters, digits, '_', '-' and '.', not starting with '.' (so
/// never `.` or `..`, which `plot --out-dir` would resolve outside its directory).
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err("must be non-empty and use only letters, digits, '_', '-' and '.'".into());
    }
    if name.starts_with('.') {
        return Err(format!("must not start with '.', found `{name}`"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters, found {}", name.len()));
    }
    Ok(())
}

/// The seeds of `--set sweep.seeds=VALUE`: a count or a list, as in a spec's `[sweep]`.
fn override_seeds(raw: &str) -> std::result::Result<Vec<u64>, String> {
    let text = format!("seeds = {raw}");
    let table: toml::Table =
        text.parse().map_err(|_| "expected a count or a list of seeds, e.g. 3 or [0, 7]")?;
    let src = Source { file: "--set".into(), text: &text };
    super::grid::parse_seeds(&src, &table["seeds"], &[Step::Key("seeds".into())]).map_err(|e| match e {
        Error::Spec { message, .. } => message,
        other => other.to_string(),
    })
}

/// Most cells one spec may expand to: every cell is checked when the spec is read, and a
/// sweep plans them all, so a spec of this size is checked in seconds and planned in a few
/// hundred MB (measured in the README).
const MAX_CELLS: usize = 100_000;

/// The value at `a.b.c` in a table.
fn get_path<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let mut parts = key.split('.');
    let mut cur = table.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_table()?.get(p)?;
    }
    Some(cur)
}

/// A serde error of the spec text, located at its span and named by the key there.
fn serde_error(src: &Source, e: &toml::de::Error) -> Error {
    let span = e.span().unwrap_or(0..0);
    // serde names a missing field only in its message; the span is its table's.
    let key = match e.message().strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        Some(field) if span.start == 0 => field.to_string(),
        Some(field) => format!("{}.{field}", src.key_at(span.start)),
        None => src.key_at(span.start),
    };
    src.error_at(span, &key, e.message())
}

/// Refuses a base value that does not deserialize on its own, before the grid is expanded,
/// located where it is written.
fn check_base(src: &Source, base: &toml::Table) -> Result<()> {
    let mut table = base.clone();
    table.insert("seed".into(), toml::Value::Integer(0));
    let Err(e) = RunConfig::deserialize(toml::Value::Table(table)) else { return Ok(()) };
    if let Some(located) = base_error(src.text) {
        return Err(serde_error(src, &located));
    }
    match first_bad_key(base) {
        Some((key, message)) => {
            let at: Vec<Step> = key.split('.').map(|s| Step::Key(s.into())).collect();
            Err(src.error_at_path(&at, &key, &message))
        }
        None => Err(src.error_at(0..0, &src.key_at(0), e.message())),
    }
}

/// The first error (in file order) of the base sections of `text` read as their config
/// types, with its span: a partial table keeps no spans, so the text is read again, only
/// on this error path, as [`Source`] does to locate any error.
fn base_error(text: &str) -> Option<toml::de::Error> {
    fn section<T: serde::de::DeserializeOwned>(value: toml::Spanned<DeValue>) -> Option<toml::de::Error> {
        T::deserialize(toml::de::ValueDeserializer::from(value)).err()
    }
    let doc = DeTable::parse(text).ok()?.into_inner();
    doc.into_iter().find_map(|(key, value)| match key.get_ref().as_ref() {
        "data" => section::<DataConfig>(value),
        "model" => section::<ModelConfig>(value),
        "train" => section::<TrainConfig>(value),
        "loss" => section::<LossConfig>(value),
        "eval" => section::<EvalConfig>(value),
        _ => None,
    })
}

/// The first base key (section order) whose value alone does not deserialize, with serde's
/// message: type errors name no key when a whole table is deserialized, so each key is tried
/// on its own.
fn first_bad_key(base: &toml::Table) -> Option<(String, String)> {
    for (section, body) in base {
        let Some(body) = body.as_table() else { continue };
        for (key, value) in body {
            let mut probe = toml::Table::new();
            set_path(&mut probe, &format!("{section}.{key}"), value.clone());
            probe.insert("seed".into(), toml::Value::Integer(0));
            if let Err(e) = RunConfig::deserialize(toml::Value::Table(probe)) {
                return Some((format!("{section}.{key}"), e.message().to_string()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty spec runs one cell, seed 0, with every section's defaults (the serde defaults
    /// of a spec and the `Default` impls cannot drift apart).
    #[test]
    fn an_empty_spec_runs_the_defaults() {
        let spec = Spec::parse(Path::new("empty.toml"), "name = \"empty\"\n".into()).unwrap();
        let cells = spec.cells().unwrap();
        assert_eq!(cells.len(), 1);
        let defaults = RunConfig::default().resolve();
        assert_eq!(cells[0].config, defaults);
        assert_eq!(cells[0].hash, defaults.hash());
    }

    /// The error a spec reports: (key, line, column, message).
    fn error_of(text: &str) -> (String, usize, usize, String) {
        match Spec::parse(Path::new("bad.toml"), text.into()) {
            Err(Error::Spec { key, line, column, message, .. }) => (key, line, column, message),
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    /// Base sections are read as partial tables, yet their errors are those of the typed
    /// sections, where they are written, and the first in the file is the one reported.
    #[test]
    fn base_section_errors_are_typed_located_and_in_file_order() {
        let (key, line, column, message) = error_of("name = \"t\"\nloss = 3\n");
        assert_eq!((key.as_str(), line, column), ("loss", 2, 8), "{message}");
        assert!(message.contains("expected struct LossConfig"), "{message}");
        // Inside an array of tables: the nested value, not the section.
        let (key, line, column, message) = error_of("name = \"t\"\n[[data.eval]]\nname = 3\npath = \"x\"\n");
        assert_eq!((key.as_str(), line, column), ("data.eval.name", 3, 8), "{message}");
        assert!(message.contains("invalid type"), "{message}");
        let section = "[loss]\nlambda = \"x\"\n";
        let figure = "[[figure]]\nname = 3\n";
        let (key, line, ..) = error_of(&format!("name = \"t\"\n{section}{figure}"));
        assert_eq!((key.as_str(), line), ("loss.lambda", 3));
        let (key, line, ..) = error_of(&format!("name = \"t\"\n{figure}{section}"));
        assert_eq!((key.as_str(), line), ("figure.name", 3));
        // A missing name is found after every value of the file.
        let (key, line, ..) = error_of(&format!("description = \"d\"\n{section}"));
        assert_eq!((key.as_str(), line), ("loss.lambda", 3));
        let (key, line, ..) = error_of("description = \"d\"\n[loss]\nlambda = 0.5\n");
        assert_eq!((key.as_str(), line), ("name", 1));
    }

    /// A cell made from its grid point's config with the seed set is the cell made from its
    /// own table (what every cell was, before a point's config was made once for its seeds);
    /// the count is known without expanding.
    #[test]
    fn each_seed_of_a_point_is_the_cell_its_own_table_makes() {
        let text = "name = \"g\"\n[sweep]\n\"loss.lambda\" = [0.0, 1.0]\nseeds = [5, 9, 2]\n";
        let spec = Spec::parse(Path::new("g.toml"), text.into()).unwrap();
        let cells = spec.cells().unwrap();
        assert_eq!((cells.len(), spec.n_cells()), (6, 6));
        for cell in &cells {
            let mut table = spec.base.clone();
            for (key, value) in &cell.swept {
                set_path(&mut table, key, value.clone());
            }
            let own = RunConfig::deserialize(toml::Value::Table(table)).unwrap().resolve();
            assert_eq!(cell.config, own, "{}", cell.label());
            assert_eq!(cell.hash, own.hash(), "{}", cell.label());
        }
        assert!(!spec.reads_inputs());
    }

    /// Cells: the first axis varies slowest, seeds fastest; a zip moves its keys together.
    #[test]
    fn cells_expand_the_grid_in_order() {
        let text = "name = \"g\"\n[sweep]\n\"loss.lambda\" = [0.0, 1.0]\n\"train.lr\" = [0.1, 0.01, 0.001]\nseeds = [5, 9]\n";
        let cells = Spec::parse(std::path::Path::new("g.toml"), text.into()).unwrap().cells().unwrap();
        assert_eq!(cells.len(), 2 * 3 * 2);
        let labels: Vec<String> = cells.iter().map(|c| c.label()).collect();
        assert_eq!(labels[0], "loss.lambda=0.0 train.lr=0.1 seed=5");
        assert_eq!(labels[1], "loss.lambda=0.0 train.lr=0.1 seed=9");
        assert_eq!(labels[2], "loss.lambda=0.0 train.lr=0.01 seed=5");
        assert_eq!(labels[6], "loss.lambda=1.0 train.lr=0.1 seed=5");
        assert_eq!(labels[11], "loss.lambda=1.0 train.lr=0.001 seed=9");
        for (i, c) in cells.iter().enumerate() {
            assert_eq!(c.index, i);
            let (l, r, s) = (i / 6, (i / 2) % 3, i % 2);
            assert_eq!(c.config.loss.lambda, [0.0, 1.0][l]);
            assert_eq!(c.config.train.lr, [0.1, 0.01, 0.001][r]);
            assert_eq!(c.config.seed, [5, 9][s]);
            assert_eq!(c.hash, c.config.hash());
        }
        let hashes: std::collections::HashSet<&str> = cells.iter().map(|c| c.hash.as_str()).collect();
        assert_eq!(hashes.len(), cells.len(), "every cell is its own run");

        let zipped = "name = \"g\"\n[sweep]\n\"loss.lambda\" = [0.0, 1.0]\n[[sweep.zip]]\n\"data.flip\" = [0.0, 0.1]\n\"data.beta\" = [1.0, 2.0]\n";
        let cells = Spec::parse(std::path::Path::new("g.toml"), zipped.into()).unwrap().cells().unwrap();
        let got: Vec<(f64, f64, f64)> =
            cells.iter().map(|c| (c.config.loss.lambda, c.config.data.flip, c.config.data.beta)).collect();
        assert_eq!(got, [(0.0, 0.0, 1.0), (0.0, 0.1, 2.0), (1.0, 0.0, 1.0), (1.0, 0.1, 2.0)]);
    }
}
