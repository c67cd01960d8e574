//! Kept models: a sweep with `train.save` keeps each run's weights and config in the store's
//! `artifacts`, merging carries them, and `rmlab score` gives back the run's rewards.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use rmlab::score::ScoreOptions;
use rusqlite::Connection;

fn plain() -> ScoreOptions {
    ScoreOptions::default()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmlab")).args(args).current_dir(repo()).output().expect("rmlab runs")
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}\n{}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    o
}

#[track_caller]
fn bad_input(o: Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

fn sweep(db: &Path, extra: &[&str]) {
    let real = repo().join("experiments/real.toml").display().to_string();
    let mut args = vec![
        "sweep",
        &real,
        "--db",
        db.to_str().unwrap(),
        "--set",
        "data.path=tests/fixtures/trl/pairs.jsonl",
        "--set",
        "train.steps=60",
        "--set",
        "loss.lambda=0.01",
    ];
    args.extend(extra);
    ok(rmlab(&args));
}

/// The final reward of every response of a run, as the store keeps it.
fn stored_rewards(db: &Path, uid: &str) -> HashMap<i64, f64> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT w.response, w.reward FROM rewards w JOIN runs r ON r.id = w.run_id WHERE r.uid = ?1")
        .unwrap();
    stmt.query_map([uid], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// The rewards `[R]` of every response of `file` under the kept weights `tensors`, computed
/// here in f64 from the model's definition (mean of the non-padding n-gram embeddings, ReLU
/// hidden layers, a linear head), apart from the library's forward passes.
fn rewards_by_hand(
    cfg: &rmlab::experiment::config::RunConfig,
    tensors: &[(String, tch::Tensor)],
    file: &Path,
) -> Vec<f64> {
    use rmlab::experiment::config::Activation;
    assert_eq!(cfg.model.activation, Activation::Relu, "the hand computation is for ReLU layers");
    let get = |name: &str| -> (Vec<f64>, Vec<i64>) {
        let t = &tensors.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1;
        (Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap(), t.size())
    };
    let mut data = cfg.data.clone();
    data.path = Some(file.display().to_string());
    data.resolved_path = Some(file.to_path_buf());
    data.eval.clear();
    let (prefs, _) = rmlab::data::load(&data, cfg.seed).unwrap();
    let bags = prefs.bags.as_ref().expect("an n-gram model reads n-gram bags");
    let (embed, shape) = get("embed.weight");
    let e = shape[1] as usize;
    let layers: Vec<(Vec<f64>, Vec<f64>)> = (0..)
        .map(|i| format!("hidden_{i}"))
        .take_while(|l| tensors.iter().any(|(n, _)| *n == format!("{l}.weight")))
        .map(|l| (get(&format!("{l}.weight")).0, get(&format!("{l}.bias")).0))
        .collect();
    assert!(!layers.is_empty(), "an MLP");
    let (head_w, head_b) = (get("head.weight").0, get("head.bias").0[0]);
    bags.ids
        .chunks(bags.width)
        .map(|ids| {
            let used: Vec<usize> =
                ids.iter().filter(|&&i| i as usize != bags.buckets).map(|&i| i as usize).collect();
            let mut h: Vec<f64> = (0..e)
                .map(|j| used.iter().map(|&i| embed[i * e + j]).sum::<f64>() / used.len().max(1) as f64)
                .collect();
            for (w, b) in &layers {
                h = b
                    .iter()
                    .enumerate()
                    .map(|(o, bo)| {
                        (bo + h.iter().enumerate().map(|(k, x)| w[o * h.len() + k] * x).sum::<f64>()).max(0.0)
                    })
                    .collect();
            }
            head_b + h.iter().zip(&head_w).map(|(x, w)| x * w).sum::<f64>()
        })
        .collect()
}

#[test]
fn a_kept_model_reproduces_its_runs_rewards_and_travels_with_merges() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    sweep(&db, &["--set", "train.save=\"final\""]);
    let conn = Connection::open(&db).unwrap();
    let runs: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    let kept: i64 = conn.query_row("SELECT count(*) FROM artifacts", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 2 * runs, "weights and config for every run");
    let (uid, path): (String, String) = conn
        .query_row(
            "SELECT r.uid, a.path FROM runs r JOIN artifacts a ON a.run_id = r.id AND a.kind = 'weights' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(dir.path().join(&path).is_file(), "{path}");
    let fixture = repo().join("tests/fixtures/trl/pairs.jsonl");

    // Scored on its own training file, the model gives back the run's final rewards, bit for bit.
    let scores = rmlab::score::score(&db, &uid, &fixture, &plain()).unwrap();
    let stored = stored_rewards(&db, &uid);
    let col = |name: &str| -> Vec<f64> {
        scores.pairs.column(name).unwrap().f64().unwrap().into_no_null_iter().collect()
    };
    let ids = |name: &str| -> Vec<i64> {
        scores.pairs.column(name).unwrap().i64().unwrap().into_no_null_iter().collect()
    };
    let mut matched = 0;
    for (side, reward) in [("chosen_response", "reward_chosen"), ("rejected_response", "reward_rejected")] {
        for (id, r) in ids(side).into_iter().zip(col(reward)) {
            if let Some(s) = stored.get(&id) {
                assert_eq!(r.to_bits(), s.to_bits(), "response {id}");
                matched += 1;
            }
        }
    }
    assert!(matched > 200, "{matched} rewards compared");

    // The kept weights are the trained model: the run's training loss fell from step 0, and the
    // model's own definition, computed by hand from the kept tensors, gives the rewards `score`
    // gave (to float32 rounding).
    let loss: Vec<f64> = conn
        .prepare(
            "SELECT m.value FROM metrics m JOIN runs r ON r.id = m.run_id
             WHERE r.uid = ?1 AND m.split = 'train' AND m.name = 'loss_pair' ORDER BY m.step",
        )
        .unwrap()
        .query_map([&uid], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(loss.len() >= 2 && loss[loss.len() - 1] < loss[0] - 0.01, "training loss {loss:?}");
    let (config_path, weights_path): (String, String) = conn
        .query_row(
            "SELECT c.path, w.path FROM artifacts c JOIN artifacts w ON w.run_id = c.run_id
             JOIN runs r ON r.id = c.run_id WHERE r.uid = ?1 AND c.kind = 'config' AND w.kind = 'weights'",
            [&uid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(config_path)).unwrap()).unwrap();
    let cfg: rmlab::experiment::config::RunConfig = serde_json::from_value(record["config"].clone()).unwrap();
    let tensors = tch::Tensor::read_safetensors(dir.path().join(weights_path)).unwrap();
    let by_hand = rewards_by_hand(&cfg, &tensors, &fixture);
    for (side, reward) in [("chosen_response", "reward_chosen"), ("rejected_response", "reward_rejected")] {
        for (id, r) in ids(side).into_iter().zip(col(reward)) {
            let want = by_hand[id as usize];
            assert!((r - want).abs() <= 1e-5 * want.abs().max(1.0), "response {id}: {r}, by hand {want}");
        }
    }

    // Normalized by the training responses' statistics kept with the model: mean 0, sd 1 there.
    let norm =
        rmlab::score::score(&db, &uid, &fixture, &ScoreOptions { normalize: true, ..plain() }).unwrap();
    let splits: Vec<String> = norm
        .pairs
        .column("split")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect();
    let mut train: HashMap<i64, f64> = HashMap::new();
    let (ci, rc) = (
        norm.pairs.column("chosen_response").unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>(),
        norm.pairs.column("reward_chosen").unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<_>>(),
    );
    let (ri, rr) = (
        norm.pairs
            .column("rejected_response")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        norm.pairs.column("reward_rejected").unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<_>>(),
    );
    for i in 0..splits.len() {
        if splits[i] == "train" {
            train.insert(ci[i], rc[i]);
            train.insert(ri[i], rr[i]);
        }
    }
    let n = train.len() as f64;
    let mean = train.values().sum::<f64>() / n;
    let sd = (train.values().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 1e-9 && (sd - 1.0).abs() < 1e-9, "normalized train rewards: mean {mean}, sd {sd}");

    // The command line: a summary, and the pairs as Parquet (or CSV).
    let out = dir.path().join("scores.parquet");
    let (file, db_s) = (fixture.to_str().unwrap(), db.to_str().unwrap());
    let o = ok(rmlab(&["score", "--run", &uid, file, "--db", db_s, "--out", out.to_str().unwrap()]));
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(printed.contains("400 pairs scored by run"), "{printed}");
    use polars::prelude::SerReader;
    let read = polars::prelude::ParquetReader::new(std::fs::File::open(&out).unwrap()).finish().unwrap();
    assert_eq!(read.height(), 400);
    assert_eq!(
        read.column("reward_chosen").unwrap().f64().unwrap().get(0),
        scores.pairs.column("reward_chosen").unwrap().f64().unwrap().get(0)
    );
    let txt = dir.path().join("scores.txt");
    bad_input(
        rmlab(&["score", "--run", &uid, file, "--db", db_s, "--out", txt.to_str().unwrap()]),
        "expected a .csv, .json or .parquet file",
    );

    // A merge into a store elsewhere carries the files; the merged store scores the same.
    let other = tempfile::tempdir().unwrap();
    let merged = other.path().join("m.sqlite");
    ok(rmlab(&["merge", db.to_str().unwrap(), "--into", merged.to_str().unwrap()]));
    assert!(other.path().join(&path).is_file(), "the weights file travelled");
    let again = rmlab::score::score(&merged, &uid, &fixture, &plain()).unwrap();
    assert_eq!(again.accuracy, scores.accuracy);
}

#[test]
fn scoring_without_a_kept_model_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    sweep(&db, &[]);
    let uid: String =
        Connection::open(&db).unwrap().query_row("SELECT uid FROM runs LIMIT 1", [], |r| r.get(0)).unwrap();
    let fixture = repo().join("tests/fixtures/trl/pairs.jsonl");
    let (db_s, file) = (db.to_str().unwrap(), fixture.to_str().unwrap());
    bad_input(rmlab(&["score", "--run", &uid, file, "--db", db_s]), "kept no model");
    bad_input(rmlab(&["score", "--run", "no-such-run", file, "--db", db_s]), "no run with this uid or id");
}

/// A model record whose normalization statistics are unusable (a run with non-finite rewards
/// writes them as `null`; constant rewards have std 0) is refused under `--normalize`, naming
/// the run and the record, rather than normalized by a made-up (0, 1); without `--normalize`
/// the model scores.
#[test]
fn normalizing_without_usable_statistics_is_bad_input() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    sweep(&db, &["--set", "train.save=\"final\""]);
    let conn = Connection::open(&db).unwrap();
    let (uid, run_id, rel): (String, i64, String) = conn
        .query_row(
            "SELECT r.uid, r.id, a.path FROM runs r JOIN artifacts a ON a.run_id = r.id AND a.kind = 'config' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&rel)).unwrap()).unwrap();
    assert!(original["reward_std"].as_f64().unwrap() > 0.0, "the sweep's record is usable");
    let fixture = repo().join("tests/fixtures/trl/pairs.jsonl");
    let (db_s, file) = (db.to_str().unwrap(), fixture.to_str().unwrap());
    for (key, value, needle) in [
        ("reward_mean", serde_json::Value::Null, "reward_mean = null"),
        ("reward_std", serde_json::json!(0.0), "std 0"),
    ] {
        // The edited record, recorded under its own SHA-256 as the store would have it.
        let mut record = original.clone();
        record[key] = value;
        let bytes = serde_json::to_vec_pretty(&record).unwrap();
        let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let edited = format!("artifacts/{sha}.json");
        std::fs::write(dir.path().join(&edited), &bytes).unwrap();
        conn.execute(
            "UPDATE artifacts SET path = ?1, sha256 = ?2, bytes = ?3 WHERE run_id = ?4 AND kind = 'config'",
            rusqlite::params![edited, sha, bytes.len() as i64, run_id],
        )
        .unwrap();
        let o = rmlab(&["score", "--run", &uid, file, "--db", db_s, "--normalize"]);
        bad_input(o.clone(), needle);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&uid) && err.contains(&edited), "names the run and the record: {err}");
        assert!(o.stdout.is_empty(), "no scores printed");
        ok(rmlab(&["score", "--run", &uid, file, "--db", db_s]));
    }
}

/// A kept model's file that was changed is not the model the run kept: bad input (exit code
/// 2). One that cannot be read at all is a failure of the store's artifacts while running
/// (exit code 1), not bad input. Both name the file.
#[test]
fn a_changed_kept_model_is_bad_input_and_an_unreadable_one_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    sweep(&db, &["--set", "train.save=\"final\""]);
    let (uid, rel): (String, String) = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT r.uid, a.path FROM runs r JOIN artifacts a ON a.run_id = r.id AND a.kind = 'weights' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let fixture = repo().join("tests/fixtures/trl/pairs.jsonl");
    let (db_s, file) = (db.to_str().unwrap(), fixture.to_str().unwrap());
    let weights = dir.path().join(&rel);
    let kept = std::fs::read(&weights).unwrap();
    let mut changed = kept.clone();
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&weights, &changed).unwrap();
    bad_input(rmlab(&["score", "--run", &uid, file, "--db", db_s]), "its SHA-256 is not the one recorded");
    std::fs::remove_file(&weights).unwrap();
    let o = rmlab(&["score", "--run", &uid, file, "--db", db_s]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the kept model's file") && err.contains(&rel), "names the file: {err}");
    std::fs::write(&weights, &kept).unwrap();
    ok(rmlab(&["score", "--run", &uid, file, "--db", db_s]));
}

/// Every reward `score` gives run `uid` on `file` against the run's own final rewards: bit for
/// bit (the run's forward pass on the run's inputs). Returns how many were compared.
#[track_caller]
fn assert_reproduces(db: &Path, uid: &str, file: &Path) -> usize {
    let scores = rmlab::score::score(db, uid, file, &plain()).unwrap_or_else(|e| panic!("run {uid}: {e}"));
    let stored = stored_rewards(db, uid);
    let mut matched = 0;
    for (side, reward) in [("chosen_response", "reward_chosen"), ("rejected_response", "reward_rejected")] {
        let ids = scores.pairs.column(side).unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>();
        let rs = scores.pairs.column(reward).unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<_>>();
        for (id, r) in ids.into_iter().zip(rs) {
            let s =
                stored.get(&id).unwrap_or_else(|| panic!("run {uid}: response {id} has no stored reward"));
            assert_eq!(r.to_bits(), s.to_bits(), "run {uid}: response {id}: scored {r}, stored {s}");
            matched += 1;
        }
    }
    matched
}

/// A spec in `dir` of a model on the fixture `file`, keeping every run's model.
fn kept_spec(dir: &Path, name: &str, data: &str, model: &str) -> std::path::PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\n[data]\nkind = \"preference_file\"\nval_frac = 0.25\n{data}\n\
             [model]\ndevice = \"cpu\"\n{model}\n[train]\nsteps = 30\nlr = 0.01\nbatch_size = 32\nsave = \"final\"\n\
             [eval]\nevery = 10\n[loss]\nlambda = 0.01\n"
        ),
    )
    .unwrap();
    spec
}

/// `score` scores every feature model `train.save` keeps, as it trained: linear and MLP models
/// on hashed n-grams and on a file's embedding columns, each giving back its run's rewards.
#[test]
fn every_feature_model_kind_scores() {
    let dir = tempfile::tempdir().unwrap();
    for (name, file, features, model) in [
        ("linear_ngrams", "pairs.jsonl", "text_features = \"ngrams\"\nbuckets = 512", "kind = \"linear\""),
        (
            "mlp_ngrams",
            "pairs.jsonl",
            "text_features = \"ngrams\"\nbuckets = 512",
            "kind = \"mlp\"\nhidden = [8]",
        ),
        ("linear_embedding", "embeddings.jsonl", "text_features = \"embedding\"", "kind = \"linear\""),
        (
            "mlp_embedding",
            "embeddings.jsonl",
            "text_features = \"embedding\"",
            "kind = \"mlp\"\nhidden = [8, 4]",
        ),
    ] {
        let file = repo().join("tests/fixtures/trl").join(file);
        let data = format!("path = \"{}\"\n{features}", file.display());
        let spec = kept_spec(dir.path(), name, &data, model);
        let db = dir.path().join(format!("{name}.sqlite"));
        ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]));
        let uid: String =
            Connection::open(&db).unwrap().query_row("SELECT uid FROM runs", [], |r| r.get(0)).unwrap();
        assert!(assert_reproduces(&db, &uid, &file) > 100, "{name}");
    }
}

/// The store of one kept MLP model on the TRL fixture, its run's uid and the kept weights'
/// path relative to the store's directory.
fn kept_mlp(dir: &Path) -> (std::path::PathBuf, String, String) {
    let db = dir.join("s.sqlite");
    sweep(&db, &["--set", "train.save=\"final\"", "--set", "sweep.seeds=1"]);
    let (uid, rel): (String, String) = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT r.uid, a.path FROM runs r JOIN artifacts a ON a.run_id = r.id AND a.kind = 'weights' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (db, uid, rel)
}

/// Kept weights of another kind than float32 (here an integer head, recorded under its own
/// SHA-256 as if the store had kept it) are refused, naming the file and the tensor, rather
/// than cast to rewards of no meaning (issue 26: a mean of −3.4e7).
#[test]
fn kept_weights_that_are_not_float32_are_bad_input() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (db, uid, rel) = kept_mlp(dir.path());
    let tensors: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(dir.path().join(&rel))
        .unwrap()
        .into_iter()
        .map(|(n, t)| if n == "hidden_0.weight" { (n, (t * 1000.0).to_kind(tch::Kind::Int)) } else { (n, t) })
        .collect();
    let tmp = dir.path().join("w.safetensors");
    tch::Tensor::write_safetensors(&tensors, &tmp).unwrap();
    let bytes = std::fs::read(&tmp).unwrap();
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let edited = format!("artifacts/{sha}.safetensors");
    std::fs::write(dir.path().join(&edited), &bytes).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE artifacts SET path = ?1, sha256 = ?2, bytes = ?3
             WHERE kind = 'weights' AND run_id = (SELECT id FROM runs WHERE uid = ?4)",
            rusqlite::params![edited, sha, bytes.len() as i64, uid],
        )
        .unwrap();
    let fixture = repo().join("tests/fixtures/trl/pairs.jsonl");
    let o = rmlab(&["score", "--run", &uid, fixture.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    bad_input(o.clone(), "tensor `hidden_0.weight` is stored as Int; a kept model's weights are float32");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&edited), "names the file");
    assert!(o.stdout.is_empty());
}

/// A file with a bad row: `score` fails on it naming file and line and its own flag (not the
/// spec key it cannot set); with `--skip-bad-rows` it scores the rest and says how many rows it
/// skipped. The pairs of a file the run never saw are `unseen`, not `train`/`val`; those of
/// the run's own file keep their split.
#[test]
fn score_skips_bad_rows_when_asked_and_labels_unseen_files() {
    let dir = tempfile::tempdir().unwrap();
    let (db, uid, _) = kept_mlp(dir.path());
    let own = repo().join("tests/fixtures/trl/pairs.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&own).unwrap().lines().map(String::from).collect();
    lines.insert(2, "{\"prompt\": \"p\", \"chosen\": 3}".into());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let (db_s, bad_s) = (db.to_str().unwrap(), bad.to_str().unwrap());
    let o = rmlab(&["score", "--run", &uid, bad_s, "--db", db_s]);
    bad_input(o.clone(), &format!("{}:3: ", bad.display()));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--skip-bad-rows") && !err.contains("data.skip_bad_rows"), "{err}");
    let o = ok(rmlab(&["score", "--run", &uid, bad_s, "--db", db_s, "--skip-bad-rows"]));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("400 pairs scored by run") && printed.contains("(1 of 401 rows skipped as bad)"),
        "{printed}"
    );
    let splits = |file: &Path, skip_bad_rows: bool| -> std::collections::BTreeSet<String> {
        let s = rmlab::score::score(&db, &uid, file, &ScoreOptions { skip_bad_rows, ..plain() }).unwrap();
        assert_eq!(s.pairs.height(), 400);
        s.pairs
            .column("split")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(splits(&bad, true), ["unseen".to_string()].into(), "a file the run never saw");
    assert_eq!(splits(&own, false), ["train".to_string(), "val".to_string()].into(), "the run's own file");
}

/// `score --help` says `query runs --format csv` lists run uids: it does.
#[test]
fn query_runs_as_csv_lists_the_uids_score_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, uid, _) = kept_mlp(dir.path());
    let o = ok(rmlab(&["query", "runs", "--db", db.to_str().unwrap(), "--format", "csv"]));
    let csv = String::from_utf8_lossy(&o.stdout);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"uid") && header.contains(&"run_id"), "{header:?}");
    assert!(csv.contains(&uid), "{csv}");
    let help = ok(rmlab(&["score", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("query runs --format csv"));
}

/// The pairs of one of the run's evaluation files are that file's split, by name: the run
/// never trained on them, and their prompts were never split.
#[test]
fn an_evaluation_files_pairs_are_its_split() {
    let dir = tempfile::tempdir().unwrap();
    let (file, held) =
        (repo().join("tests/fixtures/trl/pairs.jsonl"), repo().join("tests/fixtures/trl/implicit.jsonl"));
    let data = format!(
        "path = \"{}\"\nbuckets = 512\n[[data.eval]]\nname = \"held\"\npath = \"{}\"",
        file.display(),
        held.display()
    );
    let spec = kept_spec(dir.path(), "held", &data, "kind = \"linear\"");
    let db = dir.path().join("held.sqlite");
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let uid: String =
        Connection::open(&db).unwrap().query_row("SELECT uid FROM runs", [], |r| r.get(0)).unwrap();
    let s = rmlab::score::score(&db, &uid, &held, &plain()).unwrap();
    let splits: std::collections::BTreeSet<String> = s
        .pairs
        .column("split")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect();
    assert_eq!(splits, ["held".to_string()].into());
}

/// The record beside a kept model lists the `[data]` keys of its data source only: a run on
/// a preference file has no synthetic generator's knobs there (issue 27), and still scores.
#[test]
fn a_kept_models_record_lists_only_its_data_sources_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (db, uid, _) = kept_mlp(dir.path());
    let rel: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT path FROM artifacts WHERE kind = 'config'", [], |r| r.get(0))
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(rel)).unwrap()).unwrap();
    let data = record["config"]["data"].as_object().unwrap();
    for key in ["n_prompts", "responses_per_prompt", "feature_dim", "beta", "flip", "graph", "nuisance_dim"] {
        assert!(!data.contains_key(key), "data.{key} listed: {data:?}");
    }
    for key in ["kind", "path", "file_sha256", "text_features", "buckets", "val_frac"] {
        assert!(data.contains_key(key), "data.{key} missing: {data:?}");
    }
    assert!(assert_reproduces(&db, &uid, &repo().join("tests/fixtures/trl/pairs.jsonl")) > 200);
}
