//! Store tests: opening, claiming and recording runs, cells' records, file URIs.

use super::claim::flatten;
use super::*;
use crate::data::Split;
use crate::eval::{MetricsSink, Outcome};
use crate::experiment::config::RunConfig;
use crate::provenance::Provenance;
use crate::train::Engine;
use rusqlite::types::Value as Sql;

fn config(seed: u64) -> RunConfig {
    RunConfig { seed, ..RunConfig::default() }
}

fn provenance() -> Provenance {
    Provenance {
        git_commit: Some("0123abc".into()),
        git_dirty: Some(false),
        host: crate::provenance::host_name(),
        rmlab_version: "test".into(),
        torch_version: None,
    }
}

fn run<'a>(cfg: &'a RunConfig, swept: &'a [String], p: &'a Provenance) -> NewRun<'a> {
    NewRun {
        experiment: "e",
        config: cfg,
        swept,
        device: "cpu".into(),
        threads: 1,
        provenance: p,
        engine: Engine::Autograd,
    }
}

fn open_with_experiment(path: &Path) -> Store {
    let store = Store::open(path).unwrap();
    store
        .upsert_experiment(&ExperimentRecord {
            name: "e",
            description: "d",
            spec_path: "e.toml",
            spec_text: "name = \"e\"",
        })
        .unwrap();
    store
}

/// Claim, record, finish, read back: the run row, its params, metrics and summaries hold
/// what was written, and the cell is then done (claimable again only with `force`).
#[test]
fn a_claimed_run_round_trips_and_then_blocks_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/s.sqlite");
    let mut store = open_with_experiment(&path);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let (cfg, p) = (config(7), provenance());
    let swept = vec!["seed".to_string()];
    let mut w = store.claim_run(&run(&cfg, &swept, &p), false).unwrap().expect("a free cell");
    let id = w.run_id();
    w.record(0, Split::Val, &[("accuracy", 0.5), ("loss_pair", 0.7)]).unwrap();
    w.record(10, Split::Val, &[("accuracy", 0.8), ("loss_pair", 0.4)]).unwrap();
    w.record(20, Split::Val, &[("accuracy", 0.6), ("loss_pair", 0.5)]).unwrap();
    w.finish(&Ok(Outcome::Finished), 1.5).unwrap();

    let conn = store.connection();
    let (status, hash, seed, wall, engine): (String, String, i64, f64, String) = conn
        .query_row(
            "SELECT status, config_hash, seed, wall_seconds, engine FROM runs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), hash, seed, wall, engine.as_str()),
        ("finished", cfg.hash(), 7, 1.5, "autograd")
    );
    let swept_seed: (i64, bool) = conn
        .query_row("SELECT value, swept FROM params WHERE run_id = ?1 AND key = 'seed'", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(swept_seed, (7, true));
    let metrics: i64 =
        conn.query_row("SELECT count(*) FROM metrics WHERE run_id = ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(metrics, 6);
    let summary = |name: &str| -> (i64, f64, i64, f64) {
        conn.query_row(
            "SELECT final_step, final_value, best_step, best_value FROM summaries WHERE run_id = ?1 AND name = ?2",
            params![id, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    assert_eq!(summary("accuracy"), (20, 0.6, 10, 0.8), "best accuracy is the highest");
    assert_eq!(summary("loss_pair"), (20, 0.5, 10, 0.4), "best loss is the lowest");

    let cells = store.cell_statuses("e").unwrap();
    assert_eq!(cells.len(), 1);
    assert!(cells[&cfg.hash()].is_done());
    assert!(store.claim_run(&run(&cfg, &swept, &p), false).unwrap().is_none(), "done: not claimed");
    let forced = store.claim_run(&run(&cfg, &swept, &p), true).unwrap().expect("force reruns");
    assert_ne!(forced.run_id(), id);
    drop(forced);
    // Another seed is another cell.
    let other = config(8);
    assert!(store.claim_run(&run(&other, &swept, &p), false).unwrap().is_some());
}

/// A `running` run of a live process (this one) blocks its cell even under `force`; a
/// failed run does not block it.
#[test]
fn a_live_running_run_blocks_its_cell_and_a_failed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_with_experiment(&dir.path().join("s.sqlite"));
    let (cfg, p) = (config(1), provenance());
    let first = store.claim_run(&run(&cfg, &[], &p), false).unwrap().expect("free");
    let id = first.run_id();
    drop(first);
    assert_eq!(store.cell_statuses("e").unwrap()[&cfg.hash()].status, "running");
    assert!(store.claim_run(&run(&cfg, &[], &p), false).unwrap().is_none());
    assert!(store.claim_run(&run(&cfg, &[], &p), true).unwrap().is_none(), "alive: not even forced");
    store.conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?1", [id]).unwrap();
    assert!(store.claim_run(&run(&cfg, &[], &p), false).unwrap().is_some());
}

/// Another program's SQLite file is refused by every opener, and left as it was.
#[test]
fn a_foreign_sqlite_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    Connection::open(&path).unwrap().execute_batch("CREATE TABLE notes (text TEXT);").unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("not an rmlab store (it has tables but no schema version)"), "{err}");
    let err = Store::open_read_only(&path).unwrap_err().to_string();
    assert!(err.contains("not an rmlab store (no schema version)"), "{err}");
    let version: i64 =
        Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 0);
    assert!(std::fs::read(&path).unwrap() == before, "the file was changed");
    let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["other.sqlite"], "no -wal or -shm file");
    let err = Store::open_read_only(&dir.path().join("none.sqlite")).unwrap_err();
    assert!(err.to_string().contains("no such store"), "{err}");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn flatten_writes_dotted_keys_with_sqlite_values() {
    let json = serde_json::json!({
        "a": { "b": 1, "c": true, "d": { "e": 0.5 } },
        "f": null, "g": "inf", "h": [1, 2], "i": "x", "j": -3
    });
    let mut got = flatten(&json);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let want = vec![
        ("a.b".to_string(), Sql::Integer(1)),
        ("a.c".into(), Sql::Integer(1)),
        ("a.d.e".into(), Sql::Real(0.5)),
        ("f".into(), Sql::Null),
        ("g".into(), Sql::Real(f64::INFINITY)),
        ("h".into(), Sql::Text("[1,2]".into())),
        ("i".into(), Sql::Text("x".into())),
        ("j".into(), Sql::Integer(-3)),
    ];
    assert_eq!(got, want);
}

#[test]
fn file_uris_escape_what_uris_reserve() {
    assert_eq!(file_uri(Path::new("/a b/c%d?e#f/é.sqlite")), "file:/a%20b/c%25d%3Fe%23f/%C3%A9.sqlite");
    assert_eq!(file_uri(Path::new("/plain/s.sqlite")), "file:/plain/s.sqlite");
}

/// A usable result under this format version outranks a running run, which outranks a failed
/// one; a result under an older format version outranks none of this version's.
#[test]
fn cell_records_rank_current_results_first() {
    let rec =
        |status: &str, format_version: i64| CellRecord { status: status.into(), format_version, run_id: 1 };
    let now = FORMAT_VERSION as i64;
    let order = [rec("finished", now), rec("running", now), rec("failed", now), rec("finished", now - 1)];
    for pair in order.windows(2) {
        assert!(pair[0].rank() > pair[1].rank(), "{:?} over {:?}", pair[0], pair[1]);
    }
    assert_eq!(rec("diverged", now).rank(), rec("finished", now).rank());
    assert!(
        rec("diverged", now).is_done()
            && !rec("finished", now - 1).is_done()
            && !rec("running", now).is_done()
    );
}
