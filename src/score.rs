//! Scoring a preference file with a kept model (`rmlab score`): the run's weights and config
//! from the store's artifacts, the file read as the run read its data, every pair's rewards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::data;
use crate::error::{Error, Result};
use crate::experiment::RunConfig;
use crate::experiment::config::{DataKind, ModelKind};
use crate::store::Store;

/// What `rmlab score` found.
#[derive(Debug)]
pub struct Scores {
    /// One row per pair of the file: `prompt`, `chosen`, `rejected`, their response ids
    /// (`chosen_response`, `rejected_response`, as the `rewards` table numbers responses), the
    /// `split` (see [`UNSEEN`]), `reward_chosen`, `reward_rejected`.
    pub pairs: DataFrame,
    /// Rows of the file read, and of them skipped as bad (`--skip-bad-rows`).
    pub rows: usize,
    pub skipped: usize,
    /// Fraction of pairs with `reward_chosen > reward_rejected`.
    pub accuracy: f64,
    /// The file's distinct responses, and their rewards' statistics.
    pub responses: usize,
    pub reward_mean: f64,
    pub reward_std: f64,
    pub reward_max_abs: f64,
    /// The training-response statistics kept with the model, and whether rewards were
    /// normalized by them.
    pub normalization: (f64, f64),
    pub normalized: bool,
    pub run_uid: String,
    /// The file scored, as given.
    pub file: std::path::PathBuf,
}

/// One line: the pairs scored, by which run, the accuracy and the rewards' statistics.
impl std::fmt::Display for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} pairs scored by run {}{}: accuracy {:.4}; rewards{} over {} responses: mean {:.4}, std {:.4}, max |r| {:.4}",
            self.file.display(),
            self.pairs.height(),
            self.run_uid,
            if self.skipped > 0 {
                format!(" ({} of {} rows skipped as bad)", self.skipped, self.rows)
            } else {
                String::new()
            },
            self.accuracy,
            if self.normalized {
                format!(" (normalized by mean {:.4}, std {:.4})", self.normalization.0, self.normalization.1)
            } else {
                String::new()
            },
            self.responses,
            self.reward_mean,
            self.reward_std,
            self.reward_max_abs
        )
    }
}

/// The `split` of a pair whose file the run neither trained on nor evaluated on: its prompts
/// were never split by the run. A pair of the run's own training file has its prompt's split
/// under the run's seed (`train`, `val`, `test`); of one of its evaluation files, that file's
/// split name.
pub const UNSEEN: &str = "unseen";

/// How `rmlab score` reads a file and finds what the kept model needs.
#[derive(Clone, Debug, Default)]
pub struct ScoreOptions {
    /// Rewards as `(r − mean) / std` by the training statistics kept with the model.
    pub normalize: bool,
    /// Skip rows that cannot be read, counted in [`Scores::skipped`], instead of failing on the
    /// first (as `data.skip_bad_rows` does for a run; a run that skipped skips here too).
    pub skip_bad_rows: bool,
    /// An encoder run's checkpoint directory, where the run's `model.encoder` is not found
    /// from its spec's directory (a moved checkpoint); it must be the same checkpoint
    /// (`model.encoder_sha256`).
    pub encoder: Option<PathBuf>,
}

/// Scores `file` with the model kept by run `run` (its uid, or its id in this store) of the
/// store at `db`, as `opts` says. Every model `train.save` keeps scores: linear and MLP models
/// on the file's features, frozen encoders on the (cached) embeddings of its texts, fine-tuned
/// encoders on its token rows. The forward pass runs on the run's LibTorch thread count
/// (`runs.threads`; LibTorch's count is process-wide, and is set back afterwards).
pub fn score(db: &Path, run: &str, file: &Path, opts: &ScoreOptions) -> Result<Scores> {
    let normalize = opts.normalize;
    let store = Store::open_read_only(db)?;
    let conn = store.connection();
    let found: Option<(i64, String)> = conn
        .query_row("SELECT id, uid FROM runs WHERE uid = ?1 OR CAST(id AS TEXT) = ?1", [run], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(|e| Error::sqlite(db, e))?;
    let Some((run_id, uid)) = found else {
        return Err(Error::flag("--run", run, format!("no run with this uid or id in {}", db.display())));
    };
    let artifact = |kind: &str| -> Result<Option<(String, String)>> {
        conn.query_row(
            "SELECT path, sha256 FROM artifacts WHERE run_id = ?1 AND kind = ?2",
            rusqlite::params![run_id, kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(|e| Error::sqlite(db, e))
    };
    let (Some(record), Some(weights)) = (artifact("config")?, artifact("weights")?) else {
        return Err(Error::flag(
            "--run",
            run,
            "the run kept no model (train.save = \"none\"); rerun its cell with --set train.save=\"final\"",
        ));
    };
    let root = store.artifacts_root();
    let read_checked = |(rel, sha): &(String, String)| -> Result<Vec<u8>> {
        let path = root.join(rel);
        // A kept file that cannot be read is a failure of the store's artifacts (exit code 1);
        // one that reads but was changed is not the model the run kept (bad input, 2).
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::unreadable(&path, format!("the kept model's file: {e}")))?;
        if sha256(&bytes) != *sha {
            return Err(Error::file(&path, "its SHA-256 is not the one recorded; the file was changed"));
        }
        Ok(bytes)
    };
    let record_path = record.0.clone();
    let record_file = root.join(&record_path);
    let record: serde_json::Value = serde_json::from_slice(&read_checked(&record)?)
        .map_err(|e| Error::file(&record_file, format!("not a model record: {e}")))?;
    let weights_path = root.join(&weights.0);
    read_checked(&weights)?;
    let tensors = tch::Tensor::read_safetensors(&weights_path)
        .map_err(|e| Error::unreadable(&weights_path, format!("not a readable safetensors file: {e}")))?;
    // rmlab keeps float32 weights only; another kind would be cast to numbers of no meaning.
    if let Some((name, t)) = tensors.iter().find(|(_, t)| t.kind() != tch::Kind::Float) {
        return Err(Error::file(
            &weights_path,
            format!("tensor `{name}` is stored as {:?}; a kept model's weights are float32 (F32)", t.kind()),
        ));
    }
    let mut cfg: RunConfig = serde_json::from_value(record["config"].clone()).map_err(|e| {
        Error::file(&record_file, format!("the kept model's config does not read as this rmlab's: {e}"))
    })?;
    if cfg.data.kind != DataKind::PreferenceFile {
        return Err(Error::flag(
            "--run",
            run,
            "the run trained on synthetic data, which has no text; score takes runs trained on preference files",
        ));
    }
    let engine = record["engine"].as_str().unwrap_or("");
    let (mean, std) = if normalize {
        normalization(&record).map_err(|why| {
            Error::file(
                &record_file,
                format!(
                    "run {uid}'s kept model cannot normalize rewards: {why}; score it without --normalize"
                ),
            )
        })?
    } else {
        // Not used; shown as unknown rather than as a made-up (0, 1).
        (f64::NAN, f64::NAN)
    };

    if cfg.model.kind == ModelKind::Encoder {
        let dir = locate_encoder(conn, db, run_id, run, &cfg, opts.encoder.as_deref())?;
        cfg.model.resolved_encoder = Some(dir);
        // The sweep's cache of frozen embeddings is beside its store; a file the run never saw
        // is embedded there too, else in the system's temporary directory.
        let beside = db.parent().unwrap_or(Path::new(".")).join("cache/embeddings");
        cfg.model.embedding_cache = beside.is_dir().then_some(beside);
    }

    // The file, read as the run read its training data (same text features, same split draw).
    let file_abs = std::path::absolute(file).map_err(|e| Error::io(file, e))?;
    // Streamed, not read whole: a device (`/dev/zero`) is refused, a large file is not held.
    let file_sha = data::preference_file::file_sha256(&file_abs)?;
    let seen = if cfg.data.file_sha256.as_deref() == Some(file_sha.as_str()) {
        Seen::Trained
    } else if let Some(e) = cfg.data.eval.iter().find(|e| e.file_sha256.as_deref() == Some(file_sha.as_str()))
    {
        Seen::Evaluated(e.name.clone())
    } else {
        Seen::Unseen
    };
    cfg.data.path = Some(file_abs.display().to_string());
    cfg.data.resolved_path = Some(PathBuf::from(&file_abs));
    cfg.data.file_sha256 = Some(file_sha);
    cfg.data.eval.clear();
    cfg.data.skip_bad_rows |= opts.skip_bad_rows;
    let (prefs, read) = data::load(&cfg.data, cfg.seed).map_err(suggest_skip_flag)?;
    let (rows, skipped) = read.as_ref().map_or((0, 0), |r| (r.train.rows, r.train.skipped));
    let (dataset, _) = crate::train::inputs::dataset(&cfg, prefs.clone(), tch::Device::Cpu)?;
    // LibTorch's CPU matmuls split their sums by thread: on the run's thread count a fine-tuned
    // encoder's rewards are the run's bit for bit, on another they differ in the last bits.
    let threads: Option<i64> = conn
        .query_row("SELECT threads FROM runs WHERE id = ?1", [run_id], |r| r.get(0))
        .map_err(|e| Error::sqlite(db, e))?;
    let before = tch::get_num_threads();
    if let Some(t) = threads.filter(|&t| t > 0) {
        tch::set_num_threads(t as i32);
    }
    let rewards = crate::train::kept_model_rewards(&cfg, engine, &tensors, &dataset);
    tch::set_num_threads(before);
    let rewards = rewards?;
    let mut r = Vec::<f64>::try_from(rewards.to_kind(tch::Kind::Double))?;
    if normalize {
        r.iter_mut().for_each(|v| *v = (*v - mean) / std);
    }
    let texts = prefs.texts.as_ref().expect("preference files keep their texts");
    let (mut prompt, mut chosen, mut rejected, mut ci, mut ri, mut split, mut rc, mut rr) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for p in &prefs.pairs {
        let x = prefs.prompt_of[p.chosen];
        prompt.push(texts.prompts[x].clone());
        chosen.push(texts.responses[p.chosen].clone());
        rejected.push(texts.responses[p.rejected].clone());
        ci.push(p.chosen as i64);
        ri.push(p.rejected as i64);
        split.push(match &seen {
            Seen::Trained => prefs.split_of_response(p.chosen).as_str().to_string(),
            Seen::Evaluated(name) => name.clone(),
            Seen::Unseen => UNSEEN.to_string(),
        });
        rc.push(r[p.chosen]);
        rr.push(r[p.rejected]);
    }
    let n = prefs.pairs.len();
    let columns = vec![
        Column::new("prompt".into(), prompt),
        Column::new("chosen".into(), chosen),
        Column::new("rejected".into(), rejected),
        Column::new("chosen_response".into(), ci),
        Column::new("rejected_response".into(), ri),
        Column::new("split".into(), split),
        Column::new("reward_chosen".into(), rc),
        Column::new("reward_rejected".into(), rr),
    ];
    let pairs = DataFrame::new(n, columns).map_err(|e| Error::report(format!("polars: {e}")))?;
    let t = tally(&prefs.pairs, &r);
    if t.non_finite > 0 {
        // NaN compares false and `max` skips it: the statistics would read as a model that
        // scores nothing right, not as one whose rewards are not numbers.
        return Err(Error::training(format!(
            "run {uid}: {} of the {} rewards of {} are not finite (NaN or ±inf); the kept model's weights are not usable",
            t.non_finite,
            t.responses,
            file.display()
        )));
    }
    Ok(Scores {
        pairs,
        rows,
        skipped,
        accuracy: t.accuracy,
        responses: t.responses,
        reward_mean: t.mean,
        reward_std: t.std,
        reward_max_abs: t.max_abs,
        normalization: (mean, std),
        normalized: normalize,
        run_uid: uid,
        file: file.to_path_buf(),
    })
}

/// Which of the run's files the scored file is.
enum Seen {
    /// Its training file: pairs are in the run's train, val and test splits.
    Trained,
    /// One of its evaluation files, by name.
    Evaluated(String),
    /// Neither.
    Unseen,
}

/// A bad row's error says how to skip bad rows in a run (`data.skip_bad_rows`); `score` skips
/// them with its flag.
fn suggest_skip_flag(e: Error) -> Error {
    match e {
        Error::File { path, line, message } => Error::File {
            path,
            line,
            message: message.replace("(set data.skip_bad_rows = true to", "(score with --skip-bad-rows to"),
        },
        other => other,
    }
}

/// The checkpoint directory of an encoder run: `explicit` (`--encoder`) when given, else its
/// `model.encoder` resolved as the sweep resolved it, from the directory of the spec the run's
/// experiment was stored with. Either must be the checkpoint the run was trained from, by its
/// SHA-256 (`model.encoder_sha256`): a fine-tuned model keeps its weights, but the tokenizer and
/// config (and a frozen model's encoder weights) come from the checkpoint.
fn locate_encoder(
    conn: &rusqlite::Connection,
    db: &Path,
    run_id: i64,
    run: &str,
    cfg: &RunConfig,
    explicit: Option<&Path>,
) -> Result<PathBuf> {
    use crate::experiment::checkpoint;
    let value = cfg.model.encoder.clone().unwrap_or_default();
    let dir = match explicit {
        Some(d) => {
            // Absolute, so that `resolve` takes it as a directory, never as a known name.
            let abs = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
            checkpoint::resolve(&abs.display().to_string(), Path::new("/"))
                .map_err(|why| Error::flag("--encoder", d.display(), why))?
        }
        None => {
            let spec_path: Option<String> = conn
                .query_row(
                    "SELECT e.spec_path FROM runs r JOIN experiments e ON e.name = r.experiment WHERE r.id = ?1",
                    [run_id],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                .map_err(|e| Error::sqlite(db, e))?;
            let spec_dir = spec_path
                .as_deref()
                .and_then(|p| Path::new(p).parent())
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            checkpoint::resolve(&value, &spec_dir).map_err(|why| {
                Error::flag(
                    "--run",
                    run,
                    format!(
                        "its encoder `{value}` is not found from its spec's directory {} ({why}); give the checkpoint's directory with --encoder DIR",
                        spec_dir.display()
                    ),
                )
            })?
        }
    };
    let sha = checkpoint::sha256(&dir).map_err(|why| Error::unreadable(&dir, why))?;
    if cfg.model.encoder_sha256.as_deref() != Some(sha.as_str()) {
        let flag = if explicit.is_some() { "--encoder" } else { "--run" };
        let value = if explicit.is_some() { dir.display().to_string() } else { run.to_string() };
        return Err(Error::flag(
            flag,
            value,
            format!(
                "the checkpoint at {} (SHA-256 {sha}) is not the one the run was trained from ({}); give that checkpoint's directory with --encoder DIR",
                dir.display(),
                cfg.model.encoder_sha256.as_deref().unwrap_or("none recorded")
            ),
        ));
    }
    Ok(dir)
}

/// The normalization statistics a model record keeps: `reward_mean` and `reward_std` of the
/// training responses' rewards. Every record rmlab writes has both, but a run whose rewards were
/// not finite wrote them as JSON `null` (serde's NaN), and a constant reward has std 0: neither
/// can normalize, and a silent fallback to (0, 1) would print unnormalized rewards as normalized.
fn normalization(record: &serde_json::Value) -> std::result::Result<(f64, f64), String> {
    let stat = |key: &str| match record.get(key) {
        Some(v) if v.is_f64() || v.is_i64() || v.is_u64() => Ok(v.as_f64().expect("a JSON number")),
        Some(serde_json::Value::Null) => {
            Err(format!("its record has {key} = null (the rewards were not finite)"))
        }
        Some(other) => Err(format!("its record has {key} = {other}, not a number")),
        None => Err(format!("its record has no {key}")),
    };
    let (mean, std) = (stat("reward_mean")?, stat("reward_std")?);
    if !(std.is_finite() && std > 0.0) {
        return Err(format!("its training rewards have std {std} (constant rewards)"));
    }
    Ok((mean, std))
}

/// Accuracy and reward statistics of scored pairs.
#[derive(Debug, PartialEq)]
struct Tally {
    /// Fraction of pairs with `r[chosen] > r[rejected]` (a tie counts as wrong); 0 without pairs.
    accuracy: f64,
    /// Distinct responses in the pairs, and the mean, population std and max |r| of their rewards.
    responses: usize,
    mean: f64,
    std: f64,
    max_abs: f64,
    /// Of those responses, how many rewards are NaN or ±inf.
    non_finite: usize,
}

/// The [`Tally`] of `pairs` under rewards `r` (`[R]`, indexed by response); responses in no
/// pair do not count.
fn tally(pairs: &[data::Pair], r: &[f64]) -> Tally {
    let correct = pairs.iter().filter(|p| r[p.chosen] > r[p.rejected]).count();
    let responses: BTreeSet<usize> = pairs.iter().flat_map(|p| [p.chosen, p.rejected]).collect();
    let vals: Vec<f64> = responses.iter().map(|&i| r[i]).collect();
    let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
    let sd = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len().max(1) as f64).sqrt();
    Tally {
        accuracy: correct as f64 / pairs.len().max(1) as f64,
        responses: vals.len(),
        mean: m,
        std: sd,
        max_abs: vals.iter().fold(0.0, |a: f64, v| a.max(v.abs())),
        non_finite: vals.iter().filter(|v| !v.is_finite()).count(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Pair;
    use serde_json::json;

    fn pair(chosen: usize, rejected: usize) -> Pair {
        Pair { chosen, rejected }
    }

    /// Accuracy and statistics worked by hand: response 4 is in no pair and must not count,
    /// a tie is not a correct pair, response 1 is in three pairs but counts once.
    #[test]
    fn tally_matches_hand_computed_values() {
        let r = [1.0, -1.0, 0.5, 2.0, 100.0, 0.5];
        let pairs = [pair(0, 1), pair(2, 3), pair(3, 1), pair(2, 5), pair(5, 1)];
        let t = tally(&pairs, &r);
        // Correct: 1 > −1, 2 > −1, 0.5 > −1; wrong: 0.5 < 2, the tie 0.5 = 0.5.
        assert_eq!(t.accuracy, 3.0 / 5.0);
        assert_eq!(t.responses, 5);
        // Responses 0, 1, 2, 3, 5: rewards 1, −1, 0.5, 2, 0.5; sum 3, mean 0.6.
        assert!((t.mean - 0.6).abs() < 1e-15, "{}", t.mean);
        // Squared deviations 0.16 + 2.56 + 0.01 + 1.96 + 0.01 = 4.7, / 5 = 0.94.
        assert!((t.std - 0.94f64.sqrt()).abs() < 1e-15, "{}", t.std);
        assert_eq!(t.max_abs, 2.0);
    }

    #[test]
    fn non_finite_rewards_are_counted() {
        let pairs = [pair(0, 1), pair(2, 1)];
        let t = tally(&pairs, &[f64::NAN, 0.5, f64::INFINITY, 7.0]);
        assert_eq!((t.responses, t.non_finite), (3, 2));
        assert_eq!(tally(&pairs, &[1.0, 0.5, 2.0]).non_finite, 0);
    }

    #[test]
    fn tally_of_nothing_is_zero_not_nan() {
        let t = tally(&[], &[]);
        assert_eq!(
            t,
            Tally { accuracy: 0.0, responses: 0, mean: 0.0, std: 0.0, max_abs: 0.0, non_finite: 0 }
        );
    }

    #[test]
    fn normalization_needs_both_statistics_and_a_positive_std() {
        assert_eq!(normalization(&json!({"reward_mean": -0.5, "reward_std": 2})), Ok((-0.5, 2.0)));
        let err = |v: serde_json::Value| normalization(&v).unwrap_err();
        assert!(err(json!({"reward_std": 1.0})).contains("no reward_mean"));
        assert!(err(json!({"reward_mean": 0.0})).contains("no reward_std"));
        assert!(err(json!({"reward_mean": null, "reward_std": 1.0})).contains("reward_mean = null"));
        assert!(err(json!({"reward_mean": 0.0, "reward_std": "1"})).contains("not a number"));
        assert!(err(json!({"reward_mean": 0.0, "reward_std": 0.0})).contains("std 0"));
        assert!(err(json!({"reward_mean": 0.0, "reward_std": -1.0})).contains("std -1"));
    }
}
