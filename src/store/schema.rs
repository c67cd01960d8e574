//! The store's schema and its forward migrations, one per version.
//!
//! A new file is created by running every migration from version 0, so the path an old store
//! takes is the path every store takes. docs/schema.md documents the result.

use rusqlite::Transaction;

/// Schema version written to `PRAGMA user_version` by the last migration.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a store from version i to i + 1.
pub const MIGRATIONS: [fn(&Transaction) -> rusqlite::Result<()>; 4] =
    [v0_to_v1, v1_to_v2, v2_to_v3, v3_to_v4];

/// Version 1: experiments, runs, params, metrics.
pub const V1: &str = "
CREATE TABLE experiments (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    spec_path   TEXT NOT NULL,
    spec_text   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    experiment     TEXT NOT NULL REFERENCES experiments(name),
    config_hash    TEXT NOT NULL,
    config_json    TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    seed           INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed')),
    error          TEXT,
    diverged_step  INTEGER,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    wall_seconds   REAL,
    device         TEXT NOT NULL,
    threads        INTEGER NOT NULL,
    host           TEXT,
    pid            INTEGER,
    git_commit     TEXT,
    git_dirty      INTEGER,
    rmlab_version  TEXT NOT NULL,
    torch_version  TEXT
);
CREATE INDEX runs_by_experiment ON runs (experiment, config_hash, status);
CREATE TABLE params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value,
    swept  INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params (key, value);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split  TEXT NOT NULL,
    name   TEXT NOT NULL,
    step   INTEGER NOT NULL,
    value  REAL,
    PRIMARY KEY (run_id, split, name, step)
) WITHOUT ROWID;
";

fn v0_to_v1(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(V1)
}

/// Version 2: a unique id per run (merging stores), the rows read and skipped from a
/// preference file, per-run summaries (final and best value
/// of each metric, backfilled from the metrics), and the final reward of every response.
pub const V2: &str = "
ALTER TABLE runs ADD COLUMN uid TEXT;
ALTER TABLE runs ADD COLUMN data_rows INTEGER;
ALTER TABLE runs ADD COLUMN data_skipped INTEGER;
UPDATE runs SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
CREATE TABLE summaries (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split       TEXT NOT NULL,
    name        TEXT NOT NULL,
    final_step  INTEGER NOT NULL,
    final_value REAL,
    best_step   INTEGER,
    best_value  REAL,
    PRIMARY KEY (run_id, split, name)
) WITHOUT ROWID;
CREATE INDEX summaries_by_name ON summaries (name, split);
CREATE TABLE rewards (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    response    INTEGER NOT NULL,
    prompt      INTEGER NOT NULL,
    split       TEXT NOT NULL,
    reward      REAL,
    true_reward REAL,
    PRIMARY KEY (run_id, response)
) WITHOUT ROWID;
INSERT INTO summaries (run_id, split, name, final_step, final_value)
    SELECT m.run_id, m.split, m.name, m.step, m.value
    FROM metrics m
    JOIN (SELECT run_id, split, name, max(step) AS step FROM metrics GROUP BY run_id, split, name) f
      USING (run_id, split, name, step);
";

fn v1_to_v2(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(V2)?;
    // Best values follow each metric's goal (see metrics::goal); NULL for magnitudes.
    for (name, goal) in crate::experiment::metric::NAMES
        .iter()
        .filter_map(|n| crate::experiment::metric::goal(n).map(|g| (n, g)))
    {
        let order = match goal {
            crate::experiment::metric::Goal::Min => "ASC",
            crate::experiment::metric::Goal::Max => "DESC",
        };
        tx.execute(
            &format!(
                "UPDATE summaries SET (best_step, best_value) = (
                     SELECT m.step, m.value FROM metrics m
                     WHERE m.run_id = summaries.run_id AND m.split = summaries.split AND m.name = summaries.name
                       AND m.value IS NOT NULL
                     ORDER BY m.value {order}, m.step ASC LIMIT 1)
                 WHERE name = ?1"
            ),
            [name],
        )?;
    }
    Ok(())
}

/// Version 3: the identity of the process that ran each run (boot id and start time, so a
/// reused pid is not taken for it), how each run was trained (`engine`: `autograd` for one cell, `batched` for a cell
/// trained in a stacked group, of one for a cell alone, and `batch_group`, the group's identity), why a run was flagged
/// diverged, the step whose weights an early-stopped run kept, the data report of a run (JSON:
/// rows read and skipped, comparison-graph statistics, texts truncated), and the files a run
/// kept (`artifacts`: trained weights and their config, content-addressed).
pub const V3: &str = "
ALTER TABLE runs ADD COLUMN engine TEXT;
ALTER TABLE runs ADD COLUMN batch_group TEXT;
ALTER TABLE runs ADD COLUMN diverged_reason TEXT;
ALTER TABLE runs ADD COLUMN best_step INTEGER;
ALTER TABLE runs ADD COLUMN data_report TEXT;
ALTER TABLE runs ADD COLUMN process TEXT;
CREATE TABLE artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    path   TEXT NOT NULL,
    bytes  INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, kind)
) WITHOUT ROWID;
";

fn v2_to_v3(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(V3)
}

/// Version 4: a run whose process is gone can be recorded as `interrupted` (a later sweep marks
/// the `running` runs it finds dead, see `Store::mark_interrupted`). SQLite cannot change a CHECK
/// constraint in place, so `runs` is rebuilt (SQLite's documented twelve-step way): a new table
/// with the new constraint and the same columns in the same order, the rows copied, the old one
/// dropped, the new one renamed, its indexes made again. Foreign keys must be off meanwhile (the
/// store opens with them off until it is migrated): dropping `runs` with them on would delete
/// every run's params, metrics, summaries, rewards and artifacts through their cascades.
pub const V4: &str = "
CREATE TABLE runs_v4 (
    id             INTEGER PRIMARY KEY,
    experiment     TEXT NOT NULL REFERENCES experiments(name),
    config_hash    TEXT NOT NULL,
    config_json    TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    seed           INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed', 'interrupted')),
    error          TEXT,
    diverged_step  INTEGER,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    wall_seconds   REAL,
    device         TEXT NOT NULL,
    threads        INTEGER NOT NULL,
    host           TEXT,
    pid            INTEGER,
    git_commit     TEXT,
    git_dirty      INTEGER,
    rmlab_version  TEXT NOT NULL,
    torch_version  TEXT,
    uid            TEXT,
    data_rows      INTEGER,
    data_skipped   INTEGER,
    engine         TEXT,
    batch_group    TEXT,
    diverged_reason TEXT,
    best_step      INTEGER,
    data_report    TEXT,
    process        TEXT
);
INSERT INTO runs_v4 (
    id, experiment, config_hash, config_json, format_version, seed, status, error, diverged_step, started_at,
    ended_at, wall_seconds, device, threads, host, pid, git_commit, git_dirty, rmlab_version, torch_version, uid,
    data_rows, data_skipped, engine, batch_group, diverged_reason, best_step, data_report, process)
SELECT
    id, experiment, config_hash, config_json, format_version, seed, status, error, diverged_step, started_at,
    ended_at, wall_seconds, device, threads, host, pid, git_commit, git_dirty, rmlab_version, torch_version, uid,
    data_rows, data_skipped, engine, batch_group, diverged_reason, best_step, data_report, process
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
CREATE INDEX runs_by_experiment ON runs (experiment, config_hash, status);
CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
";

fn v3_to_v4(tx: &Transaction) -> rusqlite::Result<()> {
    let fail = |message: String| {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(message),
        ))
    };
    let fk: i64 = tx.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if fk != 0 {
        return fail("foreign keys are on: rebuilding `runs` would delete what belongs to each run".into());
    }
    tx.execute_batch(V4)?;
    // Every child row still points at its run (step 10 of SQLite's procedure).
    let dangling: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
    if dangling > 0 {
        return fail(format!("{dangling} rows point at no run after rebuilding `runs`"));
    }
    Ok(())
}
