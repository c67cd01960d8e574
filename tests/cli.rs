//! The `rmlab` binary end to end: real processes, real SQLite files in temp dirs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(args)
        .current_dir(repo())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("rmlab runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

fn quick() -> String {
    repo().join("experiments/quick.toml").display().to_string()
}

fn db_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn query_i64(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every metric value keyed by (config hash, split, name, step), in a fixed order.
fn all_metrics(db: &Path) -> Vec<(String, String, String, i64, Option<f64>)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.config_hash, m.split, m.name, m.step, m.value FROM metrics m JOIN runs r ON r.id = m.run_id
             ORDER BY r.config_hash, m.split, m.name, m.step",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn doctor_reports_the_loaded_libtorch() {
    let out = stdout(&ok(rmlab(&["doctor"])));
    let version = out.lines().find_map(|l| l.strip_prefix("torch")).unwrap().trim().to_string();
    assert!(version.starts_with("2."), "torch version: {out}");
    assert!(out.contains("tensor check   ok"), "{out}");
    assert!(out.contains("libtorch") || out.contains("torch/lib"), "library path: {out}");
}

#[test]
fn sweep_records_one_finished_run_per_cell_identically_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (db_in(&dir, "a.sqlite"), db_in(&dir, "b.sqlite"));
    for db in [&a, &b] {
        ok(rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap(), "--threads", "1"]));
    }
    assert_eq!(query_i64(&a, "SELECT count(*) FROM runs WHERE status = 'finished'"), 4);
    assert_eq!(query_i64(&a, "SELECT count(DISTINCT config_hash) FROM runs"), 4);
    // quick.toml: 100 steps, eval every 25 → steps 0, 25, 50, 75, 100.
    assert_eq!(query_i64(&a, "SELECT count(DISTINCT step) FROM metrics"), 5);
    assert_eq!(query_i64(&a, "SELECT count(*) FROM params WHERE key = 'loss.lambda' AND swept = 1"), 4);
    assert_eq!(query_i64(&a, "PRAGMA user_version"), rmlab::store::SCHEMA_VERSION);
    let (ma, mb) = (all_metrics(&a), all_metrics(&b));
    assert!(ma.len() > 100);
    assert_eq!(ma, mb, "same spec and seeds must give identical metric values");
}

#[test]
fn second_sweep_skips_done_cells_and_force_reruns_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "r.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    let rows = query_i64(&db, "SELECT count(*) FROM metrics");
    let again = ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    assert!(stderr(&again).contains("4 skipped"), "{}", stderr(&again));
    assert_eq!(query_i64(&db, "SELECT count(*) FROM runs"), 4);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM metrics"), rows);
    let status = stdout(&ok(rmlab(&["status", &quick(), "--db", db_s])));
    assert_eq!(status.matches(" done ").count(), 4, "{status}");
    ok(rmlab(&["sweep", &quick(), "--db", db_s, "--force"]));
    assert_eq!(query_i64(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 8);
}

#[test]
fn dry_run_lists_cells_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "none.sqlite");
    let out = stdout(&ok(rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap(), "--dry-run"])));
    assert_eq!(out.matches(" missing ").count(), 4, "{out}");
    assert!(out.contains("loss.lambda=0.1 seed=1"), "{out}");
    assert!(!db.exists());
}

#[test]
fn bad_spec_exits_2_with_one_located_line_and_leaves_the_db_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "keep.sqlite");
    ok(rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap()]));
    let before = std::fs::read(&db).unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, "name = \"bad\"\n[sweep]\n\"loss.lambda\" = [0.1, -0.5]\n").unwrap();
    for args in [
        vec!["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()],
        vec!["status", spec.to_str().unwrap(), "--db", db.to_str().unwrap()],
    ] {
        let out = rmlab(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("bad.toml:3:23: loss.lambda: must be a finite number ≥ 0, found -0.5"), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "the DB must not change");
    let fresh = db_in(&dir, "fresh.sqlite");
    assert_eq!(
        rmlab(&["sweep", spec.to_str().unwrap(), "--db", fresh.to_str().unwrap()]).status.code(),
        Some(2)
    );
    assert!(!fresh.exists(), "no DB is created for a bad spec");
}

#[test]
fn missing_spec_and_bad_flags_exit_2() {
    let out = rmlab(&["sweep", "experiments/nope.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("experiments/nope.toml: no such spec file"), "{}", stderr(&out));
    assert_eq!(rmlab(&["sweep", &quick(), "--threads", "0"]).status.code(), Some(2));
    assert_eq!(rmlab(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_store_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "other.sqlite");
    Connection::open(&db).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    let out = rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not an rmlab store"), "{}", stderr(&out));
}

/// Writes a copy of quick.toml named `name` with `steps` steps and `seeds` seeds (so
/// 2 × seeds cells) into `dir`.
fn spec_copy(dir: &tempfile::TempDir, name: &str, steps: usize, seeds: usize) -> PathBuf {
    let text = std::fs::read_to_string(quick())
        .unwrap()
        .replace("name = \"quick\"", &format!("name = \"{name}\""))
        .replace("steps = 100", &format!("steps = {steps}"))
        .replace("seeds = 2", &format!("seeds = {seeds}"));
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn count_finished(db: &Path) -> i64 {
    let Ok(conn) = Connection::open(db) else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM runs WHERE status = 'finished'", [], |r| r.get(0)).unwrap_or(0)
}

/// kill -9 at several moments of a 40-cell sweep: the store stays intact, finished runs keep
/// all their rows, the interrupted run never looks finished, and each rerun trains exactly the
/// cells without a finished run, so no cell ends with two.
#[test]
fn killed_sweeps_resume_with_exactly_the_missing_cells() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough a cell (even by the fast one-cell path) that each round is killed mid-sweep.
    let steps = 1600;
    let spec = spec_copy(&dir, "killed", steps, 20);
    let db = db_in(&dir, "killed.sqlite");
    let (spec_s, db_s) = (spec.to_str().unwrap(), db.to_str().unwrap());
    let mut last = 0;
    for round in 0..4 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rmlab"))
            .args(["sweep", spec_s, "--db", db_s, "--jobs", "2", "--no-vectorize"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once a few more runs have finished (a different moment each round).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while count_finished(&db) < last + 1 + round % 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(37 * round as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let conn = Connection::open(&db).unwrap();
        assert_eq!(conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).unwrap(), "ok");
        // steps / 25 + 1 evaluations of 43 metric rows (21 per split, head_weight_norm on
        // train), and the final rewards' 2 × 30 reliability bins.
        let short: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs r WHERE status = 'finished'
                 AND (SELECT count(*) FROM metrics m WHERE m.run_id = r.id) != ?1",
                [(steps as i64 / 25 + 1) * 43 + 60],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(short, 0, "a finished run lacks rows");
        let status = stdout(&ok(rmlab(&["status", spec_s, "--db", db_s])));
        assert!(!status.contains(" running "), "a killed run must not read as running:\n{status}");
        last = count_finished(&db);
    }
    assert!(last < 40, "every round was killed after the sweep had ended");
    let out = ok(rmlab(&["sweep", spec_s, "--db", db_s]));
    assert!(stderr(&out).contains(&format!("{last} skipped")), "{}", stderr(&out));
    assert_eq!(count_finished(&db), 40);
    assert_eq!(
        query_i64(
            &db,
            "SELECT count(*) FROM (SELECT config_hash FROM runs WHERE status = 'finished' GROUP BY config_hash HAVING count(*) > 1)"
        ),
        0,
        "no cell has two finished runs"
    );
}

/// Eight processes write one store at once: two sweeps of each of four experiments. No
/// "database is locked", no lost or duplicated rows, and the two sweeps of one spec share its
/// cells instead of both training them.
#[test]
fn concurrent_sweeps_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "shared.sqlite");
    let specs: Vec<PathBuf> = ["a", "b", "c", "d"].iter().map(|n| spec_copy(&dir, n, 200, 3)).collect();
    let children: Vec<_> = specs
        .iter()
        .chain(specs.iter())
        .map(|spec| {
            Command::new(env!("CARGO_BIN_EXE_rmlab"))
                .args([
                    "sweep",
                    spec.to_str().unwrap(),
                    "--db",
                    db.to_str().unwrap(),
                    "--jobs",
                    "1",
                    "--threads",
                    "1",
                ])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("locked"), "{err}");
    }
    assert_eq!(query_i64(&db, "SELECT count(*) FROM runs"), 24, "each of 24 cells trained once");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 24);
    // 200 steps / 25 = 9 evaluations × 43 metric rows per run, and 2 × 30 reliability bins.
    assert_eq!(query_i64(&db, "SELECT count(*) FROM metrics"), 24 * (9 * 43 + 60));
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM (SELECT DISTINCT run_id, split, name, step FROM metrics)"),
        24 * (9 * 43 + 60)
    );
}

/// Real preference files train through the CLI, in every format; skipped rows are counted in
/// the run record; `--set` points a spec at another file.
#[test]
fn preference_files_train_and_count_skipped_rows() {
    let dir = tempfile::tempdir().unwrap();
    let real = repo().join("experiments/real.toml").display().to_string();
    for (i, file) in
        ["conversation_implicit.parquet", "pairs.jsonl.gz", "embeddings.jsonl"].iter().enumerate()
    {
        let db = db_in(&dir, &format!("real{i}.sqlite"));
        let path = format!("data.path=tests/fixtures/trl/{file}");
        let mut args =
            vec!["sweep", &real, "--db", db.to_str().unwrap(), "--set", &path, "--set", "train.steps=50"];
        if file.starts_with("embeddings") {
            args.extend(["--set", "data.text_features=\"embedding\""]);
        }
        if file.starts_with("pairs") {
            args.extend(["--set", "loss.margin_from_data=true"]);
        }
        ok(rmlab(&args));
        assert_eq!(query_i64(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 20, "{file}");
        assert_eq!(
            query_i64(&db, "SELECT count(*) FROM metrics WHERE name = 'true_pearson'"),
            0,
            "no truth for text"
        );
    }
    let db = db_in(&dir, "skip.sqlite");
    ok(rmlab(&[
        "sweep",
        &real,
        "--db",
        db.to_str().unwrap(),
        "--set",
        "data.path=tests/fixtures/trl/bad_missing_column.jsonl",
        "--set",
        "data.skip_bad_rows=true",
        "--set",
        "train.steps=20",
        "--set",
        "data.val_frac=0.0",
    ]));
    assert_eq!(query_i64(&db, "SELECT min(data_rows) FROM runs"), 5);
    assert_eq!(query_i64(&db, "SELECT min(data_skipped) FROM runs"), 1);
    let out = rmlab(&[
        "sweep",
        &real,
        "--db",
        db.to_str().unwrap(),
        "--set",
        "data.path=tests/fixtures/trl/bad_utf8.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad_utf8.jsonl:3: not UTF-8"), "{}", stderr(&out));
}

#[test]
fn schema_is_json_that_describes_every_section() {
    let out = stdout(&ok(rmlab(&["schema"])));
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    let props = schema["properties"].as_object().unwrap();
    for key in ["name", "description", "data", "model", "train", "loss", "eval", "sweep", "figure"] {
        assert!(props.contains_key(key), "{key} missing");
    }
    assert_eq!(schema["required"], serde_json::json!(["name"]));
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert_eq!(schema["$defs"]["LossConfig"]["properties"]["lambda"]["minimum"], serde_json::json!(0));
}

/// `rmlab data` on tests/fixtures/trl/graph.jsonl reports what its README counts by hand.
#[test]
fn data_command_reports_the_hand_counted_graph() {
    let out = stdout(&ok(rmlab(&["data", "tests/fixtures/trl/graph.jsonl", "--format", "json"])));
    let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &reports[0];
    for (key, expected) in [
        ("rows", 19),
        ("skipped", 2),
        ("ties", 1),
        ("pairs", 17),
        ("prompts", 5),
        ("responses", 19),
        ("empty_responses", 1),
        ("comparisons", 15),
        ("duplicates", 1),
        ("contradictions", 1),
        ("components", 7),
        ("one_sided_components", 3),
        ("two_sided_components", 2),
        ("contradicted_pair_components", 1),
        ("odd_cycle_components", 2),
        ("prompts_with_one_sided_component", 2),
        ("prompts_with_two_sided_component", 2),
        ("prompts_with_odd_cycle", 2),
        ("pairs_in_one_sided_components", 5),
        ("pairs_in_two_sided_components", 6),
        ("pairs_in_odd_cycle_components", 6),
    ] {
        assert_eq!(r[key], serde_json::json!(expected), "{key}");
    }
    assert_eq!(r["pairs_per_prompt"], serde_json::json!({"2": 2, "3": 2, "7": 1}));
    assert_eq!(r["responses_per_prompt"], serde_json::json!({"2": 1, "3": 2, "4": 1, "7": 1}));
    assert_eq!(r["prompt_chars"], serde_json::json!({"min": 7, "median": 14.0, "mean": 14.8, "max": 22}));
    assert_eq!(r["response_chars"]["median"], serde_json::json!(4.0));
    assert!((r["response_chars"]["mean"].as_f64().unwrap() - 60.0 / 19.0).abs() < 1e-12);
    assert_eq!(r["skipped_lines"][0][0], serde_json::json!(9));
    assert_eq!(r["skipped_lines"][1][0], serde_json::json!(14));
    // The table: one column a file, shares of prompts in percent.
    let table =
        stdout(&ok(rmlab(&["data", "tests/fixtures/trl/graph.jsonl", "tests/fixtures/trl/pairs.jsonl"])));
    let line =
        |label: &str| table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("{table}"));
    assert!(line("prompts with an odd cycle").contains("2 (40.0 %)"), "{table}");
    assert!(line("pairs in two-sided components").contains("6 (35.3 %)"), "{table}");
    assert_eq!(line("  bipartite, winners on one side").split_whitespace().nth(5), Some("3"), "{table}");
    assert_eq!(line("  bipartite, winners on both sides").split_whitespace().nth(5), Some("2"), "{table}");
    assert!(line("rows read").split_whitespace().eq(["rows", "read", "19", "400"]), "{table}");
    assert!(table.contains("line 14: invalid JSON"), "{table}");
    // Bad rows stop it with --strict; a missing file is bad input.
    let strict = rmlab(&["data", "tests/fixtures/trl/graph.jsonl", "--strict"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(
        stderr(&strict).contains("(without --strict, rmlab data skips and counts bad lines)"),
        "{}",
        stderr(&strict)
    );
    assert!(
        stderr(&strict).contains("graph.jsonl:9: `chosen` and `rejected` are identical"),
        "{}",
        stderr(&strict)
    );
    assert_eq!(rmlab(&["data", "tests/fixtures/trl/missing.jsonl"]).status.code(), Some(2));
}

/// A spec with an evaluation file: its pairs are a split of their own in metrics, summaries,
/// rewards, queries and figures, and its report is stored with each run. The stored metrics
/// by component kind equal what the stored rewards and the hand-built graph of graph.jsonl
/// give.
#[test]
fn evaluation_files_are_splits_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let trl = repo().join("tests/fixtures/trl");
    let spec = dir.path().join("evalsplit.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "evalsplit"
[data]
kind = "preference_file"
path = "{}"
skip_bad_rows = true
val_frac = 0.25
[[data.eval]]
name = "graph"
path = "{}"
[model]
hidden = [8]
embed_dim = 8
device = "cpu"
[train]
steps = 20
batch_size = 16
[eval]
every = 10
[sweep]
"loss.lambda" = [0.0, 0.1]
[[figure]]
name = "by_kind"
kind = "graph_kinds"
metrics = ["pair_diff_abs_mean", "pair_sum_abs_mean"]
splits = ["train", "graph"]
[[figure]]
name = "accuracy"
kind = "final"
metrics = ["accuracy"]
splits = ["val", "graph"]
"#,
            trl.join("pairs.jsonl").display(),
            trl.join("graph.jsonl").display()
        ),
    )
    .unwrap();
    let db = db_in(&dir, "e.sqlite");
    let dbs = db.to_str().unwrap();
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", dbs]));
    let n = |sql: &str| query_i64(&db, sql);
    assert_eq!(n("SELECT count(*) FROM runs WHERE status = 'finished'"), 2);
    // Steps 0, 10, 20: every split metric, and the nine by component kind; at the end, the
    // 30 reliability bins.
    assert_eq!(n("SELECT count(*) FROM metrics WHERE split = 'graph'"), 2 * (3 * (12 + 9) + 30));
    assert_eq!(n("SELECT count(*) FROM summaries WHERE split = 'graph' AND name = 'accuracy'"), 2);
    assert_eq!(n("SELECT count(*) FROM rewards WHERE split = 'graph'"), 2 * 19);
    assert_eq!(n("SELECT count(DISTINCT prompt) FROM rewards WHERE split = 'graph'"), 5);
    let conn = Connection::open(&db).unwrap();
    let report: String = conn.query_row("SELECT data_report FROM runs LIMIT 1", [], |r| r.get(0)).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        (report["train"]["pairs"].as_i64(), report["eval"]["graph"]["pairs"].as_i64()),
        (Some(400), Some(17))
    );
    assert_eq!(report["eval"]["graph"]["odd_cycle_components"], serde_json::json!(2));

    // The pairs of graph.jsonl by kind (its README), as offsets from its first response.
    let odd = [(0, 1), (1, 2), (0, 2), (16, 17), (17, 18), (18, 16)];
    let one_sided = [(3, 4), (3, 5), (8, 9), (3, 4), (10, 11)];
    let two_sided = [(6, 7), (7, 6), (12, 13), (13, 14), (14, 15), (15, 12)];
    for run in [1, 2] {
        let mut stmt = conn
            .prepare("SELECT response, reward FROM rewards WHERE run_id = ?1 AND split = 'graph' ORDER BY response")
            .unwrap();
        let rewards: Vec<(i64, f64)> =
            stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        let r: Vec<f64> = rewards.iter().map(|x| x.1).collect();
        assert_eq!(rewards.last().unwrap().0 - rewards[0].0, 18, "19 consecutive responses");
        let stored = |name: &str| -> f64 {
            conn.query_row(
                "SELECT final_value FROM summaries WHERE run_id = ?1 AND split = 'graph' AND name = ?2",
                rusqlite::params![run, name],
                |row| row.get(0),
            )
            .unwrap()
        };
        let mean = |pairs: &[(usize, usize)], f: &dyn Fn(f64, f64) -> f64| {
            pairs.iter().map(|&(a, b)| f(r[a], r[b])).sum::<f64>() / pairs.len() as f64
        };
        for (name, want) in [
            ("pair_diff_abs_mean_odd_cycle", mean(&odd, &|a, b| (a - b).abs())),
            ("pair_sum_abs_mean_one_sided", mean(&one_sided, &|a, b| (a + b).abs())),
            ("pair_diff_abs_mean_one_sided", mean(&one_sided, &|a, b| (a - b).abs())),
            ("pair_diff_abs_mean_two_sided", mean(&two_sided, &|a, b| (a - b).abs())),
            ("accuracy_two_sided", mean(&two_sided, &|a, b| f64::from(u8::from(a > b)))),
            ("accuracy_odd_cycle", mean(&odd, &|a, b| f64::from(u8::from(a > b)))),
        ] {
            assert!((stored(name) - want).abs() < 1e-9, "run {run} {name}: {} vs {want}", stored(name));
        }
    }

    // Queries and figures know the split by name.
    let csv = stdout(&ok(rmlab(&[
        "query",
        "summary",
        "--db",
        dbs,
        "--split",
        "graph",
        "--metrics",
        "accuracy",
        "--format",
        "csv",
    ])));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let bad = rmlab(&["query", "summary", "--db", dbs, "--split", "llmbar"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--split llmbar: no such split; expected one of train, val, test, graph"));
    let figures = dir.path().join("figures");
    ok(rmlab(&["plot", spec.to_str().unwrap(), "--db", dbs, "--out-dir", figures.to_str().unwrap()]));
    for stem in ["by_kind", "accuracy"] {
        assert!(figures.join("evalsplit").join(format!("{stem}.png")).exists(), "{stem}");
    }
}

/// A pipe whose reader has already gone: every write to it fails (EPIPE), whatever the size of
/// the output and of the pipe's buffer.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

/// `rmlab` with standard output (and, with `stderr_too`, standard error) a closed pipe.
fn rmlab_into_closed_pipe(args: &[&str], stderr_too: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmlab"));
    cmd.args(args).current_dir(repo()).env_remove("LD_LIBRARY_PATH").stdout(closed_pipe());
    if stderr_too {
        cmd.stderr(closed_pipe());
    }
    cmd.output().expect("rmlab runs")
}

/// `rmlab … | head -1`: standard output read up to its first line, then closed; returns that
/// line and how the process ended (its standard error captured).
fn rmlab_head_1(args: &[&str]) -> (String, Output) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(args)
        .current_dir(repo())
        .env_remove("LD_LIBRARY_PATH")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rmlab runs");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    (first, child.wait_with_output().unwrap())
}

/// Exit code 0 and no panic (a panic exits 101 and says `panicked` on stderr, when it can).
#[track_caller]
fn quietly_ok(o: &Output, what: &str) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(o.status.code(), Some(0), "{what}: {err}");
}

/// `rmlab data f | head -1`, `rmlab query … | head -1` and a sweep whose stderr reader has
/// gone: output to a closed pipe is dropped, the command ends with its normal exit code.
#[test]
fn output_to_a_closed_pipe_is_dropped_quietly() {
    let files = ["data", "tests/fixtures/trl/graph.jsonl", "tests/fixtures/trl/pairs.jsonl"];
    for format in ["table", "json"] {
        let args: Vec<&str> = files.iter().copied().chain(["--format", format]).collect();
        quietly_ok(&rmlab_into_closed_pipe(&args, false), &format!("data --format {format}"));
        // With stderr closed too nothing can be said, but the exit code still tells.
        assert_eq!(rmlab_into_closed_pipe(&args, true).status.code(), Some(0));
        let (first, o) = rmlab_head_1(&args);
        assert!(!first.trim().is_empty(), "a first line");
        quietly_ok(&o, &format!("data --format {format} | head -1"));
    }
    // An error still exits 2 when its line cannot be written.
    assert_eq!(
        rmlab_into_closed_pipe(&["data", "tests/fixtures/trl/missing.jsonl"], true).status.code(),
        Some(2)
    );

    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir, "p.sqlite");
    let db_s = db.to_str().unwrap();
    // The sweep's progress and summary lines meet a closed stderr; the sweep runs to its end.
    assert_eq!(rmlab_into_closed_pipe(&["sweep", &quick(), "--db", db_s], true).status.code(), Some(0));
    assert_eq!(count_finished(&db), 4);
    for kind in ["runs", "curves", "summary"] {
        for format in ["table", "csv", "json"] {
            let args = ["query", kind, "--db", db_s, "--format", format];
            quietly_ok(&rmlab_into_closed_pipe(&args, false), &format!("query {kind} --format {format}"));
            let (first, o) = rmlab_head_1(&args);
            assert!(!first.trim().is_empty(), "query {kind} --format {format}: a first line");
            quietly_ok(&o, &format!("query {kind} --format {format} | head -1"));
        }
    }
    let spec = quick();
    for args in [vec!["status", spec.as_str(), "--db", db_s], vec!["schema"], vec!["check", spec.as_str()]] {
        quietly_ok(&rmlab_into_closed_pipe(&args, false), &args.join(" "));
    }
}
