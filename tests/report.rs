//! `rmlab report` end to end: a real store, the page written, and the page opened from disk in
//! a real headless Chromium (Debian's, driven over the DevTools Protocol): it loads with no
//! console error and no request outside the file, every figure renders with a non-zero size,
//! and its tables hold the store's numbers as the library's queries read them.
//!
//! Without Chromium the browser test is skipped with its reason, except under `CI=true`, where
//! it fails: `scripts/bootstrap.sh` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use polars::prelude::AnyValue;
use rmlab::analysis::query::{self, Selection, Stat};
use rmlab::analysis::report::Report;
use rmlab::experiment::Spec;

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

/// A copy of quick.toml named `name`, with some text replaced.
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

/// A description that is markup if anything on the page forgets to escape it.
const HOSTILE: &str = r#"Smoke <b>test</b> & "quotes" <script>document.title='x'</script>"#;

/// The Chromium to test with: `RMLAB_CHROMIUM`, else Debian's `chromium` on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RMLAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// What the browser saw while loading the page: console errors, exceptions, log errors and
/// requests for anything but the page itself.
#[derive(Default)]
struct Seen {
    errors: Vec<String>,
    requests: Vec<String>,
}

/// A store with the quick spec's 4 cells run, and a report of the same spec widened to 3 seeds
/// (2 cells not run) with a description that must be escaped.
fn store_and_report(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let db = dir.join("r.sqlite");
    let s = spec(
        dir,
        "rep",
        &[(
            "description = \"Smoke test: two λ values, two seeds, a small MLP on a small synthetic set.\"",
            &format!("description = '''{HOSTILE}'''"),
        )],
    );
    ok(rmlab(&["sweep", s.to_str().unwrap(), "--db", db.to_str().unwrap()]));
    let html = dir.join("rep.html");
    let out = ok(rmlab(&[
        "report",
        s.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
        "--set",
        "sweep.seeds=3",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 of 6 cells shown"), "{err}");
    (db, s, html)
}

#[test]
fn the_page_renders_in_chromium_with_the_stores_numbers() {
    let Some(browser_path) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no Chromium (chromium on PATH or RMLAB_CHROMIUM): scripts/bootstrap.sh installs it");
        }
        eprintln!("skipped: no Chromium on PATH (apt-get install chromium, or set RMLAB_CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, _, html) = store_and_report(dir.path());
    let text = std::fs::read_to_string(&html).unwrap();
    // Self-contained: the SVG namespace is the only address, and nothing is loaded.
    assert!(!text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "").contains("http"));
    for needle in ["<script", " src=", "<link", "<img", "@import", "url("] {
        assert!(!text.contains(needle), "{needle} in the page");
    }

    let profile = tempfile::tempdir().unwrap();
    let flags: Vec<&std::ffi::OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let browser = headless_chrome::Browser::new(headless_chrome::LaunchOptions {
        path: Some(browser_path),
        headless: true,
        sandbox: false,
        window_size: Some((1280, 900)),
        user_data_dir: Some(profile.path().to_path_buf()),
        args: flags,
        ..headless_chrome::LaunchOptions::default_builder().build().unwrap()
    })
    .expect("Chromium starts");
    let tab = browser.new_tab().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let page_url = format!("file://{}", html.canonicalize().unwrap().display());
    {
        use headless_chrome::protocol::cdp::{Log, Network, Runtime, types::Event};
        let seen = Arc::clone(&seen);
        let own_url = page_url.clone();
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::RuntimeConsoleAPICalled(e)
                    if matches!(
                        e.params.Type,
                        Runtime::ConsoleAPICalledEventTypeOption::Error
                            | Runtime::ConsoleAPICalledEventTypeOption::Assert
                    ) =>
                {
                    seen.errors.push(format!("console: {:?}", e.params.args))
                }
                Event::RuntimeExceptionThrown(e) => {
                    seen.errors.push(format!("exception: {}", e.params.exception_details.text))
                }
                Event::LogEntryAdded(e) if matches!(e.params.entry.level, Log::LogEntryLevel::Error) => {
                    seen.errors.push(format!("log: {}", e.params.entry.text))
                }
                Event::NetworkRequestWillBeSent(e) if e.params.request.url != own_url => {
                    seen.requests.push(e.params.request.url.clone())
                }
                _ => {}
            }
        }))
        .unwrap();
        tab.enable_runtime().unwrap();
        tab.enable_log().unwrap();
        tab.call_method(Network::Enable {
            max_total_buffer_size: None,
            max_resource_buffer_size: None,
            max_post_data_size: None,
            report_direct_socket_traffic: None,
            enable_durable_messages: None,
        })
        .unwrap();
    }
    tab.navigate_to(&page_url).unwrap().wait_until_navigated().unwrap();
    let eval = |js: &str| -> serde_json::Value {
        let v = tab.evaluate(js, false).unwrap().value.expect("a value");
        serde_json::from_str(v.as_str().expect("JSON text")).unwrap()
    };
    // Wait for layout: the document is complete and every figure has a box.
    assert_eq!(eval("JSON.stringify(document.readyState)"), "complete");

    // Every figure renders with a non-zero size, and its drawing inside too.
    let figures = eval(
        "JSON.stringify([...document.querySelectorAll('figure.plot')].map(f => { \
           const s = f.querySelector('svg'); const r = s.getBoundingClientRect(); const b = s.getBBox(); \
           return [f.dataset.figure, r.width, r.height, b.width, b.height]; }))",
    );
    let figures = figures.as_array().unwrap();
    let names: Vec<&str> = figures.iter().map(|f| f[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["loss_curves", "magnitude_curves", "final_vs_lambda", "reward_distributions", "learned_vs_true"]
    );
    for f in figures {
        for i in 1..5 {
            assert!(f[i].as_f64().unwrap() > 10.0, "figure {} has no size: {f}", f[0]);
        }
    }

    // The description reads as the text it is, and made no element.
    assert_eq!(eval("JSON.stringify(document.querySelector('.description').textContent)"), HOSTILE);
    assert_eq!(eval("JSON.stringify(document.querySelectorAll('b, script').length)"), 0);
    assert_eq!(eval("JSON.stringify(document.title)"), "rmlab report: rep");
    let coverage = eval("JSON.stringify(document.getElementById('coverage').textContent)");
    assert_eq!(coverage, "6 in the spec; 4 with a finished run, shown; missing: 2 not run");
    let missing = eval("JSON.stringify(document.querySelectorAll('table.missing tbody tr').length)");
    assert_eq!(missing, 2);

    // The summary tables hold the numbers `query summary` reads from the store, every one.
    let tables = eval(
        "JSON.stringify([...document.querySelectorAll('table.summary')].map(t => ({ \
           split: t.dataset.split, \
           columns: [...t.querySelectorAll('th')].map(h => h.dataset.column), \
           rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => [c.textContent, c.dataset.value ?? null])) })))",
    );
    let store = rmlab::store::Store::open_read_only(&db).unwrap();
    let sel = Selection { experiment: Some("rep".into()), filters: vec![], latest_only: true };
    let (frame, _) = query::summary(store.connection(), &sel, &[], &[], None, Stat::Final).unwrap();
    let mut checked = 0;
    let mut rows_on_page = 0;
    for t in tables.as_array().unwrap() {
        let split = t["split"].as_str().unwrap();
        let columns: Vec<&str> =
            t["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let rows = t["rows"].as_array().unwrap();
        rows_on_page += rows.len();
        let col = |name: &str| columns.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name}"));
        for i in 0..frame.height() {
            let get = |name: &str| frame.column(name).unwrap().get(i).unwrap();
            if get("split") != AnyValue::String(split) {
                continue;
            }
            let metric = match get("metric") {
                AnyValue::String(m) => m.to_string(),
                other => panic!("metric {other:?}"),
            };
            let lambda = match get("loss.lambda") {
                AnyValue::Float64(x) => x,
                AnyValue::Int64(x) => x as f64,
                other => panic!("λ {other:?}"),
            };
            let row = rows
                .iter()
                .find(|r| {
                    r[col("metric")][0] == metric.as_str()
                        && r[col("loss.lambda")][1].as_str().map(|v| v.parse::<f64>().unwrap())
                            == Some(lambda)
                })
                .unwrap_or_else(|| panic!("no row for {split} {metric} λ = {lambda}"));
            for stat in ["n", "mean", "std", "sem", "ci95_lo", "ci95_hi", "n_nonfinite"] {
                let cell = &row[col(stat)];
                let want: Option<f64> = match get(stat) {
                    AnyValue::Null => None,
                    AnyValue::Float64(x) => Some(x),
                    AnyValue::Int64(n) => Some(n as f64),
                    other => panic!("{stat}: {other:?}"),
                };
                let got: Option<f64> = cell[1].as_str().map(|v| v.parse().unwrap());
                assert_eq!(
                    got.map(f64::to_bits),
                    want.map(f64::to_bits),
                    "{split} {metric} λ = {lambda} {stat}: the page says {cell}"
                );
                let shown = want.map_or(String::new(), |x| match get(stat) {
                    AnyValue::Int64(n) => n.to_string(),
                    _ => rmlab::analysis::output::number(x),
                });
                assert_eq!(cell[0], shown.as_str(), "{split} {metric} λ = {lambda} {stat}");
                checked += 1;
            }
        }
    }
    assert_eq!(rows_on_page, frame.height(), "one row on the page per row of the summary");
    assert!(checked >= 7 * frame.height() && frame.height() > 50, "{checked} values checked");

    // Let any late event arrive, then nothing went wrong and nothing was fetched.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let seen = seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "console errors: {:?}", seen.errors);
    assert!(seen.requests.is_empty(), "requests beyond the page: {:?}", seen.requests);
}

/// The page shows exactly the spec's cells: after the spec is edited, its summary neither
/// pools nor lists the old config's runs stored under the same name; `--set` shows those.
#[test]
fn the_report_shows_exactly_the_specs_cells() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let db_s = db.to_str().unwrap();
    let old = spec(dir.path(), "edit", &[]);
    ok(rmlab(&["sweep", old.to_str().unwrap(), "--db", db_s]));
    let new = spec(dir.path(), "edit", &[("steps = 100", "steps = 50")]);
    ok(rmlab(&["sweep", new.to_str().unwrap(), "--db", db_s]));
    for (set, steps) in [(None, 50), (Some("train.steps=100".to_string()), 100)] {
        let spec =
            Spec::load(&new).unwrap().with_overrides(&set.clone().into_iter().collect::<Vec<_>>()).unwrap();
        let report = Report::gather(&db, &spec).unwrap();
        assert_eq!(report.coverage(), (4, String::new()));
        assert!(report.cells.iter().all(|c| c.run.is_some()));
        let shared: Vec<(&str, &str)> =
            report.configs.shared.iter().map(|(k, v)| (k.as_str(), v.text.as_str())).collect();
        assert!(shared.contains(&("train.steps", &*steps.to_string())), "{shared:?}");
        // λ = 0 cells train with no regularizer: the key differs with λ.
        assert_eq!(report.configs.differing, ["loss.lambda", "loss.regularizer", "seed"]);
        for s in &report.summaries {
            let columns: Vec<&str> = s.table.columns.iter().map(|c| c.0.as_str()).collect();
            assert!(!columns.contains(&"train.steps"), "no other config is pooled or split in: {columns:?}");
            let (n, metric) = (
                columns.iter().position(|c| *c == "n").unwrap(),
                columns.iter().position(|c| *c == "metric").unwrap(),
            );
            // A reliability bin one seed left empty (NaN) counts only the other seed.
            let per_group = s.table.rows.iter().filter(|r| !r[metric].text.starts_with("reliability_"));
            assert!(per_group.clone().count() > 10);
            assert!(per_group.clone().all(|r| r[n].text == "2" || r[n].text == "0"), "two seeds a group");
        }
        // The runs shown are those of this config.
        let conn = rusqlite::Connection::open(&db).unwrap();
        for c in &report.cells {
            let id = c.run.as_ref().unwrap().id;
            let stored: i64 = conn
                .query_row("SELECT value FROM params WHERE run_id = ?1 AND key = 'train.steps'", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(stored, steps);
        }
        // The same store and spec give the same page, byte for byte.
        assert_eq!(report.html(), Report::gather(&db, &spec).unwrap().html());
    }
}

#[test]
fn bad_outputs_and_empty_stores_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let s = spec(dir.path(), "refuse", &[]);
    let (s_s, db_s) = (s.to_str().unwrap(), db.to_str().unwrap());
    // No runs of this experiment in the store (its cells were stored under another name): a
    // clear error naming what to do, exit 2, no page.
    ok(rmlab(&["sweep", s_s, "--db", db_s, "--set", "name=other"]));
    let page = dir.path().join("p.html");
    let o = rmlab(&["report", s_s, "--db", db_s, "--out", page.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run `rmlab sweep`"));
    assert!(!page.exists());
    ok(rmlab(&["sweep", s_s, "--db", db_s]));
    let before = std::fs::read(&db).unwrap();
    for bad in [
        db.clone(),
        dir.path().join("r.sqlite-wal"),
        s.clone(),
        dir.path().to_path_buf(),
        dir.path().join("no/such/dir.html"),
    ] {
        let o = rmlab(&["report", s_s, "--db", db_s, "--out", bad.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}: {}", bad.display(), String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("--out"), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "the store is untouched");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part") || n.ends_with(".html"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Without --out, the page goes to results/reports/<experiment>.html, its directory made.
    let o = Command::new(env!("CARGO_BIN_EXE_rmlab"))
        .args(["report", s_s, "--db", db_s])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.path().join("results/reports/refuse.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>"));
}
