//! `rmlab export tensorboard` and `[log] tensorboard` end to end: a quick sweep written while
//! training and exported afterwards, both read back by TensorBoard's own reader (the Python
//! `tensorboard` package, tests/tensorboard_check.py) and compared with the store, every scalar
//! exact to float32 and every param as a hyperparameter.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The venv's Python when it has the `tensorboard` package; `None` (with the reason printed)
/// when it has not, which fails instead under `CI=true`, so the check cannot pass by not running.
fn python_with_tensorboard() -> Option<PathBuf> {
    let python = repo().join(".venv/bin/python");
    let found = Command::new(&python).args(["-c", "import tensorboard"]).output();
    if found.as_ref().is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    let why = format!(
        "{} cannot import tensorboard (scripts/bootstrap.sh installs it from notebooks/requirements.txt)",
        python.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: the TensorBoard reader check: {why}");
    None
}

/// A copy of experiments/quick.toml that also writes event files while training.
fn quick_with_log(dir: &Path, live: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("experiments/quick.toml")).unwrap();
    let spec = dir.join("quick.toml");
    std::fs::write(&spec, format!("{text}\n[log]\ntensorboard = {:?}\n", live.display().to_string()))
        .unwrap();
    spec
}

fn check_with_tensorboard(python: &Path, logdir: &Path, db: &Path) -> String {
    let o = Command::new(python)
        .arg(repo().join("tests/tensorboard_check.py"))
        .args([logdir, db])
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn tensorboard_reads_back_every_scalar_and_hyperparameter_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (db, live, exported) = (dir.path().join("q.sqlite"), dir.path().join("live"), dir.path().join("tb"));
    let spec = quick_with_log(dir.path(), &live);
    ok(rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let o = ok(rmlab(&["export", "tensorboard", exported.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("4 runs") && !said.contains("left out"), "{said}");
    for logdir in [&exported, &live] {
        let run = logdir.join("quick/loss.lambda=0.1,seed=1");
        assert!(run.is_dir(), "{} is missing", run.display());
    }
    // Exporting again replaces each run's file rather than adding a second.
    ok(rmlab(&["export", "tensorboard", exported.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let files = std::fs::read_dir(exported.join("quick/loss.lambda=0,seed=0")).unwrap().count();
    assert_eq!(files, 1);
    let Some(python) = python_with_tensorboard() else { return };
    for logdir in [&exported, &live] {
        let out = check_with_tensorboard(&python, logdir, &db);
        assert!(out.contains("ok 4 runs"), "{out}");
    }
}

#[test]
fn export_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    ok(rmlab(&["sweep", "experiments/quick.toml", "--db", db.to_str().unwrap()]));
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under = file.join("tb");
    for (args, says) in [
        (vec![file.to_str().unwrap(), "--db", db.to_str().unwrap()], "not a directory"),
        (vec![under.to_str().unwrap(), "--db", db.to_str().unwrap()], "a path above it is a file"),
        (vec!["tb", "--db", db.to_str().unwrap(), "-e", "nope"], "no such experiment"),
        (vec!["tb", "--db", db.to_str().unwrap(), "--where", "loss.lamda=0"], "no selected run has this key"),
    ] {
        let mut all = vec!["export", "tensorboard"];
        all.extend(args);
        let o = rmlab(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{all:?}: {err}");
    }
    assert!(!repo().join("tb").exists(), "a refused export made its directory");
    // Runs that are not the newest finished run of their cell are counted, not silently dropped.
    let tb = dir.path().join("tb");
    for _ in 0..2 {
        ok(rmlab(&["sweep", "experiments/quick.toml", "--db", db.to_str().unwrap(), "--force"]));
    }
    let o = ok(rmlab(&["export", "tensorboard", tb.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("4 runs, ") && said.contains("8 runs left out"), "{said}");
    let o = ok(rmlab(&[
        "export",
        "tensorboard",
        tb.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--all-runs",
    ]));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("12 runs") && said.contains(",run="), "{said}");
}

#[test]
fn a_spec_tensorboard_dir_that_cannot_be_made_is_the_specs_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let spec = quick_with_log(dir.path(), &file.join("tb"));
    let db = dir.path().join("q.sqlite");
    let o = rmlab(&["sweep", spec.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("quick.toml:") && err.contains("log.tensorboard"), "{err}");
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "name = \"e\"\n[log]\ntensorboard = \"\"\n").unwrap();
    let o = rmlab(&["check", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("empty.toml:3:") && err.contains("log.tensorboard"), "{err}");
}
