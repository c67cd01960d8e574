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
        let version = side["rmlab_version"].as_str().unwrap();
        assert!(
            version.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")),
            "version and commit: {version}"
        );
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

fn sidecar(dir: &Path, stem: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap()).unwrap()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Pearson correlation, written out (the test's own, not the crate's).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// What the catalogue figures draw, checked against the store: typeset titles, captions
/// without placeholders, the legend of a final figure, the identifiable ceiling of the
/// Pearson panel, and reward histograms binned per λ on one y scale.
#[test]
fn catalogue_figures_draw_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let s = spec(dir.path(), "cat", &[]);
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let out = dir.path().join("figs");
    plot(&s, &db, &out);
    let figs = out.join("cat");
    let conn = rusqlite::Connection::open(&db).unwrap();

    let mag = sidecar(&figs, "magnitude_curves");
    let titles: Vec<&str> =
        mag["panels"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["max |r| (val)", "std of r (val)", "mean |r_a + r_b| (val)"]);
    let caption = mag["caption"].as_str().unwrap();
    assert!(
        caption.contains("one line per λ") && !caption.contains('{') && !caption.contains('…'),
        "{caption}"
    );
    let svg = std::fs::read_to_string(figs.join("magnitude_curves.svg")).unwrap();
    assert!(svg.contains("<tspan") && !svg.contains("r_a"), "subscripts are typeset, never raw");

    let fin = sidecar(&figs, "final_vs_lambda");
    let legend: Vec<&str> = fin["legend"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(legend.len(), 3, "{legend:?}");
    assert!(legend[0].starts_with("λ > 0") && legend[1].starts_with("λ = 0, unregularized"), "{legend:?}");
    assert!(legend[2].starts_with("identifiable ceiling"), "{legend:?}");
    // The Pearson panel's ceiling: the mean over runs of corr(r* − g(x), r*) over val responses,
    // with g(x) generated again from each run's config here and r* read from the store.
    let panels = fin["panels"].as_array().unwrap();
    let pearson_panel = panels.iter().find(|p| p["title"].as_str().unwrap().contains("Pearson")).unwrap();
    let drawn = pearson_panel["references"].as_array().unwrap();
    assert_eq!(drawn.len(), 1);
    let mut expected = Vec::new();
    let mut stmt = conn.prepare("SELECT id, config_json FROM runs WHERE status = 'finished'").unwrap();
    let runs: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    for (id, json) in runs {
        let cfg: rmlab::experiment::config::RunConfig = serde_json::from_str(&json).unwrap();
        let (_, g) = rmlab::data::synthetic::generate_with_offsets(&cfg.data, cfg.seed);
        let rows: Vec<(i64, f64)> = conn
            .prepare("SELECT prompt, true_reward FROM rewards WHERE run_id = ?1 AND split = 'val'")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let t: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let identifiable: Vec<f64> = rows.iter().map(|&(p, t)| t - g[p as usize]).collect();
        expected.push(pearson(&identifiable, &t));
    }
    let value = drawn[0].as_f64().unwrap();
    assert!((value - mean(&expected)).abs() < 1e-9, "{value} vs {}", mean(&expected));
    assert!(value > 0.0 && value < 1.0);
    // No ceiling where there is none: magnitudes.
    assert!(
        panels
            .iter()
            .filter(|p| !p["title"].as_str().unwrap().contains("Pearson"))
            .all(|p| p["references"] == serde_json::json!([]))
    );

    // Reward histograms: a panel per λ, each over the range of its own rewards, one y scale.
    let dist = sidecar(&figs, "reward_distributions");
    let hists = dist["panels"].as_array().unwrap();
    assert_eq!(hists.len(), 2);
    for (h, lambda) in hists.iter().zip([0.0, 0.1]) {
        assert!(h["title"].as_str().unwrap().starts_with(&format!("λ = {lambda}")), "{h}");
        let (lo, hi): (f64, f64) = conn
            .query_row(
                "SELECT min(w.reward), max(w.reward) FROM rewards w JOIN params p ON p.run_id = w.run_id
                 AND p.key = 'loss.lambda' WHERE w.split = 'val' AND p.value = ?1",
                [lambda],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let pad = (hi - lo) * 0.02;
        assert!((h["range"][0].as_f64().unwrap() - (lo - pad)).abs() < 1e-9, "{h}");
        assert!((h["range"][1].as_f64().unwrap() - (hi + pad)).abs() < 1e-9, "{h}");
    }
    assert_eq!(hists[0]["y_max"], hists[1]["y_max"]);
}

/// `stat = "best"` draws the best value of each run (as `rmlab query summary --stat best`),
/// and a log step axis leaves step 0 out.
#[test]
fn best_values_and_log_axes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let figures = r#"
[[figure]]
name = "best"
kind = "final"
metrics = ["accuracy"]
stat = "best"

[[figure]]
name = "logcurves"
kind = "curves"
metrics = ["accuracy", "reward_max_abs"]
log_x = true
log_y = ["reward_max_abs"]
"#;
    let s = spec(dir.path(), "stats", &[("[eval]\nevery = 25\n", &format!("[eval]\nevery = 25\n{figures}"))]);
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let out = dir.path().join("figs");
    plot(&s, &db, &out);
    let best = sidecar(&out.join("stats"), "best");
    assert!(best["query"].as_str().unwrap().contains("best_value"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let panel = &best["panels"][0];
    assert!(panel["title"].as_str().unwrap().starts_with("best pair accuracy"));
    let expected: f64 = conn
        .query_row(
            "SELECT avg(s.best_value) FROM summaries s JOIN params p ON p.run_id = s.run_id AND p.key = 'loss.lambda'
             WHERE s.split = 'val' AND s.name = 'accuracy' AND p.value = 0.1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let point = &panel["series"][0][1][0];
    assert_eq!(point[0].as_f64().unwrap(), 0.1);
    assert!((point[1].as_f64().unwrap() - expected).abs() < 1e-12);
    let baseline: f64 = conn
        .query_row(
            "SELECT avg(s.best_value) FROM summaries s JOIN params p ON p.run_id = s.run_id AND p.key = 'loss.lambda'
             WHERE s.split = 'val' AND s.name = 'accuracy' AND p.value = 0.0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((panel["baselines"][0].as_f64().unwrap() - baseline).abs() < 1e-12);

    let curves = sidecar(&out.join("stats"), "logcurves");
    for p in curves["panels"].as_array().unwrap() {
        for line in p["series"].as_array().unwrap() {
            let xs: Vec<f64> = line[1].as_array().unwrap().iter().map(|q| q[0].as_f64().unwrap()).collect();
            assert_eq!(xs.first(), Some(&25.0), "step 0 is not on a log axis: {xs:?}");
        }
    }
    assert_eq!(curves["panels"][1]["y_label"], "reward units (log scale)");
}

#[test]
fn a_where_list_admits_any_of_its_values_and_runs_may_keep_no_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let figures = r#"rewards = "none"

[[figure]]
name = "listed"
kind = "final"
metrics = ["accuracy", "true_pair_accuracy"]
where = { "loss.lambda" = [0.0, 1.0] }
"#;
    let s = spec(
        dir.path(),
        "listed",
        &[
            ("[eval]\nevery = 25\n", &format!("[eval]\nevery = 25\n{figures}")),
            ("\"loss.lambda\" = [0.0, 0.1]", "\"loss.lambda\" = [0.0, 0.1, 1.0]"),
        ],
    );
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    // Metrics and summaries as always; no per-response rewards.
    assert_eq!(count("SELECT count(*) FROM runs WHERE status = 'finished'"), 6);
    assert!(count("SELECT count(*) FROM summaries") > 0);
    assert_eq!(count("SELECT count(*) FROM rewards"), 0);
    let out = dir.path().join("figs");
    plot(&s, &db, &out);
    let fig = sidecar(&out.join("listed"), "listed");
    // λ = 0 and λ = 1 runs (2 seeds each), not the λ = 0.1 ones.
    let ids: Vec<i64> = fig["run_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let expected: Vec<i64> = {
        let mut stmt = conn
            .prepare(
                "SELECT run_id FROM params WHERE key = 'loss.lambda' AND value IN (0.0, 1.0) ORDER BY run_id",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    assert_eq!(ids, expected);
    let points = &fig["panels"][0]["series"][0][1];
    assert_eq!(points.as_array().unwrap().len(), 1, "one λ > 0 point: {points}");
    assert_eq!(points[0][0].as_f64().unwrap(), 1.0);
    assert!(fig["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("kept no rewards")));
}

/// Final values of `metric` on `split` of the runs `ids`, read from the store.
fn finals(db: &Path, ids: &[i64], split: &str, metric: &str) -> Vec<(i64, f64, f64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    ids.iter()
        .map(|&id| {
            conn.query_row(
                "SELECT p.value, s.final_value FROM summaries s JOIN params p ON p.run_id = s.run_id
                 AND p.key = 'loss.lambda' WHERE s.run_id = ?1 AND s.split = ?2 AND s.name = ?3",
                rusqlite::params![id, split, metric],
                |r| Ok((id, r.get::<_, f64>(0)?, r.get::<_, f64>(1)?)),
            )
            .unwrap()
        })
        .collect()
}

/// Editing a key the spec does not sweep (here `train.steps`) makes new cells under the same
/// experiment name. The figure then draws exactly the edited spec's cells (never averaging the
/// old runs in as if they were seeds), `plot --set` draws the old ones, a query summary splits
/// the groups by the key in which same-seed runs differ and says so, and a spec with cells not
/// yet run says how many its figures show.
#[test]
fn figures_draw_exactly_the_specs_cells_and_summaries_never_pool_configs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let db_s = db.to_str().unwrap();
    let old = spec(dir.path(), "edit", &[]);
    ok(rmlab(&["sweep", old.to_str().unwrap(), "--db", db_s]));
    // The same experiment, edited: half the steps.
    let new = spec(dir.path(), "edit", &[("steps = 100", "steps = 50")]);
    ok(rmlab(&["sweep", new.to_str().unwrap(), "--db", db_s]));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ids_of = |steps: i64| -> Vec<i64> {
        let mut stmt = conn
            .prepare(
                "SELECT r.id FROM runs r JOIN params p ON p.run_id = r.id AND p.key = 'train.steps'
                 WHERE p.value = ?1 AND r.status = 'finished' ORDER BY r.id",
            )
            .unwrap();
        stmt.query_map([steps], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let (old_ids, new_ids) = (ids_of(100), ids_of(50));
    assert_eq!((old_ids.len(), new_ids.len()), (4, 4));

    for (spec_path, set, ids) in [(&new, None, &new_ids), (&new, Some("train.steps=100"), &old_ids)] {
        let out = dir.path().join(format!("figs-{}", ids[0]));
        let mut args =
            vec!["plot", spec_path.to_str().unwrap(), "--db", db_s, "--out-dir", out.to_str().unwrap()];
        if let Some(s) = set {
            args.extend(["--set", s]);
        }
        ok(rmlab(&args));
        let side = sidecar(&out.join("edit"), "final_vs_lambda");
        let drawn: Vec<i64> =
            side["run_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(&drawn, ids, "the figure draws exactly the spec's cells");
        assert_eq!(side["cells"]["cells"], 4);
        assert_eq!(side["cells"]["shown"], 4);
        // The accuracy panel's points are the means of exactly these runs' final values.
        let panel = side["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"].as_str().unwrap().contains("accuracy"))
            .expect("an accuracy panel");
        assert_eq!(panel["chance"], 0.5, "accuracy panels draw chance");
        let values = finals(&db, ids, "val", "accuracy");
        let series = panel["series"].as_array().unwrap();
        let baselines = panel["baselines"].as_array().unwrap();
        let at =
            |lambda: f64| mean(&values.iter().filter(|v| v.1 == lambda).map(|v| v.2).collect::<Vec<_>>());
        let drawn_reg = series[0][1][0][1].as_f64().unwrap();
        assert!(
            (drawn_reg - at(0.1)).abs() < 1e-12,
            "λ = 0.1: drew {drawn_reg}, the runs' mean is {}",
            at(0.1)
        );
        let drawn_base = baselines[0].as_f64().unwrap();
        assert!(
            (drawn_base - at(0.0)).abs() < 1e-12,
            "λ = 0: drew {drawn_base}, the runs' mean is {}",
            at(0.0)
        );
        let footer = side["footer"].as_str().unwrap();
        assert!(footer.contains("2 runs (one per seed)"), "{footer}");
        let steps = if set.is_some() { 100 } else { 50 };
        assert!(footer.contains(&format!("final value at step {steps} ")), "the horizon: {footer}");
    }

    // The summary of the experiment holds both configs: split by train.steps, with a note.
    let out = ok(rmlab(&[
        "query",
        "summary",
        "--db",
        db_s,
        "-e",
        "edit",
        "--metrics",
        "accuracy",
        "--split",
        "val",
        "--format",
        "csv",
    ]));
    let csv = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"train.steps"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4, "2 λ × 2 step counts: {csv}");
    let n_col = header.iter().position(|h| *h == "n").unwrap();
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(n_col) == Some("2")), "{csv}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differ in `train.steps`"), "{err}");

    // A third λ never run: the figures say 4 of 6 cells, and list the missing ones.
    let wider = spec(dir.path(), "edit", &[("steps = 100", "steps = 50"), ("[0.0, 0.1]", "[0.0, 0.1, 1.0]")]);
    let out = dir.path().join("figs-wider");
    plot(&wider, &db, &out);
    let side = sidecar(&out.join("edit"), "final_vs_lambda");
    assert_eq!((side["cells"]["cells"].as_u64(), side["cells"]["shown"].as_u64()), (Some(6), Some(4)));
    let missing = side["cells"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 2);
    assert!(missing.iter().all(|m| m[1] == "not run" && m[0].as_str().unwrap().contains("loss.lambda=1")));
    let footer = side["footer"].as_str().unwrap();
    assert!(footer.contains("Shows 4 of the spec's 6 cells; missing: 2 not run"), "{footer}");
}

/// A reliability figure draws, per λ and split, the bins the runs recorded for their final
/// rewards: every pair of every run lands in a bin, each title's ECE is the mean of the runs'
/// stored `label_ece` (no early stopping: the final rewards are the last evaluation's), and
/// runs without bins (recorded before they existed) are left out with a note.
#[test]
fn reliability_figures_draw_each_runs_final_bins() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let s = spec(dir.path(), "calib", &[]);
    let text = std::fs::read_to_string(&s).unwrap()
        + "\n[[figure]]\nname = \"reliability\"\nkind = \"reliability\"\nsplits = [\"train\", \"val\"]\n";
    std::fs::write(&s, text).unwrap();
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let out = dir.path().join("figs");
    plot(&s, &db, &out);
    let side = sidecar(&out.join("calib"), "reliability");
    let panels = side["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels.iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["λ = 0 (train)", "λ = 0.1 (train)", "λ = 0 (val)", "λ = 0.1 (val)"]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ids: Vec<i64> = side["run_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    for (p, (lambda, split)) in
        panels.iter().zip([(0.0, "train"), (0.1, "train"), (0.0, "val"), (0.1, "val")])
    {
        assert_eq!(p["runs"], 2);
        let runs: Vec<(i64, f64, f64)> =
            finals(&db, &ids, split, "label_ece").into_iter().filter(|r| r.1 == lambda).collect();
        let ece = mean(&runs.iter().map(|r| r.2).collect::<Vec<_>>());
        assert!((p["ece"].as_f64().unwrap() - ece).abs() < 1e-9, "{p}: stored label_ece {ece}");
        // Every labelled pair of the split, in both runs.
        let pairs: f64 = runs
            .iter()
            .map(|r| {
                conn.query_row(
                    "SELECT sum(final_value) FROM summaries WHERE run_id = ?1 AND split = ?2
                     AND name LIKE 'reliability_%_pairs'",
                    rusqlite::params![r.0, split],
                    |row| row.get::<_, f64>(0),
                )
                .unwrap()
            })
            .sum();
        let bins = p["bins"].as_array().unwrap();
        assert!(!bins.is_empty());
        assert_eq!(bins.iter().map(|b| b["pairs"].as_f64().unwrap()).sum::<f64>(), pairs);
        assert!(pairs >= 2.0 * 10.0, "{split}: {pairs}");
        for b in bins {
            let (lo, hi) = (b["interval"][0].as_f64().unwrap(), b["interval"][1].as_f64().unwrap());
            let y = b["correct"].as_f64().unwrap();
            assert!(lo <= y && y <= hi, "{b}");
            let c = b["confidence"].as_f64().unwrap();
            let k = b["bin"].as_f64().unwrap();
            assert!(c >= 0.5 + 0.05 * k - 1e-12 && c <= 0.55 + 0.05 * k + 1e-12, "{b}");
        }
    }
    // A run recorded before the bins existed is left out, with a note.
    conn.execute("DELETE FROM summaries WHERE run_id = ?1 AND name LIKE 'reliability_%'", [ids[0]]).unwrap();
    drop(conn);
    let again = dir.path().join("figs2");
    plot(&s, &db, &again);
    let side = sidecar(&again.join("calib"), "reliability");
    let notes = side["notes"].to_string();
    assert!(notes.contains("1 of 4 runs have no reliability bins"), "{notes}");
    let runs: Vec<u64> =
        side["panels"].as_array().unwrap().iter().map(|p| p["runs"].as_u64().unwrap()).collect();
    assert_eq!(runs.iter().sum::<u64>(), 4 * 2 - 2, "{runs:?}");
}
