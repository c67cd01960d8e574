//! The fuzz targets' smoke run (issue 26), part of `cargo test`: every input of
//! fuzz/corpus/<target>/ (seeds and regressions), then a fixed number of deterministic
//! mutations of them, through the same target functions the libFuzzer binaries run
//! (fuzz/src/lib.rs). A target must return on every input: a panic fails the test naming the
//! input's file, and so does an input still running after a minute (a hang). The long,
//! coverage-guided runs are `just fuzz TARGET SECONDS` (fuzz/run.sh).

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutated inputs per target (`RMLAB_FUZZ_SMOKE_RUNS` changes it).
const RUNS: usize = 150;

/// An input still running after this long is a hang (the slowest seed takes well under a second).
const HANG: Duration = Duration::from_secs(60);

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = targets::repo().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

/// Tokens a mutation may insert: the bytes that change how a reader parses.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"-0.0",
    b"NaN",
    b"18446744073709551616",
    b"9007199254740993",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\x00",
    b"=",
    b"[[",
    b"]]",
    b"'''",
    b"\"\"\"",
    b"inf",
    b"nan",
    b"1e-400",
    b"999999999999",
];

/// One random edit of `data` (libFuzzer's kinds, without its coverage feedback).
fn mutate(rng: &mut ChaCha8Rng, data: &mut Vec<u8>, others: &[(String, Vec<u8>)]) {
    let at = |rng: &mut ChaCha8Rng, len: usize| if len == 0 { 0 } else { rng.random_range(0..len) };
    match rng.random_range(0..8) {
        0 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] = rng.random();
        }
        2 => {
            let i = at(rng, data.len() + 1);
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            data.splice(i..i, token.iter().copied());
        }
        3 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.random_range(1..=(data.len() - i).min(64));
            data.drain(i..i + n);
        }
        4 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.random_range(1..=(data.len() - i).min(64));
            let copy: Vec<u8> = data[i..i + n].to_vec();
            let j = at(rng, data.len() + 1);
            data.splice(j..j, copy);
        }
        5 => data.truncate(at(rng, data.len() + 1)),
        6 => {
            // Splice: the head of this input, the tail of another.
            let other = &others[rng.random_range(0..others.len())].1;
            let (i, j) = (at(rng, data.len() + 1), at(rng, other.len() + 1));
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
        }
        _ if data.len() >= 8 => {
            // A little-endian integer field set to an extreme (lengths, offsets, counts).
            let i = at(rng, data.len() - 7);
            let v: u64 =
                [0, 1, u64::MAX, u32::MAX as u64, i64::MAX as u64, rng.random()][rng.random_range(0..6)];
            data[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        _ => data.push(rng.random()),
    }
}

/// Runs `target` on the corpus and on mutations of it; fails naming the input that panicked
/// or hung (written to a file under the system's temporary directory).
fn smoke(target: &str) {
    let (name, run) = *targets::TARGETS.iter().find(|(n, _)| *n == target).expect("a target");
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "fuzz/corpus/{name} is empty");
    let runs = std::env::var("RMLAB_FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(RUNS);
    let mut inputs: Vec<(String, Vec<u8>)> = seeds.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(name.bytes().map(u64::from).sum());
    for k in 0..runs {
        let (from, mut data) = seeds[k % seeds.len()].clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut data, &seeds);
        }
        inputs.push((format!("mutation {k} of {from}"), data));
    }
    // A worker runs the inputs; this thread watches for one that does not return.
    let (tx, rx) = mpsc::channel::<(usize, Result<(), String>)>();
    let work = inputs.clone();
    std::thread::spawn(move || {
        for (i, (_, data)) in work.iter().enumerate() {
            let r = std::panic::catch_unwind(|| run(data)).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or(e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            if tx.send((i, r)).is_err() {
                return;
            }
        }
    });
    for i in 0..inputs.len() {
        let failure = match rx.recv_timeout(HANG) {
            Ok((_, Ok(()))) => continue,
            Ok((j, Err(message))) => (j, format!("panicked: {message}")),
            Err(_) => (i, format!("did not return within {HANG:?} (a hang)")),
        };
        let (j, what) = failure;
        let (label, data) = &inputs[j];
        let kept = keep(name, data);
        panic!("fuzz target `{name}` {what} on {label}; the input is {}", kept.display());
    }
}

/// Writes a failing input where it can be looked at, and added to the corpus once fixed.
fn keep(target: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join("rmlab-fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let hash =
        data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    let path = dir.join(format!("{target}-{hash:016x}"));
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let tests = std::fs::read_to_string(file!()).unwrap();
    for (name, _) in targets::TARGETS {
        assert!(tests.contains(&format!("smoke(\"{name}\")")), "no smoke test of fuzz target {name}");
        assert!(Path::new(&targets::repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"))).is_file());
    }
    let size: u64 =
        walk(&targets::repo().join("fuzz/corpus")).iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(
        size < 2_000_000,
        "fuzz/corpus holds {size} bytes; keep it under 2 MB (libFuzzer's -merge=1 minimizes)"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

#[test]
fn spec_smoke() {
    smoke("spec");
}

#[test]
fn preference_jsonl_smoke() {
    smoke("preference_jsonl");
}

#[test]
fn preference_gz_smoke() {
    smoke("preference_gz");
}

#[test]
fn preference_parquet_smoke() {
    smoke("preference_parquet");
}

#[test]
fn embeddings_smoke() {
    smoke("embeddings");
}

#[test]
fn encoder_smoke() {
    smoke("encoder");
}

#[test]
fn store_smoke() {
    smoke("store");
}

/// Writes the store seeds of fuzz/corpus/store/ (`cargo test --release --locked --test
/// fuzz_corpus -- --ignored write_store_seeds`): stores of every schema version, with 512-byte
/// pages to keep them small, and files that are not stores (no `.sqlite` names: git ignores those).
#[test]
#[ignore = "writes fuzz/corpus/store/; run by hand"]
fn write_store_seeds() {
    use rusqlite::Connection;
    let out = targets::repo().join("fuzz/corpus/store");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let small = |path: &Path| {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 512; VACUUM;").unwrap();
    };
    let v1 = dir.path().join("v1.sqlite");
    {
        let conn = Connection::open(&v1).unwrap();
        conn.execute_batch(rmlab::store::schema_v1_for_tests()).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO experiments VALUES ('quick', 'q', 'quick.toml', 'name = \"quick\"', '2026-01-01T00:00:00Z');
             INSERT INTO runs (id, experiment, config_hash, config_json, format_version, seed, status, started_at,
                               device, threads, rmlab_version)
               VALUES (1, 'quick', 'abc', '{}', 1, 0, 'finished', '2026-01-01T00:00:00Z', 'cpu', 1, '0.1.0');
             INSERT INTO params VALUES (1, 'loss.lambda', 0.1, 1), (1, 'seed', 0, 1);
             INSERT INTO metrics VALUES (1, 'val', 'loss_pair', 0, 0.69), (1, 'val', 'accuracy', 10, 0.8);",
        )
        .unwrap();
    }
    small(&v1);
    std::fs::copy(&v1, out.join("v1")).unwrap();
    let v2 = dir.path().join("v2.sqlite");
    std::fs::copy(&v1, &v2).unwrap();
    {
        let conn = Connection::open(&v2).unwrap();
        conn.execute_batch(rmlab::store::schema_v2_for_tests()).unwrap();
        conn.execute_batch("PRAGMA user_version = 2;").unwrap();
    }
    small(&v2);
    std::fs::copy(&v2, out.join("v2")).unwrap();
    let v3 = dir.path().join("current.sqlite");
    std::fs::copy(&v1, &v3).unwrap();
    drop(rmlab::store::Store::open(&v3).unwrap());
    small(&v3);
    std::fs::copy(&v3, out.join("current")).unwrap();
    let foreign = dir.path().join("foreign.sqlite");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    small(&foreign);
    std::fs::copy(&foreign, out.join("foreign")).unwrap();
    let newer = dir.path().join("newer.sqlite");
    std::fs::copy(&v3, &newer).unwrap();
    Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    std::fs::copy(&newer, out.join("newer")).unwrap();
    std::fs::write(out.join("empty"), b"").unwrap();
}

/// Parquet files polars panicked on, and `rmlab data` exited 101 (found by fuzzing): a thrift
/// field of the wrong type in the metadata, columns read to unequal lengths, a binary column
/// (polars cannot write it as JSON). Each is bad input, an error naming the file.
#[test]
fn parquet_files_polars_panics_on_are_errors() {
    for name in [
        "regression-thrift-bool-panic.parquet",
        "regression-unequal-columns-panic.parquet",
        "regression-binary-column-panic.parquet",
    ] {
        let path = targets::repo().join("fuzz/corpus/preference_parquet").join(name);
        let split = rmlab::experiment::config::PromptSplit::CommonPrefix;
        let err = rmlab::data::preference_file::read(&path, false, split, rmlab::data::ReadLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a readable Parquet file") && err.contains(name), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
