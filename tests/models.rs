//! Kept models: a sweep with `train.save` keeps each run's weights and config in the store's
//! `artifacts`, merging carries them, and `rmlab score` gives back the run's rewards.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use rusqlite::Connection;

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
    let scores = rmlab::score::score(&db, &uid, &fixture, false).unwrap();
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
    let norm = rmlab::score::score(&db, &uid, &fixture, true).unwrap();
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
    let again = rmlab::score::score(&merged, &uid, &fixture, false).unwrap();
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
