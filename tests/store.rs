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
    assert_eq!(SCHEMA_VERSION, 3);
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
/// and keeps its runs.
#[test]
fn version_2_migrates_to_3() {
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
    assert_eq!(store.schema_version().unwrap(), 3);
    let conn = store.connection();
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
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("schema version 1, but this rmlab writes version {SCHEMA_VERSION}")),
        "{err}"
    );
    assert!(err.contains("rmlab migrate"), "{err}");
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
