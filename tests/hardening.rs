//! Regressions of bad input and hard cases found by an adversarial run (issue #13): each test is
//! named after the behaviour it pins, and runs the real binary on real SQLite files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::Connection;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmlab")).args(args).current_dir(repo()).output().expect("rmlab runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}\n{}", o.status.code(), stderr(&o));
    o
}

/// Bad input: exit 2 and exactly one line on stderr that contains `needle`.
#[track_caller]
fn bad_input(o: Output, needle: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
}

/// Exit 1 for a store that cannot be used (damaged, another program's, a newer schema).
#[track_caller]
fn store_failure(o: Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(needle), "{needle:?} not in {}", stderr(&o));
}

fn quick() -> String {
    repo().join("experiments/quick.toml").display().to_string()
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_directory_is_not_a_spec() {
    let dir = tempfile::tempdir().unwrap();
    bad_input(rmlab(&["check", dir.path().to_str().unwrap()]), "is a directory, not a spec file");
}

#[test]
fn oversized_specs_exit_2_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    for (name, body) in [
        ("seeds", "[sweep]\nseeds = 100000000000\n"),
        ("dim", "[data]\nfeature_dim = 4294967296\n"),
        ("prompts", "[data]\nn_prompts = 9223372036854775807\n"),
    ] {
        let spec = write(dir.path(), &format!("{name}.toml"), &format!("name = \"x\"\n{body}"));
        bad_input(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]), "at most");
    }
    assert!(!db.exists());
}

/// `--set` errors name the key that is wrong; a value that would make a cell invalid is refused
/// even when it replaces an axis.
#[test]
fn set_overrides_name_their_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db = db.to_str().unwrap();
    let sweep = |set: &str| rmlab(&["sweep", &quick(), "--db", db, "--set", set]);
    bad_input(sweep("train.steps=-3"), "--set train.steps=-3: train.steps:");
    bad_input(sweep("loss.lambda=nan"), "--set loss.lambda=nan: loss.lambda: must be a finite number ≥ 0");
    bad_input(sweep("loss.lambda=-1"), "loss.lambda: must be a finite number ≥ 0, found -1");
    bad_input(sweep("model.bias_init=inf"), "model.bias_init: must be a finite number");
    bad_input(sweep("train.stepz=3"), "unknown config key `train.stepz`");
}

/// `--set sweep.seeds=…` chooses the seeds and `--set name=…` stores a `--set` sweep apart
/// from the spec's own experiment; names that would leave a directory are refused.
#[test]
fn seeds_and_the_experiment_name_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s, "--set", "sweep.seeds=[5]", "--set", "name=quick-s5"]));
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE experiment = 'quick-s5' AND seed = 5"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE experiment != 'quick-s5'"), 0);
    let status =
        ok(rmlab(&["status", &quick(), "--db", db_s, "--set", "sweep.seeds=[5]", "--set", "name=quick-s5"]));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("2 cells (2 done)"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    ok(rmlab(&["sweep", &quick(), "--db", db_s, "--set", "sweep.seeds=1", "--dry-run"]));
    let sweep = |set: &str| rmlab(&["sweep", &quick(), "--db", db_s, "--set", set, "--dry-run"]);
    bad_input(sweep("sweep.seeds=x"), "sweep.seeds:");
    bad_input(sweep("sweep.seeds=[1, 1]"), "sweep.seeds:");
    bad_input(sweep("name=.."), "name: must not start with '.'");
    bad_input(sweep("name=a/b"), "name: must be non-empty");
    bad_input(sweep(&format!("name={}", "x".repeat(101))), "at most 100 characters");
    let spec = write(dir.path(), "dots.toml", "name = \"..\"\n");
    bad_input(rmlab(&["check", spec.to_str().unwrap()]), "must not start with '.'");
}

/// `--set` on a swept key replaces its axis by the one value (it used to be ignored silently),
/// a key of a zip group cannot be set alone, and the overrides are stored with the spec text.
#[test]
fn set_on_a_swept_key_replaces_the_axis_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    let out =
        ok(rmlab(&["sweep", &quick(), "--db", db_s, "--set", "loss.lambda=0.5", "--set", "train.steps=20"]));
    assert!(stderr(&out).contains("quick: 2 cells"), "{}", stderr(&out));
    assert_eq!(count(&db, "SELECT count(*) FROM params WHERE key = 'loss.lambda' AND value = 0.5"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM params WHERE key = 'loss.lambda' AND value != 0.5"), 0);
    let text: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT spec_text FROM experiments", [], |r| r.get(0))
        .unwrap();
    assert!(text.contains("#   --set loss.lambda=0.5\n#   --set train.steps=20"), "{text}");
    let noise = repo().join("experiments/noise.toml");
    bad_input(
        rmlab(&["sweep", noise.to_str().unwrap(), "--db", db_s, "--dry-run", "--set", "data.flip=0.2"]),
        "swept together with `data.beta` in a [[sweep.zip]] group",
    );
}

/// Read-only commands leave the store's bytes alone: no lock, no WAL switch, no migration.
/// (Nor do they create `-wal`/`-shm` beside it: readers_leave_no_wal_files_and_see_a_live_writer.)
#[test]
fn read_only_commands_do_not_write_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    let files = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sqlite"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = files(dir.path());
    let figures = dir.path().join("fig");
    for args in [
        vec!["query", "summary", "--db", db_s],
        vec!["query", "runs", "--db", db_s],
        vec!["query", "curves", "--db", db_s, "--metrics", "accuracy"],
        vec!["status", &quick(), "--db", db_s],
        vec!["sweep", &quick(), "--db", db_s, "--dry-run"],
        vec!["plot", &quick(), "--db", db_s, "--out-dir", figures.to_str().unwrap()],
    ] {
        ok(rmlab(&args));
    }
    assert_eq!(files(dir.path()), before, "a read-only command changed the store");

    // A store at schema version 2 stays at version 2 under a dry run (it was migrated before).
    let old = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(rmlab::store::schema_v1_for_tests()).unwrap();
        conn.execute_batch(rmlab::store::schema_v2_for_tests()).unwrap();
        conn.execute_batch("PRAGMA user_version = 2;").unwrap();
    }
    let out = rmlab(&["sweep", &quick(), "--db", old.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    let older = format!("schema version 2 is older than this rmlab's {}", rmlab::store::SCHEMA_VERSION);
    assert!(stderr(&out).contains(&older), "{}", stderr(&out));
    assert_eq!(count(&old, "PRAGMA user_version"), 2);
}

/// A store that cannot be written is named as read-only by writing commands and still serves
/// reads. The file is made immutable with chattr, which binds root too; where the file system
/// cannot do that the test says so and checks nothing more.
#[test]
fn a_read_only_store_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    let chattr = |flag: &str| Command::new("chattr").args([flag, db_s]).status().is_ok_and(|s| s.success());
    if !chattr("+i") {
        eprintln!("chattr +i is not available here: read-only store behaviour not exercised");
        return;
    }
    let sweep = rmlab(&["sweep", &quick(), "--db", db_s, "--force"]);
    let query = rmlab(&["query", "runs", "--db", db_s]);
    chattr("-i");
    bad_input(sweep, "the store is read-only");
    assert!(query.status.success(), "{}", stderr(&query));
}

/// Eight processes creating and migrating one new store at once: none fails.
#[test]
fn concurrent_creation_of_one_store_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let db = dir.path().join(format!("new{round}.sqlite"));
        std::fs::write(&db, b"").unwrap();
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_rmlab"))
                    .args(["migrate", "--db", db.to_str().unwrap()])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        assert_eq!(count(&db, "PRAGMA user_version"), rmlab::store::SCHEMA_VERSION);
    }
    // Four sweeps into one new file.
    let db = dir.path().join("sweeps.sqlite");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_rmlab"))
                .args(["sweep", &quick(), "--db", db.to_str().unwrap(), "--jobs", "1"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 4);
}

/// A damaged or foreign source is named, nothing is written, and no target is left behind.
#[test]
fn merge_checks_every_source_first_and_writes_nothing_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sqlite");
    ok(rmlab(&["sweep", &quick(), "--db", good.to_str().unwrap()]));
    // A copy with its pages scrambled past the header.
    let mut bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 8192);
    for b in &mut bytes[4096..8192] {
        *b ^= 0x5A;
    }
    let corrupt = dir.path().join("corrupt.sqlite");
    std::fs::write(&corrupt, &bytes).unwrap();
    let text = write(dir.path(), "notes.sqlite", "not a database at all, just text\n");
    let target = dir.path().join("merged.sqlite");
    for bad in [&corrupt, &text] {
        let out = rmlab(&[
            "merge",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
            "--into",
            target.to_str().unwrap(),
        ]);
        store_failure(out, &format!("{}:", bad.display()));
        assert!(!target.exists(), "no target is created when a source is bad");
    }
    // Into an existing target: refused, the target unchanged.
    ok(rmlab(&["merge", good.to_str().unwrap(), "--into", target.to_str().unwrap()]));
    let before = count(&target, "SELECT count(*) FROM metrics");
    store_failure(
        rmlab(&["merge", corrupt.to_str().unwrap(), "--into", target.to_str().unwrap()]),
        "corrupt.sqlite",
    );
    assert_eq!(count(&target, "SELECT count(*) FROM metrics"), before);
    // A newer store is not sent to `rmlab migrate`, which would refuse it.
    let newer = dir.path().join("newer.sqlite");
    std::fs::copy(&good, &newer).unwrap();
    Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    let out = rmlab(&["merge", newer.to_str().unwrap(), "--into", target.to_str().unwrap()]);
    store_failure(out, "newer than this rmlab's");
    // Another program's SQLite file: exit 1, as `query` and `sweep` give it (README: Exit codes).
    let foreign = dir.path().join("foreign.sqlite");
    Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t (a);").unwrap();
    for out in [
        rmlab(&["merge", foreign.to_str().unwrap(), "--into", target.to_str().unwrap()]),
        rmlab(&["query", "runs", "--db", foreign.to_str().unwrap()]),
        rmlab(&["sweep", &quick(), "--db", foreign.to_str().unwrap()]),
    ] {
        store_failure(out, "not an rmlab store");
    }
    assert!(
        !stderr(&rmlab(&["merge", newer.to_str().unwrap(), "--into", target.to_str().unwrap()]))
            .contains("migrate")
    );
}

#[test]
fn queries_refuse_unknown_keys_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    bad_input(rmlab(&["query", "runs", "--db", db_s, "--where", "loss.lamda=0.1"]), "--where loss.lamda");
    bad_input(rmlab(&["query", "curves", "--db", db_s, "--metrics", "acuracy"]), "--metrics acuracy");
    ok(rmlab(&["query", "runs", "--db", db_s, "--where", "loss.lambda=0.1", "--where", "status=finished"]));
}

/// A FIFO as a data file is refused at once (it used to hang `check` and `data` forever), by
/// `data` and by a spec that names it; `timeout` would exit 124 on a hang.
#[test]
fn a_fifo_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jsonl");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let run = |args: &[&str]| {
        Command::new("timeout").arg("20").arg(env!("CARGO_BIN_EXE_rmlab")).args(args).output().unwrap()
    };
    bad_input(run(&["data", fifo.to_str().unwrap()]), "not a regular file");
    let spec = write(
        dir.path(),
        "f.toml",
        "name = \"f\"\n[data]\nkind = \"preference_file\"\npath = \"pipe.jsonl\"\n",
    );
    bad_input(run(&["check", spec.to_str().unwrap()]), "not a regular file");
}

/// A `--db` or `--out` that cannot name a file (a directory, a path under a regular file, a
/// directory that does not exist) is bad input: exit 2, before any work.
#[test]
fn paths_that_cannot_be_files_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    let file = write(dir.path(), "plain.txt", "x");
    let d = dir.path().to_str().unwrap();
    let under_file = file.join("s.sqlite");
    bad_input(rmlab(&["sweep", &quick(), "--db", d]), "is a directory");
    bad_input(
        rmlab(&["sweep", &quick(), "--db", under_file.to_str().unwrap()]),
        "is a file, not a directory",
    );
    bad_input(rmlab(&["query", "runs", "--db", d]), "is a directory");
    bad_input(rmlab(&["migrate", "--db", d]), "is a directory");
    let missing = dir.path().join("no/such/dir/out.csv");
    bad_input(
        rmlab(&["query", "summary", "--db", db_s, "--out", missing.to_str().unwrap()]),
        "not an existing directory",
    );
    bad_input(rmlab(&["query", "summary", "--db", db_s, "--out", d]), "is a directory");
    bad_input(
        rmlab(&["query", "summary", "--db", db_s, "--out", file.join("o.csv").to_str().unwrap()]),
        "not an existing directory",
    );
}

/// An output path that is the store, one of its side files or an input is refused before
/// anything is written; the store is intact afterwards.
#[test]
fn outputs_never_overwrite_what_the_command_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", &quick(), "--db", db_s]));
    let before = std::fs::read(&db).unwrap();
    let wal = format!("{db_s}-wal");
    let dotted = dir.path().join("x/../s.sqlite");
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    for out in [db_s, wal.as_str(), dotted.to_str().unwrap()] {
        for format in ["csv", "parquet"] {
            let o = rmlab(&["query", "summary", "--db", db_s, "--out", out, "--format", format]);
            bad_input(o, "which this command reads");
        }
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "the store is untouched");
    assert!(count(&db, "SELECT count(*) FROM runs") > 0);
    let data = repo().join("tests/fixtures/trl/pairs.jsonl.gz");
    let data_s = data.to_str().unwrap();
    let copy = dir.path().join("pairs.jsonl.gz");
    std::fs::copy(&data, &copy).unwrap();
    bad_input(
        rmlab(&["data", copy.to_str().unwrap(), "--out", copy.to_str().unwrap()]),
        "which this command reads",
    );
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(data_s).unwrap());
    ok(rmlab(&["query", "summary", "--db", db_s, "--out", dir.path().join("s.csv").to_str().unwrap()]));
}

/// A summary says how many cells it leaves out and why; a diverged cell is flagged with its
/// reason in the store.
#[test]
fn summaries_say_what_they_leave_out_and_divergence_has_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    // λ = 1e30: the loss is beyond any sane bound from the first evaluation.
    let spec = write(
        dir.path(),
        "wild.toml",
        &std::fs::read_to_string(quick())
            .unwrap()
            .replace("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.0, 1e30]"),
    );
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db_s]));
    let reason: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT diverged_reason FROM runs WHERE status = 'diverged' LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reason, "training loss above 1e12");
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'diverged' AND diverged_step = 0"), 2);
    let out = ok(rmlab(&["query", "summary", "--db", db_s, "--metrics", "accuracy"]));
    assert!(
        stderr(&out)
            .contains("note: 2 of 4 cells left out of the summary, having no finished run: 2 diverged"),
        "{}",
        stderr(&out)
    );
    // Adam at lr = 1e6 drives rewards beyond what float32 resolves, with a finite loss.
    let db2 = dir.path().join("lr.sqlite");
    ok(rmlab(&["sweep", &quick(), "--db", db2.to_str().unwrap(), "--set", "train.lr=1e6"]));
    let reasons: Vec<String> = {
        let conn = Connection::open(&db2).unwrap();
        let mut stmt = conn.prepare("SELECT DISTINCT diverged_reason FROM runs").unwrap();
        stmt.query_map([], |r| r.get::<_, Option<String>>(0)).unwrap().filter_map(|r| r.unwrap()).collect()
    };
    assert!(reasons.iter().any(|r| r.starts_with("a reward beyond ±1e6")), "{reasons:?}");
}

/// A reader that closes the pipe early (`rmlab sweep … 2>&1 | head -2`) does not make rmlab
/// panic: the sweep finishes its work and exits 0.
#[test]
fn a_closed_pipe_is_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(["sweep", &quick(), "--db", db.to_str().unwrap(), "--jobs", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for _ in 0..2 {
        lines.next();
    }
    drop(lines);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 4);
    let mut q = Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(["query", "curves", "--db", db.to_str().unwrap(), "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(q.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    drop(out);
    let o = q.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

/// A cell's numbers do not depend on how the sweep was split: one worker or two (different
/// stacked groups), the cells run in two halves with `--only`, or every cell alone
/// (`--no-vectorize`: the batched engine as groups of one). The engine and group of each run
/// are recorded. The autograd trainer (`--autograd`) agrees to float32 rounding.
/// Every metric value of a store, ordered by cell, split, name and step.
fn metric_values(db: &Path) -> Vec<(String, String, String, i64, Option<f64>)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.config_hash, m.split, m.name, m.step, m.value FROM metrics m JOIN runs r ON r.id = m.run_id
             ORDER BY 1, 2, 3, 4",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Linear models too: one worker (one group), two workers (two groups) and every cell alone
/// (`--no-vectorize`) give every metric value bit for bit, and every final reward.
#[test]
fn linear_results_do_not_depend_on_jobs_or_grouping() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "linear.toml",
        &std::fs::read_to_string(quick())
            .unwrap()
            .replace("hidden = [16]", "kind = \"linear\"")
            .replace("seeds = 2", "seeds = 1")
            .replace("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.0, 0.01, 0.1]"),
    );
    let spec_s = spec.to_str().unwrap();
    // Three cells: one group with one worker, groups of two and one with two workers.
    let runs = [&["--jobs", "1"][..], &["--jobs", "2"], &["--no-vectorize"]];
    let dbs: Vec<PathBuf> = (0..runs.len()).map(|i| dir.path().join(format!("{i}.sqlite"))).collect();
    for (db, args) in dbs.iter().zip(runs) {
        let mut all = vec!["sweep", spec_s, "--db", db.to_str().unwrap()];
        all.extend_from_slice(args);
        ok(rmlab(&all));
    }
    let reference = metric_values(&dbs[0]);
    // Per cell: 39 metrics at each of 5 evaluations, label_ece and label_brier of both splits at
    // each, and 30 reliability values (10 bins × 3) of both splits once.
    assert_eq!(reference.len(), 3 * (5 * 39 + 5 * 2 * 2 + 2 * 30));
    let rewards = |db: &Path| -> Vec<(String, i64, f64)> {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT r.config_hash, w.response, w.reward FROM rewards w JOIN runs r ON r.id = w.run_id
                 ORDER BY 1, 2",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let final_rewards = rewards(&dbs[0]);
    assert!(!final_rewards.is_empty());
    for (db, args) in dbs.iter().zip(runs).skip(1) {
        let other = metric_values(db);
        assert_eq!(other.len(), reference.len(), "{args:?}");
        let differing = reference
            .iter()
            .zip(&other)
            .filter(|(a, b)| {
                (&a.0, &a.1, &a.2, a.3, a.4.map(f64::to_bits))
                    != (&b.0, &b.1, &b.2, b.3, b.4.map(f64::to_bits))
            })
            .count();
        assert_eq!(differing, 0, "{args:?}: {differing} of {} metric values differ", reference.len());
        let bits = |v: &[(String, i64, f64)]| {
            v.iter().map(|(h, i, r)| (h.clone(), *i, r.to_bits())).collect::<Vec<_>>()
        };
        assert!(bits(&rewards(db)) == bits(&final_rewards), "{args:?}: final rewards differ");
    }
    let groups =
        |db: &Path| count(db, "SELECT count(DISTINCT batch_group) FROM runs WHERE engine = 'batched'");
    assert_eq!((groups(&dbs[0]), groups(&dbs[1]), groups(&dbs[2])), (1, 2, 3));
}

#[test]
fn results_do_not_depend_on_how_a_sweep_was_split() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "split.toml",
        &std::fs::read_to_string(quick())
            .unwrap()
            .replace("seeds = 2", "seeds = 3")
            .replace("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.0, 0.01, 0.1]"),
    );
    let spec_s = spec.to_str().unwrap();
    let dbs: Vec<PathBuf> = (0..5).map(|i| dir.path().join(format!("{i}.sqlite"))).collect();
    ok(rmlab(&["sweep", spec_s, "--db", dbs[0].to_str().unwrap(), "--jobs", "1"]));
    ok(rmlab(&["sweep", spec_s, "--db", dbs[1].to_str().unwrap(), "--jobs", "2"]));
    let status =
        String::from_utf8_lossy(&ok(rmlab(&["status", spec_s, "--db", "/nonexistent.sqlite"])).stdout)
            .into_owned();
    let hashes: Vec<&str> =
        status.lines().filter_map(|l| l.split_whitespace().nth(2)).filter(|h| h.len() == 16).collect();
    assert_eq!(hashes.len(), 9);
    for part in [&hashes[..4], &hashes[4..]] {
        ok(rmlab(&["sweep", spec_s, "--db", dbs[2].to_str().unwrap(), "--only", &part.join(",")]));
    }
    ok(rmlab(&["sweep", spec_s, "--db", dbs[3].to_str().unwrap(), "--no-vectorize"]));
    ok(rmlab(&["sweep", spec_s, "--db", dbs[4].to_str().unwrap(), "--autograd"]));
    let values = |db: &Path| -> Vec<(String, String, String, i64, Option<f64>)> {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT r.config_hash, m.split, m.name, m.step, m.value FROM metrics m JOIN runs r ON r.id = m.run_id
                 ORDER BY 1, 2, 3, 4",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let reference = values(&dbs[0]);
    assert_eq!(reference.len(), 9 * (5 * 39 + 5 * 2 * 2 + 2 * 30));
    for db in &dbs[1..4] {
        let other = values(db);
        let differing = reference
            .iter()
            .zip(&other)
            .filter(|(a, b)| a.4.map(f64::to_bits) != b.4.map(f64::to_bits))
            .count();
        assert_eq!(differing, 0, "{}: {differing} of {} metric values differ", db.display(), reference.len());
    }
    let autograd = values(&dbs[4]);
    assert_eq!(autograd.len(), reference.len());
    for (a, b) in reference.iter().zip(&autograd) {
        assert_eq!((&a.0, &a.1, &a.2, a.3), (&b.0, &b.1, &b.2, b.3));
        // An empty reliability bin is NULL in both engines.
        let (Some(x), Some(y)) = (a.4, b.4) else {
            assert_eq!(a.4.is_none(), b.4.is_none(), "{a:?} against {b:?}");
            continue;
        };
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{a:?}: batched {x}, autograd {y}");
    }
    // Groups as trained: one group of 9 with one worker; two groups with two workers; nine
    // groups of one alone; no group with autograd.
    let groups =
        |db: &Path| count(db, "SELECT count(DISTINCT batch_group) FROM runs WHERE engine = 'batched'");
    // (Each half of the --only run is split between the two default workers.)
    assert_eq!((groups(&dbs[0]), groups(&dbs[1]), groups(&dbs[2]), groups(&dbs[3])), (1, 2, 4, 9));
    assert_eq!(count(&dbs[3], "SELECT count(*) FROM runs WHERE batch_group LIKE '%:1'"), 9);
    assert_eq!(
        count(&dbs[4], "SELECT count(*) FROM runs WHERE engine = 'autograd' AND batch_group IS NULL"),
        9
    );
}

/// The store's `-wal` and `-shm` files that exist now.
fn wal_files(db: &Path) -> Vec<String> {
    ["-wal", "-shm"]
        .iter()
        .map(|s| format!("{}{s}", db.display()))
        .filter(|p| Path::new(p).exists())
        .collect()
}

/// `db` with the first leaf page of its `metrics` b-tree scrambled (issue 26): SQLite's
/// `quick_check` finds it, but a sweep that only appends runs (to the right edge of every
/// b-tree) would never read it.
fn damage_first_metrics_leaf(db: &Path) {
    let (page, size): (i64, i64) = {
        let conn = Connection::open(db).unwrap();
        let page = conn
            .query_row(
                "SELECT pageno FROM dbstat WHERE name = 'metrics' AND pagetype = 'leaf' ORDER BY path LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let leaves: i64 = conn
            .query_row("SELECT count(*) FROM dbstat WHERE name = 'metrics' AND pagetype = 'leaf'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(leaves >= 4, "the first leaf must be away from the right edge ({leaves} leaves)");
        (page, conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap())
    };
    assert!(wal_files(db).is_empty(), "everything is in the store file");
    let mut bytes = std::fs::read(db).unwrap();
    let start = ((page - 1) * size) as usize;
    for b in &mut bytes[start..start + size as usize] {
        *b ^= 0x5A;
    }
    std::fs::write(db, &bytes).unwrap();
}

/// Issue 26: a sweep (`--force` too), a merge into it and a migration refuse a store that fails
/// `quick_check`, naming it, exit 1, and write nothing to it. Before, `sweep --force` added runs
/// to a file that failed `integrity_check` and `merge` wrote into a damaged target.
#[test]
fn writers_refuse_a_damaged_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "wide.toml",
        &std::fs::read_to_string(quick()).unwrap().replace("seeds = 2", "seeds = 6"),
    );
    let (db, good) = (dir.path().join("s.sqlite"), dir.path().join("good.sqlite"));
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let other = write(
        dir.path(),
        "other.toml",
        &std::fs::read_to_string(quick()).unwrap().replace("name = \"quick\"", "name = \"other\""),
    );
    ok(rmlab(&["sweep", other.to_str().unwrap(), "--db", good.to_str().unwrap()]));
    damage_first_metrics_leaf(&db);
    let bytes = std::fs::read(&db).unwrap();
    let runs = count(&db, "SELECT count(*) FROM runs");
    for out in [
        rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap(), "--force"]),
        rmlab(&["merge", good.to_str().unwrap(), "--into", db.to_str().unwrap()]),
        rmlab(&["migrate", "--db", db.to_str().unwrap()]),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("rmlab: error:")).count(), 1, "{err}");
        assert!(err.contains(&format!("{}: damaged (SQLite quick_check", db.display())), "{err}");
        assert_eq!(count(&db, "SELECT count(*) FROM runs"), runs);
        assert!(std::fs::read(&db).unwrap() == bytes, "the damaged store was written to");
    }
}

/// Issue 26: a run left `running` by a sweep killed with SIGKILL reads as `interrupted` in
/// `query runs` and `status` at once (read-only: the store is not written), and the next sweep
/// records it as `interrupted`, so no dead run stays `running` beside the finished ones.
#[test]
fn runs_of_a_killed_sweep_become_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(quick())
        .unwrap()
        .replace("steps = 100", "steps = 4000")
        .replace("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.1]");
    let spec = write(dir.path(), "long.toml", &text);
    let db = dir.path().join("s.sqlite");
    let (spec_s, db_s) = (spec.to_str().unwrap(), db.to_str().unwrap());
    let running = |db: &Path| -> i64 {
        Connection::open(db)
            .and_then(|c| c.query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(["sweep", spec_s, "--db", db_s, "--jobs", "1", "--no-vectorize"])
        .current_dir(repo())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while running(&db) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(running(&db), 1, "the sweep was killed while a run was running");

    let runs = String::from_utf8_lossy(
        &ok(rmlab(&["query", "runs", "--db", db_s, "--all-runs", "--format", "csv"])).stdout,
    )
    .into_owned();
    assert!(runs.contains(",interrupted,") && !runs.contains(",running,"), "{runs}");
    let filtered = ok(rmlab(&["query", "runs", "--db", db_s, "--all-runs", "--where", "status=interrupted"]));
    assert!(String::from_utf8_lossy(&filtered.stdout).contains("interrupted"));
    let status = String::from_utf8_lossy(&ok(rmlab(&["status", spec_s, "--db", db_s])).stdout).into_owned();
    assert!(status.contains("interrupted") && !status.contains(" running "), "{status}");
    assert_eq!(running(&db), 1, "readers do not write");

    ok(rmlab(&["sweep", spec_s, "--db", db_s]));
    assert_eq!(running(&db), 0, "the resumed sweep recorded the dead run");
    assert_eq!(
        count(&db, "SELECT count(*) FROM runs WHERE status = 'interrupted' AND error LIKE '%was gone%'"),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 2);
}

/// Issue 26: `query`, `status`, `plot` and `score` on a store with no `-wal`/`-shm` beside it
/// create neither (in a shared directory another user's would be files the owner cannot
/// write), and a store with a live writer is still read through its WAL, rows not yet
/// checkpointed included.
#[test]
fn readers_leave_no_wal_files_and_see_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let db_s = db.to_str().unwrap();
    let real = repo().join("experiments/real.toml").display().to_string();
    let sets = [
        "--set",
        "data.path=tests/fixtures/trl/pairs.jsonl",
        "--set",
        "train.steps=60",
        "--set",
        "loss.lambda=0.01",
        "--set",
        "train.save=\"final\"",
    ];
    let with_sets =
        |args: &[&str]| -> Vec<String> { args.iter().chain(&sets).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| ok(rmlab(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    run(with_sets(&["sweep", &real, "--db", db_s]));
    assert!(wal_files(&db).is_empty(), "the sweep's last connection removed them");
    let uid: String = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row("SELECT uid FROM runs LIMIT 1", [], |r| r.get(0))
        .unwrap();
    // That read made them: remove them as its connection could not.
    for f in wal_files(&db) {
        std::fs::remove_file(f).unwrap();
    }
    let figures = dir.path().join("fig");
    let pairs = repo().join("tests/fixtures/trl/pairs.jsonl").display().to_string();
    for args in [
        vec!["query".to_string(), "runs".into(), "--db".into(), db_s.into()],
        vec!["query".into(), "summary".into(), "--db".into(), db_s.into()],
        with_sets(&["status", &real, "--db", db_s]),
        with_sets(&["plot", &real, "--db", db_s, "--out-dir", figures.to_str().unwrap()]),
        vec!["score".into(), "--run".into(), uid.clone(), pairs.clone(), "--db".into(), db_s.into()],
    ] {
        run(args.clone());
        assert!(wal_files(&db).is_empty(), "{args:?} left {:?}", wal_files(&db));
    }

    // A live writer: its committed change is still only in the WAL, and is read.
    let writer = Connection::open(&db).unwrap();
    writer.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;").unwrap();
    writer.execute("UPDATE runs SET seed = 4242 WHERE uid = ?1", [&uid]).unwrap();
    assert!(!wal_files(&db).is_empty());
    let out =
        run(vec!["query".into(), "runs".into(), "--db".into(), db_s.into(), "--format".into(), "csv".into()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("4242"), "the WAL's rows are read");
    drop(writer);
}

/// Issue 26: a sweep stopped by the file-size limit (`ulimit -f`) is not killed by SIGXFSZ
/// without a word: the write fails, one line names the store, exit 1; the store stays sound
/// and the next sweep (without the limit) records the cut-off run as `interrupted`.
#[test]
fn a_file_size_limit_is_a_write_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    let bin = env!("CARGO_BIN_EXE_rmlab");
    // 100 KiB: the schema fits, the runs' rows do not (the store of quick.toml is 160 KiB).
    let script = format!("ulimit -f 100; exec '{bin}' sweep '{}' --db '{}' --jobs 1", quick(), db.display());
    let out = Command::new("bash").args(["-c", &script]).current_dir(repo()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "exit {:?} (a signal kills with none):\n{err}", out.status);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("rmlab: error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(&db.display().to_string()), "{err}");
    let check: String =
        Connection::open(&db).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    ok(rmlab(&["sweep", &quick(), "--db", db.to_str().unwrap()]));
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'running'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE status = 'finished'"), 4);
}

/// A gzip file of `copies` identical members, each `member` compressed: small on disk, as large
/// as `copies × member.len()` decompressed (every member is read, as `cat a.gz b.gz` needs).
fn gzip_bomb(dir: &Path, name: &str, member: &[u8], copies: usize) -> PathBuf {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(member).unwrap();
    let one = z.finish().unwrap();
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for _ in 0..copies {
        f.write_all(&one).unwrap();
    }
    f.flush().unwrap();
    path
}

/// rmlab with its data segment (heap) capped at `mib` MiB, as `ulimit -d` caps it: an
/// allocation past the cap fails, and Rust aborts (exit 134), where reading within bounded
/// memory exits as usual. `timeout` exits 124 on a hang.
fn rmlab_capped(mib: usize, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -d {} && exec timeout 120 \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_rmlab"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("bash runs")
}

/// A spec in `dir` reading the preference file `path`, with `data` lines added to `[data]`.
fn file_spec(dir: &Path, name: &str, path: &Path, data: &str) -> PathBuf {
    write(
        dir,
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\n[data]\nkind = \"preference_file\"\npath = \"{}\"\n{data}\n[train]\nsteps = 5\n",
            path.display()
        ),
    )
}

/// Gzip bombs (issue 26): 4 GiB of one line without end, and 2.8 GiB of 60 M valid rows, each
/// a few MB on disk, used to be read whole and abort (exit 134) after allocating gigabytes.
/// Reading now stops at the first limit met, line length, decompressed size or rows, with one
/// line naming the file and the limit (the spec key for `check`, the flag for `data`), exit 2,
/// in a heap capped at 1 GiB.
#[test]
fn gzip_bombs_stop_at_a_stated_limit_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let line = gzip_bomb(dir.path(), "line.jsonl.gz", &vec![b'x'; 16 << 20], 256);
    assert!(std::fs::metadata(&line).unwrap().len() < 16 << 20, "a bomb is small on disk");
    let o = rmlab_capped(2048, &["data", line.to_str().unwrap()]);
    bad_input(o, "line.jsonl.gz:1: the line holds more than 16777216 bytes, the limit --max-line-bytes sets");
    let spec = file_spec(dir.path(), "line", &line, "");
    let o = rmlab_capped(2048, &["check", spec.to_str().unwrap()]);
    bad_input(
        o,
        "line.jsonl.gz:1: the line holds more than 16777216 bytes, the limit data.max_line_bytes sets",
    );

    let row = br#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#;
    let member: Vec<u8> = std::iter::repeat_n([&row[..], b"\n"].concat(), 20_000).flatten().collect();
    let rows = gzip_bomb(dir.path(), "rows.jsonl.gz", &member, 3000);
    let rows_s = rows.to_str().unwrap();
    assert!(std::fs::metadata(&rows).unwrap().len() < 16 << 20, "a bomb is small on disk");
    bad_input(
        rmlab_capped(2048, &["data", rows_s, "--max-rows", "100000"]),
        "rows.jsonl.gz:100001: the file holds more than 100000 rows, the limit --max-rows sets",
    );
    bad_input(
        rmlab_capped(2048, &["data", rows_s, "--max-file-bytes", "1000000"]),
        "rows.jsonl.gz:20834: the file holds more than 1000000 bytes after decompression, the limit --max-file-bytes sets",
    );
    for (keys, needle) in [
        (
            "max_rows = 100000",
            "rows.jsonl.gz:100001: the file holds more than 100000 rows, the limit data.max_rows sets",
        ),
        ("max_file_bytes = 1000000", "the limit data.max_file_bytes sets"),
        (
            "max_line_bytes = 10",
            "rows.jsonl.gz:1: the line holds more than 10 bytes, the limit data.max_line_bytes sets",
        ),
    ] {
        let spec = file_spec(dir.path(), "rows", &rows, keys);
        bad_input(rmlab_capped(2048, &["check", spec.to_str().unwrap()]), needle);
    }
    // A limit must be positive.
    let spec = file_spec(dir.path(), "zero", &rows, "max_rows = 0");
    bad_input(rmlab(&["check", spec.to_str().unwrap()]), "data.max_rows: must be > 0");
}

/// `/dev/zero` never ends: as a data file it is refused by `data`, `check` and `score` (which
/// used to read it whole to hash it, and abort after allocating gigabytes), and a gzip bomb
/// given to `score` stops at the kept run's line limit, exit 2, in a capped heap.
#[test]
fn endless_files_are_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.jsonl");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let zero_s = zero.to_str().unwrap();
    bad_input(rmlab_capped(2048, &["data", "/dev/zero"]), "/dev/zero: not a regular file");
    bad_input(rmlab_capped(2048, &["data", zero_s]), "zero.jsonl: not a regular file");
    let spec = file_spec(dir.path(), "zero", &zero, "");
    bad_input(rmlab_capped(2048, &["check", spec.to_str().unwrap()]), "not a regular file");

    // A run that kept its model, scored on /dev/zero and on a bomb.
    let pairs = repo().join("tests/fixtures/trl/pairs.jsonl");
    let spec = file_spec(dir.path(), "kept", &pairs, "");
    let spec_text = std::fs::read_to_string(&spec).unwrap() + "save = \"final\"\n";
    std::fs::write(&spec, spec_text).unwrap();
    let db = dir.path().join("kept.sqlite");
    let db_s = db.to_str().unwrap();
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db_s]));
    let uid: String =
        Connection::open(&db).unwrap().query_row("SELECT uid FROM runs", [], |r| r.get(0)).unwrap();
    bad_input(rmlab_capped(2048, &["score", "--run", &uid, "/dev/zero", "--db", db_s]), "not a regular file");
    bad_input(rmlab_capped(2048, &["score", "--run", &uid, zero_s, "--db", db_s]), "not a regular file");
    let line = gzip_bomb(dir.path(), "line.jsonl.gz", &vec![b'x'; 16 << 20], 256);
    bad_input(
        rmlab_capped(2048, &["score", "--run", &uid, line.to_str().unwrap(), "--db", db_s]),
        "line.jsonl.gz:1: the line holds more than 16777216 bytes, the limit data.max_line_bytes sets",
    );
}

/// The tiny random BERT of tests/fixtures/encoder/tiny_bert.json as a checkpoint directory.
fn tiny_checkpoint(dir: &Path) {
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/encoder/tiny_bert.json")).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), fx["config"].to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), fx["tokenizer_json"].as_str().unwrap()).unwrap();
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let tensors: Vec<(String, tch::Tensor)> = fx["weights"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| !name.starts_with("head."))
        .map(|(name, w)| {
            let values: Vec<f32> = numbers(&w["values"]).into_iter().map(|x| x as f32).collect();
            let shape: Vec<i64> = numbers(&w["shape"]).into_iter().map(|x| x as i64).collect();
            (name.clone(), tch::Tensor::from_slice(&values).view(shape.as_slice()))
        })
        .collect();
    tch::Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
}

/// The embedding cache is checked, not trusted (issue 26): a cache file whose every value is
/// set to 1000.0, shape kept, used to be trained on without a word. Now the file is named on
/// stderr, the embeddings are computed again and cached anew, and every metric equals the
/// untampered run's.
#[test]
fn a_changed_embedding_cache_file_is_named_and_computed_again() {
    let dir = tempfile::tempdir().unwrap();
    tiny_checkpoint(&dir.path().join("tiny"));
    let data = repo().join("tests/fixtures/trl/pairs.jsonl");
    let spec = write(
        dir.path(),
        "frozen.toml",
        &format!(
            "name = \"frozen\"\n[data]\nkind = \"preference_file\"\npath = \"{}\"\nval_frac = 0.25\n\
             [model]\nkind = \"encoder\"\nencoder = \"./tiny\"\ndevice = \"cpu\"\nmax_length = 24\n\
             [train]\nbatch_size = 16\nsteps = 20\nlr = 0.003\n[eval]\nevery = 10\n",
            data.display()
        ),
    );
    let (spec_s, db) = (spec.to_str().unwrap(), dir.path().join("s.sqlite"));
    let db_s = db.to_str().unwrap();
    let metrics = || -> Vec<(String, i64, f64)> {
        let conn = Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT m.split || '/' || m.name, m.step, m.value FROM metrics m
                 WHERE m.value IS NOT NULL ORDER BY 1, 2",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let first = ok(rmlab(&["sweep", spec_s, "--db", db_s]));
    assert!(stderr(&first).contains("with the frozen encoder"), "{}", stderr(&first));
    let untampered = metrics();
    assert!(!untampered.is_empty());
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("cache/embeddings")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let tensors: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(file).unwrap();
    let tampered: Vec<(String, tch::Tensor)> = tensors
        .into_iter()
        .map(|(name, t)| if name == "embeddings" { (name, t.full_like(1000.0)) } else { (name, t) })
        .collect();
    tch::Tensor::write_safetensors(&tampered, file).unwrap();

    let again = ok(rmlab(&["sweep", spec_s, "--db", db_s, "--force"]));
    let err = stderr(&again);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning: embedding cache")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&file.display().to_string()), "names the file: {}", warnings[0]);
    assert!(warnings[0].contains("does not match its SHA-256"), "{}", warnings[0]);
    assert!(err.contains("with the frozen encoder"), "computed again:\n{err}");
    let rerun = metrics();
    assert!(rerun.len() >= untampered.len());
    let differing: Vec<&(String, i64, f64)> = rerun.iter().filter(|m| !untampered.contains(m)).collect();
    assert!(differing.is_empty(), "metrics of the rerun that the untampered run did not have: {differing:?}");

    // Cached anew: the next run reads the file without a word.
    let third = ok(rmlab(&["sweep", spec_s, "--db", db_s, "--force"]));
    assert!(!stderr(&third).contains("warning"), "{}", stderr(&third));
    assert!(!stderr(&third).contains("with the frozen encoder"), "{}", stderr(&third));
}

/// A spec of more than 10⁵ cells is refused at its `[sweep]` table, naming the count and the
/// limit, before any cell is made (a 10⁶-cell spec used to be expanded four times over by
/// `check`, holding every cell).
#[test]
fn a_spec_over_the_cell_limit_is_refused_at_its_sweep_table() {
    let dir = tempfile::tempdir().unwrap();
    let lambdas: Vec<String> = (0..10_000).map(|i| format!("{}", i as f64 * 1e-4)).collect();
    let spec = write(
        dir.path(),
        "big.toml",
        &format!("name = \"big\"\n[sweep]\nseeds = 11\n\"loss.lambda\" = [{}]\n", lambdas.join(", ")),
    );
    bad_input(
        rmlab(&["check", spec.to_str().unwrap()]),
        "big.toml:2:1: sweep: the grid has 110000 cells (11 seeds × 10000 grid points); at most 100000 fit one spec",
    );
}
