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

    // Normalised by the training responses' statistics kept with the model: mean 0, sd 1 there.
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
    assert!(mean.abs() < 1e-9 && (sd - 1.0).abs() < 1e-9, "normalised train rewards: mean {mean}, sd {sd}");

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
        "expected a .parquet or .csv file",
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

/// A model record whose normalisation statistics are unusable (a run with non-finite rewards
/// writes them as `null`; constant rewards have std 0) is refused under `--normalize`, naming
/// the run and the record, rather than normalised by a made-up (0, 1); without `--normalize`
/// the model scores.
#[test]
fn normalising_without_usable_statistics_is_bad_input() {
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
