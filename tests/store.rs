//! The store as a file: migrations from every earlier version, merges, query round trips.

use std::path::{Path, PathBuf};
use std::process::Command;

use rmlab::analysis::query::{self, Filter, Selection, Stat};
use rmlab::store::{SCHEMA_VERSION, Store, merge};
use rusqlite::Connection;

fn rmlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rmlab")).args(args).output().unwrap()
}

fn quick() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quick.toml").display().to_string()
}

fn sweep_into(db: &Path) {
    let out = rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A version-1 store as rmlab 0.1 wrote it: one finished run with a few metric rows.
fn make_v1(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(rmlab::store::schema_v1_for_tests()).unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 1;
         INSERT INTO experiments VALUES ('old', 'an old sweep', 'old.toml', 'name = \"old\"', '2026-01-01T00:00:00Z');
         INSERT INTO runs (id, experiment, config_hash, config_json, format_version, seed, status, started_at,
                           device, threads, rmlab_version)
           VALUES (1, 'old', 'abc', '{}', 1, 0, 'finished', '2026-01-01T00:00:00Z', 'cpu', 1, '0.1.0');
         INSERT INTO params VALUES (1, 'loss.lambda', 0.1, 1), (1, 'seed', 0, 1);
         INSERT INTO metrics VALUES
           (1, 'val', 'loss_pair', 0, 0.69), (1, 'val', 'loss_pair', 10, 0.40), (1, 'val', 'loss_pair', 20, 0.45),
           (1, 'val', 'accuracy', 0, 0.5), (1, 'val', 'accuracy', 10, 0.8), (1, 'val', 'accuracy', 20, 0.7),
           (1, 'val', 'reward_max_abs', 0, 0.1), (1, 'val', 'reward_max_abs', 20, 3.0);",
    )
    .unwrap();
}

#[test]
fn fresh_store_has_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
}

#[test]
fn version_1_migrates_with_summaries_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.sqlite");
    make_v1(&db);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = store.connection();
    let row = |name: &str| -> (i64, f64, Option<i64>, Option<f64>) {
        conn.query_row(
            "SELECT final_step, final_value, best_step, best_value FROM summaries WHERE run_id = 1 AND name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    assert_eq!(row("loss_pair"), (20, 0.45, Some(10), Some(0.40)), "loss: best is the lowest");
    assert_eq!(row("accuracy"), (20, 0.7, Some(10), Some(0.8)), "accuracy: best is the highest");
    assert_eq!(row("reward_max_abs"), (20, 3.0, None, None), "magnitudes have no best");
    let uid: String = conn.query_row("SELECT uid FROM runs WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(uid.len(), 32);
    drop(store);
    // Opening again changes nothing.
    assert_eq!(Store::open(&db).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(count(&db, "SELECT count(*) FROM summaries"), 3);
}

/// A version-2 store (rmlab before run engines and artifacts) gains the v3 columns and table,
/// then v4's `interrupted` status (a rebuilt `runs`), and keeps its runs and everything that
/// points at them (foreign keys on, the rebuild's drop would have deleted them).
#[test]
fn version_2_migrates_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v2.sqlite");
    make_v1(&db);
    {
        let conn = Connection::open(&db).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        tx.execute_batch(rmlab::store::schema_v2_for_tests()).unwrap();
        tx.execute_batch("PRAGMA user_version = 2;").unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = store.connection();
    assert_eq!(count(&db, "SELECT count(*) FROM params"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 8);
    assert_eq!(count(&db, "SELECT count(*) FROM summaries"), 3);
    conn.execute("UPDATE runs SET status = 'interrupted' WHERE id = 1", []).unwrap();
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1, "foreign keys are on once migrated");
    let (engine, report): (Option<String>, Option<String>) = conn
        .query_row("SELECT engine, data_report FROM runs WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((engine, report), (None, None), "old runs have no engine recorded");
    assert_eq!(count(&db, "SELECT count(*) FROM artifacts"), 0);
}

#[test]
fn newer_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.sqlite");
    Connection::open(&db).unwrap().execute_batch("PRAGMA user_version = 99; CREATE TABLE x (y);").unwrap();
    let err = Store::open(&db).unwrap_err().to_string();
    assert!(err.contains("schema version 99 is newer"), "{err}");
}

#[test]
fn merge_is_idempotent_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, into) =
        (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"), dir.path().join("m.sqlite"));
    sweep_into(&a);
    // b: the same cells under another experiment name.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(quick()).unwrap().replace("name = \"quick\"", "name = \"other\""),
    )
    .unwrap();
    let out = rmlab(&["sweep", other.to_str().unwrap(), "--db", b.to_str().unwrap()]);
    assert!(out.status.success());
    let sources: Vec<PathBuf> = vec![a.clone(), b.clone()];
    let report = merge(&sources, &into).unwrap();
    assert_eq!(report.sources.iter().map(|s| s.1).sum::<usize>(), 8);
    let tables = ["runs", "params", "metrics", "summaries", "rewards"];
    let counts: Vec<i64> =
        tables.iter().map(|t| count(&into, &format!("SELECT count(*) FROM {t}"))).collect();
    for (t, n) in tables.iter().zip(&counts) {
        let expected =
            count(&a, &format!("SELECT count(*) FROM {t}")) + count(&b, &format!("SELECT count(*) FROM {t}"));
        assert_eq!(*n, expected, "{t}");
    }
    // Twice, and through the CLI: nothing is added.
    merge(&sources, &into).unwrap();
    let out = rmlab(&["merge", a.to_str().unwrap(), "--into", into.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 runs copied, 4 already in"));
    let again: Vec<i64> = tables.iter().map(|t| count(&into, &format!("SELECT count(*) FROM {t}"))).collect();
    assert_eq!(counts, again);
    assert_eq!(
        count(
            &into,
            "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.experiment = 'quick'"
        ),
        count(&a, "SELECT count(*) FROM metrics")
    );
    // A second, independent sweep of the same cells (another store) is not merged in twice.
    let c = dir.path().join("c.sqlite");
    sweep_into(&c);
    let out = rmlab(&["merge", c.to_str().unwrap(), "--into", into.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 runs copied, 4 already in"));
    assert_eq!(count(&into, "SELECT count(*) FROM runs"), 8);
}

#[test]
fn merge_refuses_another_schema_version_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (old, into) = (dir.path().join("old.sqlite"), dir.path().join("into.sqlite"));
    make_v1(&old);
    let out = rmlab(&["merge", old.to_str().unwrap(), "--into", into.to_str().unwrap()]);
    // A store this rmlab cannot use as it is: exit 1, as `query` gives an old store.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("schema version 1, but this rmlab writes version {SCHEMA_VERSION}")),
        "{err}"
    );
    assert!(err.contains(&format!("`rmlab migrate --db {}`", old.display())), "{err}");
    assert!(!into.exists());
    assert_eq!(count(&old, "PRAGMA user_version"), 1, "the source is not changed");
    let out = rmlab(&["migrate", "--db", old.to_str().unwrap()]);
    assert!(out.status.success());
    let out = rmlab(&["merge", old.to_str().unwrap(), "--into", into.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&into, "SELECT count(*) FROM runs"), 1);
}

#[test]
fn queries_return_typed_frames_and_bind_filters() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    sweep_into(&db);
    let store = Store::open(&db).unwrap();
    let conn = store.connection();
    let all = Selection { experiment: Some("quick".into()), filters: vec![], latest_only: true };
    let runs = query::runs(conn, &all, true).unwrap();
    assert_eq!(runs.height(), 4);
    assert_eq!(runs.column("loss.lambda").unwrap().dtype(), &polars::prelude::DataType::Float64);
    let one = Selection {
        experiment: None,
        filters: vec![Filter::parse("loss.lambda=0.1").unwrap()],
        latest_only: false,
    };
    assert_eq!(query::runs(conn, &one, true).unwrap().height(), 2);
    // A filter value is data, never SQL.
    let evil = Selection { experiment: Some("quick' OR 1=1 --".into()), filters: vec![], latest_only: false };
    assert_eq!(query::runs(conn, &evil, true).unwrap().height(), 0);

    let curves = query::curves(conn, &all, &["loss_pair".into()], Some("val")).unwrap();
    assert_eq!(curves.height(), 4 * 5, "4 runs × 5 evaluations");

    let (summary, _) =
        query::summary(conn, &all, &[], &["accuracy".into()], Some("val"), Stat::Final).unwrap();
    assert_eq!(summary.height(), 2, "one row per λ");
    let n: Vec<Option<i64>> = summary.column("n").unwrap().i64().unwrap().iter().collect();
    assert_eq!(n, [Some(2), Some(2)]);
    // Mean and CI against the values read directly.
    let vals: Vec<f64> = {
        let mut stmt = conn
            .prepare(
                "SELECT s.final_value FROM summaries s JOIN params p ON p.run_id = s.run_id AND p.key = 'loss.lambda'
                 WHERE s.split = 'val' AND s.name = 'accuracy' AND p.value = 0.0 ORDER BY s.run_id",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let mean = (vals[0] + vals[1]) / 2.0;
    let sd = ((vals[0] - mean).powi(2) + (vals[1] - mean).powi(2)).sqrt(); // n − 1 = 1
    let got_mean = summary.column("mean").unwrap().f64().unwrap().get(0).unwrap();
    let got_hi = summary.column("ci95_hi").unwrap().f64().unwrap().get(0).unwrap();
    assert!((got_mean - mean).abs() < 1e-12);
    assert!((got_hi - (mean + 12.7062047 * sd / 2f64.sqrt())).abs() < 1e-5);
}

/// `sweep --force` reruns every cell; summaries still count each cell once (its newest run).
#[test]
fn reruns_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.sqlite");
    sweep_into(&db);
    let out = rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap(), "--force"]);
    assert!(out.status.success());
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 8);
    let store = Store::open(&db).unwrap();
    let sel = Selection { experiment: Some("quick".into()), filters: vec![], latest_only: true };
    let (s, notes) =
        query::summary(store.connection(), &sel, &[], &["accuracy".into()], Some("val"), Stat::Final)
            .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let n: Vec<Option<i64>> = s.column("n").unwrap().i64().unwrap().iter().collect();
    assert_eq!(n, [Some(2), Some(2)]);
    let out = rmlab(&["query", "summary", "--db", db.to_str().unwrap(), "--metrics", "acuracy"]);
    assert_eq!(out.status.code(), Some(2), "a misspelt metric is bad input");
    let out = rmlab(&["query", "summary", "--db", db.to_str().unwrap(), "-e", "quik"]);
    assert_eq!(out.status.code(), Some(2), "an unknown experiment is bad input");
}

/// A store in `dir` (`s.sqlite`) with one finished run, `uid` (also its cell's config hash, so
/// no two such stores hold the same cell), keeping one artifact recorded at `path` with SHA-256
/// `sha`.
fn store_with_artifact(dir: &Path, uid: &str, path: &str, sha: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("s.sqlite");
    drop(Store::open(&db).unwrap());
    let conn = Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO experiments VALUES ('e', '', 'e.toml', 'name = \"e\"', '2026-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO runs (id, experiment, config_hash, config_json, format_version, seed, status, started_at,
                           device, threads, rmlab_version, uid)
         VALUES (1, 'e', ?1, '{}', 1, 0, 'finished', '2026-01-01T00:00:00Z', 'cpu', 1, '0.1.0', ?1)",
        [uid],
    )
    .unwrap();
    conn.execute("INSERT INTO artifacts VALUES (1, 'weights', ?1, 5, ?2)", rusqlite::params![path, sha])
        .unwrap();
    db
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A merge's failure through the CLI: bad input (exit 2), one line, containing every needle.
#[track_caller]
fn merge_refused(src: &Path, into: &Path, needles: &[&str]) {
    let out = rmlab(&["merge", src.to_str().unwrap(), "--into", into.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

/// An artifact path that is absolute, or climbs out with `..`, would be joined onto the
/// target's directory and written (or read by `rmlab score`) outside the store: the merge
/// names the run and the path and writes nothing.
#[test]
fn merge_refuses_artifact_paths_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"bytes";
    let sha = sha256_hex(bytes);
    // `../outside/x.bin` from the source's directory is a real file there, with the recorded
    // SHA-256; from the target's directory (two levels down) it would land in `dir/t/outside`.
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/x.bin"), bytes).unwrap();
    let climbing = store_with_artifact(&dir.path().join("src"), "run-climbing", "../outside/x.bin", &sha);
    let into = dir.path().join("t/store/m.sqlite");
    merge_refused(&climbing, &into, &["run-climbing", "\"../outside/x.bin\"", "nothing was merged"]);
    assert!(!dir.path().join("t").exists(), "nothing is created: {:?}", files_below(dir.path()));

    let absolute = dir.path().join("outside/x.bin").display().to_string();
    let abs = store_with_artifact(&dir.path().join("abs"), "run-absolute", &absolute, &sha);
    merge_refused(&abs, &into, &["run-absolute", &absolute]);
    assert!(!dir.path().join("t").exists());
    // Also into an existing target: its runs stay as they were.
    drop(Store::open(&into).unwrap());
    let before = files_below(&dir.path().join("t"));
    merge_refused(&abs, &into, &["run-absolute"]);
    merge_refused(&climbing, &into, &["run-climbing"]);
    assert_eq!(count(&into, "SELECT count(*) FROM runs"), 0);
    assert_eq!(files_below(&dir.path().join("t")), before);
}

/// A file whose bytes are not the recorded ones (or that is missing) is found before any run is
/// committed: the target store and its directory are as they were, whether it existed or not.
#[test]
fn a_bad_artifact_file_leaves_the_target_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let rel = "artifacts/a/b.bin";
    std::fs::create_dir_all(dir.path().join("bad/artifacts/a")).unwrap();
    std::fs::write(dir.path().join("bad").join(rel), b"bytes").unwrap();
    let bad = store_with_artifact(&dir.path().join("bad"), "run-bad", rel, &sha256_hex(b"other"));
    let missing = store_with_artifact(&dir.path().join("missing"), "run-missing", rel, &sha256_hex(b"bytes"));
    // A new target: not created, nor its directory.
    let fresh = dir.path().join("fresh/m.sqlite");
    merge_refused(&bad, &fresh, &["SHA-256", "run-bad", "nothing was merged"]);
    merge_refused(&missing, &fresh, &["missing", "run-missing", "nothing was merged"]);
    assert!(!dir.path().join("fresh").exists(), "{:?}", files_below(dir.path()));
    // An existing target holding a good run and its file: nothing added, nothing removed.
    std::fs::create_dir_all(dir.path().join("good/artifacts")).unwrap();
    std::fs::write(dir.path().join("good/artifacts/g.bin"), b"good").unwrap();
    let good =
        store_with_artifact(&dir.path().join("good"), "run-good", "artifacts/g.bin", &sha256_hex(b"good"));
    let into = dir.path().join("target/m.sqlite");
    merge(&[good], &into).unwrap();
    let files = files_below(&dir.path().join("target"));
    assert!(files.contains(&PathBuf::from("artifacts/g.bin")), "{files:?}");
    let tables = ["runs", "params", "metrics", "artifacts"];
    let counts = |db: &Path| -> Vec<i64> {
        tables.iter().map(|t| count(db, &format!("SELECT count(*) FROM {t}"))).collect()
    };
    let before = counts(&into);
    assert_eq!(before[0], 1);
    merge_refused(&bad, &into, &["SHA-256", "run-bad"]);
    merge_refused(&missing, &into, &["missing", "run-missing"]);
    // Both in one merge, after a good source: the good one is not merged either.
    let other =
        store_with_artifact(&dir.path().join("other"), "run-other", "artifacts/o.bin", &sha256_hex(b"o"));
    std::fs::create_dir_all(dir.path().join("other/artifacts")).unwrap();
    std::fs::write(dir.path().join("other/artifacts/o.bin"), b"o").unwrap();
    let err = merge(&[other.clone(), bad.clone()], &into).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert_eq!(counts(&into), before);
    assert_eq!(files_below(&dir.path().join("target")), files);
    // The good source alone merges, with its file.
    merge(&[other], &into).unwrap();
    assert_eq!(count(&into, "SELECT count(*) FROM runs"), 2);
    assert_eq!(std::fs::read(dir.path().join("target/artifacts/o.bin")).unwrap(), b"o");
}
