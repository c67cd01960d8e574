//! Figures end to end: from a real store to SVG/PNG/JSON, byte-identical when redone, and a
//! clear message or a documented rendering for stores that lack something.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rmlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A copy of quick.toml with some text replaced.
fn spec(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quick.toml"))
            .unwrap();
    text = text.replace("name = \"quick\"", &format!("name = \"{name}\""));
    for (a, b) in edits {
        assert!(text.contains(a), "{a}");
        text = text.replace(a, b);
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `rmlab plot SPEC --db DB --out-dir OUT`, which must succeed.
fn plot(spec: &Path, db: &Path, out: &Path) {
    ok(rmlab(&[
        "plot",
        spec.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
    ]));
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn figures_are_written_with_sidecars_and_identical_when_redrawn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let s = spec(dir.path(), "figs", &[]);
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        plot(&s, &db, out);
    }
    let names = files(&a.join("figs"));
    for stem in
        ["loss_curves", "magnitude_curves", "final_vs_lambda", "reward_distributions", "learned_vs_true"]
    {
        for ext in ["svg", "png", "json"] {
            assert!(names.contains(&format!("{stem}.{ext}")), "{stem}.{ext} missing: {names:?}");
        }
        let svg_a = std::fs::read(a.join("figs").join(format!("{stem}.svg"))).unwrap();
        let svg_b = std::fs::read(b.join("figs").join(format!("{stem}.svg"))).unwrap();
        assert_eq!(svg_a, svg_b, "{stem}.svg differs between two renderings of one store");
        let side: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.join("figs").join(format!("{stem}.json"))).unwrap())
                .unwrap();
        assert_eq!(side["run_ids"].as_array().unwrap().len(), 4);
        assert_eq!(side["seeds"], serde_json::json!([0, 1]));
        assert_eq!(side["rmlab_version"], env!("CARGO_PKG_VERSION"));
        let png = std::fs::read(a.join("figs").join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // 300 dpi = 11811 pixels per metre in the pHYs chunk.
        let phys = png.windows(4).position(|w| w == b"pHYs").expect("pHYs chunk");
        assert_eq!(u32::from_be_bytes(png[phys + 4..phys + 8].try_into().unwrap()), 11811);
    }
    assert!(!names.iter().any(|n| n.ends_with(".part")), "no temporary files left");
    let svg = String::from_utf8(std::fs::read(a.join("figs/final_vs_lambda.svg")).unwrap()).unwrap();
    assert!(svg.contains("λ"), "λ is written as λ");
}

#[test]
fn an_experiment_without_runs_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let s = spec(dir.path(), "figs", &[]);
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let other = spec(dir.path(), "never_run", &[]);
    let out = rmlab(&[
        "plot",
        other.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no finished run of experiment `never_run`"), "{err}");
    let missing = dir.path().join("missing.sqlite");
    let out = rmlab(&["plot", s.to_str().unwrap(), "--db", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!missing.exists());
}

#[test]
fn no_baseline_single_seed_and_diverged_runs_render_with_notes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    // No λ = 0, one seed, and a learning rate that diverges for λ = 100.
    let s = spec(
        dir.path(),
        "odd",
        &[
            ("seeds = 2", "seeds = 1"),
            ("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.1, 100.0]"),
            ("lr = 1e-2", "lr = 0.05\noptimizer = \"sgd\""),
        ],
    );
    let out = rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let diverged: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM runs WHERE status = 'diverged'", [], |r| r.get(0))
        .unwrap();
    assert!(diverged >= 1, "the test needs a diverged run");
    let out_dir = dir.path().join("figs");
    plot(&s, &db, &out_dir);
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("odd/final_vs_lambda.json")).unwrap()).unwrap();
    let notes = side["notes"].to_string();
    assert!(notes.contains("single seed"), "{notes}");
    assert!(notes.contains("no λ = 0 runs"), "{notes}");
    assert!(notes.contains("diverged"), "{notes}");
}
