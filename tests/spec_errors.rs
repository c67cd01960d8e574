//! A corpus of malformed specs: each must give one error naming the key path and the
//! file:line:column it refers to.

use std::path::Path;

use rmlab::Error;
use rmlab::experiment::Spec;

/// Parses `text` as spec `bad.toml` and checks the error's key and location.
#[track_caller]
fn case(text: &str, key: &str, line: usize, column: usize, needle: &str) {
    assert!(!needle.is_empty(), "an empty expected message matches every message");
    let err = Spec::parse(Path::new("bad.toml"), text.to_string()).expect_err("spec should be rejected");
    let msg = err.to_string();
    match &err {
        Error::Spec { file, line: l, column: c, key: k, message } => {
            assert_eq!(file, "bad.toml");
            assert_eq!((k.as_str(), *l, *c), (key, line, column), "{msg}");
            assert!(message.contains(needle), "message lacks {needle:?}: {msg}");
        }
        other => panic!("not a spec error: {other:?}"),
    }
    assert_eq!(err.exit_code(), 2);
    assert!(!msg.contains('\n'), "one line: {msg}");
}

const HEAD: &str = "name = \"t\"\n";

fn with_head(body: &str) -> String {
    format!("{HEAD}{body}")
}

#[test]
fn top_level() {
    case("nme = \"t\"\n", "nme", 1, 1, "unknown field `nme`");
    case("description = \"no name\"\n", "name", 1, 1, "missing field `name`");
    case("name = \"has space\"\n", "name", 1, 8, "letters, digits");
    case("name = 3\n", "name", 1, 8, "invalid type");
    case("name = \"t\"\nseed = 3\n", "seed", 2, 1, "unknown field `seed`");
    case("name = \"t\"\n[dat]\nn_prompts = 3\n", "dat", 2, 2, "unknown field `dat`");
}

#[test]
fn toml_syntax() {
    case("name = \"t\"\n[loss]\nlambda = \n", "loss.lambda", 3, 10, "string values must be quoted");
    case("name = \"t\"\n[loss]\nlambda = 1\nlambda = 2\n", "loss.lambda", 4, 1, "duplicate key");
    case("name = \"t\"\n[[figure]]\nname = \"a\"\nname = \"b\"\n", "figure.name", 4, 1, "duplicate key");
    case("name = \"t\"\nname = \"u\"\n", "name", 2, 1, "duplicate key");
}

#[test]
fn loss_section() {
    case(&with_head("[loss]\nlamda = 0.1\n"), "loss.lamda", 3, 1, "unknown field `lamda`, expected");
    case(&with_head("[loss]\nlambda = \"big\"\n"), "loss.lambda", 3, 10, "invalid type");
    case(&with_head("[loss]\nlambda = -0.1\n"), "loss.lambda", 3, 10, "≥ 0");
    case(&with_head("[loss]\nlambda = nan\n"), "loss.lambda", 3, 10, "found NaN");
    case(&with_head("[loss]\nlambda = inf\n"), "loss.lambda", 3, 10, "found inf");
    case(&with_head("[loss]\nregularizer = \"l3\"\n"), "loss.regularizer", 3, 15, "unknown variant");
    case(
        &with_head("[loss]\nregularizer = \"none\"\nlambda = 0.5\n"),
        "loss.lambda",
        4,
        10,
        "regularizer = \"none\"",
    );
    case(&with_head("[loss]\nmargin_from_data = true\n"), "loss.margin_from_data", 3, 20, "margin column");
    case(&with_head("[loss]\nmargin = -1.0\n"), "loss.margin", 3, 10, "≥ 0");
}

#[test]
fn data_section() {
    let d = |body: &str| with_head(&format!("[data]\n{body}\n"));
    case(&d("flip = 0.5"), "data.flip", 3, 8, "[0, 0.5)");
    case(&d("flip = -0.1"), "data.flip", 3, 8, "[0, 0.5)");
    case(&d("beta = 0.0"), "data.beta", 3, 8, "> 0");
    case(&d("beta = -inf"), "data.beta", 3, 8, "> 0");
    case(&d("n_prompts = 0"), "data.n_prompts", 3, 13, "> 0");
    case(&d("n_prompts = -5"), "data.n_prompts", 3, 13, "invalid value");
    case(&d("n_prompts = 1.5"), "data.n_prompts", 3, 13, "invalid type");
    case(&d("responses_per_prompt = 1"), "data.responses_per_prompt", 3, 24, "at least 2");
    case(&d("responses_per_prompt = 3\npairs_per_prompt = 4"), "data.pairs_per_prompt", 4, 20, "at most");
    case(&d("kind = \"jsonl\""), "data.kind", 3, 8, "unknown variant");
    case(&d("val_frac = 0.7\ntest_frac = 0.3"), "data.val_frac", 3, 12, "leave prompts for training");
    case(&d("val_frac = 1.0"), "data.val_frac", 3, 12, "[0, 1)");
    case(&d("offset_scale = -1.0"), "data.offset_scale", 3, 16, "≥ 0");
}

#[test]
fn model_train_eval_sections() {
    case(&with_head("[model]\nhidden = []\n"), "model.hidden", 3, 10, "at least one hidden layer");
    case(&with_head("[model]\nhidden = [8, 0]\n"), "model.hidden", 3, 10, "> 0");
    case(&with_head("[model]\nkind = \"linear\"\nhidden = [8]\n"), "model.hidden", 4, 10, "linear model");
    case(&with_head("[model]\nactivation = \"swish\"\n"), "model.activation", 3, 14, "unknown variant");
    case(&with_head("[model]\ndevice = \"tpu\"\n"), "model.device", 3, 10, "unknown variant");
    case(&with_head("[train]\nlr = 0.0\n"), "train.lr", 3, 6, "> 0");
    case(&with_head("[train]\nsteps = 0\n"), "train.steps", 3, 9, "> 0");
    case(&with_head("[train]\nbatch_size = 0\n"), "train.batch_size", 3, 14, "> 0");
    case(&with_head("[train]\noptimizer = \"rmsprop\"\n"), "train.optimizer", 3, 13, "unknown variant");
    case(&with_head("[train]\nmomentum = 0.9\n"), "train.momentum", 3, 12, "sgd");
    case(&with_head("[eval]\nevery = 0\n"), "eval.every", 3, 9, "> 0");
}

#[test]
fn preference_files() {
    let d = |body: &str| with_head(&format!("[data]\n{body}\n"));
    case(&d("kind = \"preference_file\""), "data.path", 2, 1, "needs a path");
    case(&d("path = \"x.jsonl\""), "data.path", 3, 8, "kind = \"synthetic\"");
    case(
        &d("kind = \"preference_file\"\npath = \"missing.jsonl\""),
        "data.path",
        4,
        8,
        "read from the spec file's directory",
    );
    case(&d("kind = \"preference_file\"\npath = \"x.jsonl\"\nngram = 4"), "data.ngram", 5, 9, "1, 2 or 3");
}

/// `[[data.eval]]` entries: names of their own, readable files, preference-file data only;
/// figures may name their splits and no others.
#[test]
fn evaluation_files() {
    let pairs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trl/pairs.jsonl");
    let data = format!("[data]\nkind = \"preference_file\"\npath = \"{}\"\n", pairs.display());
    let eval = |name: &str, path: &str| format!("[[data.eval]]\nname = \"{name}\"\npath = \"{path}\"\n");
    let pairs = pairs.display().to_string();
    case(&with_head(&format!("{data}{}", eval("val", &pairs))), "data.eval", 5, 1, "name `val` is taken");
    case(&with_head(&format!("{data}{}", eval("LLM Bar", &pairs))), "data.eval", 5, 1, "lower-case letters");
    case(
        &with_head(&format!("{data}{}{}", eval("a", &pairs), eval("a", &pairs))),
        "data.eval",
        5,
        1,
        "entry 2: name `a` is taken",
    );
    case(
        &with_head(&format!("{data}{}", eval("a", "missing.jsonl"))),
        "data.eval.path",
        7,
        8,
        "`a`: cannot read",
    );
    case(
        &with_head(&format!("[[data.eval]]\nname = \"a\"\npath = \"{pairs}\"\n")),
        "data.eval",
        2,
        1,
        "kind = \"preference_file\"",
    );
    let figure = |split: &str| {
        format!(
            "[[figure]]\nname = \"f\"\nkind = \"final\"\nmetrics = [\"accuracy\"]\nsplits = [\"{split}\"]\n"
        )
    };
    let ok = with_head(&format!("{data}{}{}", eval("heldout", &pairs), figure("heldout")));
    Spec::parse(Path::new("ok.toml"), ok).unwrap();
    case(
        &with_head(&format!("{data}{}{}", eval("heldout", &pairs), figure("llmbar"))),
        "figure.splits",
        8,
        1,
        "unknown split `llmbar`; this spec has train, val, test, heldout",
    );
    let kinds = format!(
        "{data}[[figure]]\nname = \"k\"\nkind = \"graph_kinds\"\nmetrics = [\"pair_diff_abs_mean\", \"reward_std\"]\n"
    );
    case(&with_head(&kinds), "figure.metrics", 5, 1, "`reward_std` has no values by component kind");
}

#[test]
fn bad_rows_of_a_preference_file_are_bad_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trl");
    let spec = |file: &str, skip: bool| {
        format!(
            "{HEAD}[data]\nkind = \"preference_file\"\npath = \"{}\"\nskip_bad_rows = {skip}\n",
            dir.join(file).display()
        )
    };
    // The spec names the file; the data stage checks its rows before any cell runs.
    let load = |name: &str, text: String| -> rmlab::Result<Spec> {
        let spec = Spec::parse(Path::new(name), text)?;
        rmlab::data::check_files(&spec.cells()?)?;
        Ok(spec)
    };
    let err = load("bad.toml", spec("bad_json.jsonl", false)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("bad_json.jsonl:3: invalid JSON"), "{err}");
    load("ok.toml", spec("bad_json.jsonl", true)).unwrap();
    let good = load("ok.toml", spec("pairs.parquet", false)).unwrap();
    let cells = good.cells().unwrap();
    assert_eq!(cells[0].config.data.file_sha256.as_ref().unwrap().len(), 64);
}

#[test]
fn sweep_axes() {
    let s = |body: &str| with_head(&format!("[sweep]\n{body}\n"));
    case(&s("\"loss.lambda\" = 0.1"), "sweep.\"loss.lambda\"", 3, 17, "list of values");
    case(&s("\"loss.lambda\" = []"), "sweep.\"loss.lambda\"", 3, 17, "empty list");
    case(&s("\"loss.lamda\" = [0.1]"), "sweep.\"loss.lamda\"", 3, 16, "unknown config key `loss.lamda`");
    case(&s("\"optim.lr\" = [0.1]"), "sweep.\"optim.lr\"", 3, 14, "starts with one of");
    case(&s("\"loss.lambda\" = [0.1, \"x\"]"), "loss.lambda", 3, 23, "invalid type");
    case(&s("\"loss.lambda\" = [0.1, -1.0]"), "loss.lambda", 3, 23, "≥ 0");
    case(&s("\"loss.lambda\" = [0.1, 0.1]"), "sweep.\"loss.lambda\"", 3, 23, "repeats value 0");
    case(&s("\"data.flip\" = [0.1, 0.6]"), "data.flip", 3, 21, "[0, 0.5)");
    case(&s("seed = [1, 2]"), "sweep.seed", 3, 8, "seeds = N");
    case(&s("\"loss.regularizer\" = [\"none\", \"pair_sum_sq\"]"), "sweep", 3, 31, "resolve to the same run");
}

#[test]
fn sweep_seeds() {
    let s = |body: &str| with_head(&format!("[sweep]\n{body}\n"));
    case(&s("seeds = 0"), "sweep.seeds", 3, 9, "> 0");
    case(&s("seeds = []"), "sweep.seeds", 3, 9, "empty");
    case(&s("seeds = [1, 1]"), "sweep.seeds", 3, 13, "twice");
    case(&s("seeds = [-1]"), "sweep.seeds", 3, 10, "integer ≥ 0");
    case(&s("seeds = \"three\""), "sweep.seeds", 3, 9, "count or a list");
}

#[test]
fn sweep_zip_groups() {
    let z = |body: &str| with_head(&format!("[sweep]\n[[sweep.zip]]\n{body}\n"));
    case(
        &z("\"data.beta\" = [1.0, 4.0]\n\"data.flip\" = [0.1]"),
        "sweep.zip.\"data.flip\"",
        5,
        15,
        "equal lengths",
    );
    case(&z("\"data.beta\" = [1.0, 4.0]"), "sweep.zip", 3, 1, "at least two keys");
    case(
        &z("\"data.beta\" = [1.0, 4.0, 1.0]\n\"data.flip\" = [0.1, 0.1, 0.1]"),
        "sweep.zip",
        4,
        26,
        "repeats point 0",
    );
    case(
        &with_head(
            "[sweep]\n\"data.beta\" = [1.0]\n[[sweep.zip]]\n\"data.beta\" = [2.0]\n\"data.flip\" = [0.1]\n",
        ),
        "sweep.\"data.beta\"",
        5,
        15,
        "swept twice",
    );
}

#[test]
fn good_spec_expands_axes_zips_and_seeds() {
    let text = with_head(
        "[sweep]\nseeds = [3, 9]\n\"loss.lambda\" = [0.0, 0.1]\n[[sweep.zip]]\n\"data.beta\" = [1.0, inf]\n\"data.flip\" = [0.2, 0.0]\n",
    );
    let spec = Spec::parse(Path::new("good.toml"), text).unwrap();
    let cells = spec.cells().unwrap();
    assert_eq!(cells.len(), 2 * 2 * 2);
    let labels: Vec<String> = cells.iter().map(|c| c.label()).collect();
    assert_eq!(labels[0], "loss.lambda=0.0 data.beta=1.0 data.flip=0.2 seed=3");
    assert_eq!(labels[1], "loss.lambda=0.0 data.beta=1.0 data.flip=0.2 seed=9");
    assert_eq!(labels[2], "loss.lambda=0.0 data.beta=inf data.flip=0.0 seed=3");
    assert_eq!(labels[7], "loss.lambda=0.1 data.beta=inf data.flip=0.0 seed=9");
    assert!(cells[7].config.data.beta.is_infinite());
    assert_eq!(cells[7].config.loss.lambda, 0.1);
    let hashes: std::collections::HashSet<_> = cells.iter().map(|c| &c.hash).collect();
    assert_eq!(hashes.len(), 8);
}

#[test]
fn every_catalogue_spec_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let spec = Spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let first = std::fs::read_to_string(&path).unwrap();
            assert!(first.starts_with("# Question:"), "{} must open with its question", path.display());
            assert!(first.contains("# Cost:"), "{} must state its cost", path.display());
            assert_eq!(path.file_stem().unwrap().to_str().unwrap(), spec.name, "name matches file name");
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn figure_keys() {
    let fig = |body: &str| with_head(&format!("[[figure]]\nname = \"f\"\n{body}"));
    case(
        &fig("kind = \"final\"\nmetrics = [\"accuracy\", \"reward_max_abs\"]\nstat = \"best\"\n"),
        "figure.stat",
        2,
        1,
        "`reward_max_abs` is a magnitude with no best value",
    );
    case(
        &fig("kind = \"curves\"\nmetrics = [\"accuracy\"]\nstat = \"best\"\n"),
        "figure.stat",
        2,
        1,
        "kind = \"final\" only",
    );
    case(
        &fig("kind = \"final\"\nmetrics = [\"accuracy\"]\nlog_x = true\n"),
        "figure.log_x",
        2,
        1,
        "kind = \"curves\" only",
    );
    case(
        &fig("kind = \"final\"\nmetrics = [\"accuracy\"]\nstat = \"max\"\n"),
        "figure.stat",
        6,
        8,
        "unknown variant `max`",
    );
}

#[test]
fn figure_where_takes_a_value_or_a_non_empty_list_of_values() {
    let fig = |filter: &str| {
        with_head(&format!(
            "[sweep]\n\"loss.lambda\" = [0.0, 0.1]\n[[figure]]\nname = \"f\"\nkind = \"final\"\nmetrics = [\"accuracy\"]\nwhere = {{ \"loss.lambda\" = {filter} }}\n"
        ))
    };
    Spec::parse(Path::new("ok.toml"), fig("0.1")).unwrap();
    Spec::parse(Path::new("ok.toml"), fig("[0.0, 0.1]")).unwrap();
    case(&fig("[]"), "figure.where", 4, 1, "expected a value or a non-empty list of values");
    case(&fig("[[0.1]]"), "figure.where", 4, 1, "`loss.lambda`: expected a value or a non-empty list");
}

#[test]
fn eval_rewards_is_all_or_none() {
    Spec::parse(Path::new("ok.toml"), with_head("[eval]\nrewards = \"none\"\n")).unwrap();
    case(&with_head("[eval]\nrewards = \"val\"\n"), "eval.rewards", 3, 11, "unknown variant `val`");
    case(&with_head("[eval]\nrewards = false\n"), "eval.rewards", 3, 11, "wanted string");
}

#[test]
fn figure_log_y_names_a_metric_of_the_figure() {
    let text = with_head(
        "[[figure]]\nname = \"f\"\nkind = \"curves\"\nmetrics = [\"accuracy\"]\nlog_y = [\"reward_std\"]\n",
    );
    case(&text, "figure.log_y", 2, 1, "`reward_std` is not one of this figure's metrics");
}

/// Sizes that cannot fit are refused, by key, before anything is allocated for them (these
/// aborted the process allocating hundreds of GB).
#[test]
fn sizes_that_cannot_fit_are_refused_before_allocating() {
    let max = i64::MAX;
    case(&with_head("[sweep]\nseeds = 100000000000\n"), "sweep.seeds", 3, 9, "at most 100000 seeds");
    case(&with_head("[data]\nfeature_dim = 4294967296\n"), "data.feature_dim", 3, 15, "at most");
    case(&with_head(&format!("[data]\nn_prompts = {max}\n")), "data.n_prompts", 3, 13, "at most");
    case(&with_head(&format!("[model]\nhidden = [{max}]\n")), "model.hidden", 3, 10, "at most");
    case(&with_head("[train]\nbatch_size = 1e12\n"), "train.batch_size", 3, 14, "invalid type");
    case(&with_head("[train]\nbatch_size = 1000000000000\n"), "train.batch_size", 3, 14, "at most");
    case(
        &with_head("[data]\nresponses_per_prompt = 4000000000\n"),
        "data.responses_per_prompt",
        3,
        24,
        "at most",
    );
    case(
        &with_head("[data]\nn_prompts = 100000\nprompt_features = \"onehot\"\n"),
        "data.n_prompts",
        3,
        13,
        "feature values",
    );
    case(&with_head("[model]\nhidden = [60000, 60000]\n"), "model.hidden", 3, 10, "parameters");
    // A grid of 10⁹ cells is refused before it is expanded.
    let axis: Vec<String> = (0..1000).map(|i| format!("{}.0", i + 1)).collect();
    let grid = format!(
        "[sweep]\nseeds = 1000\n\"data.offset_scale\" = [{}]\n\"train.lr\" = [{}]\n",
        axis.join(", "),
        axis.join(", ")
    );
    case(&with_head(&grid), "sweep", 2, 1, "cells");
}

/// A base value that an axis replaces is still checked, where it is written.
#[test]
fn base_values_hidden_by_an_axis_are_checked() {
    case(
        &with_head("[loss]\nlambda = -0.5\n[sweep]\n\"loss.lambda\" = [0.0, 0.1]\n"),
        "loss.lambda",
        3,
        10,
        "≥ 0",
    );
    case(&with_head("[train]\nlr = nan\n[sweep]\n\"train.lr\" = [0.1]\n"), "train.lr", 3, 6, "finite");
}

#[test]
fn bias_init_must_be_finite() {
    case(&with_head("[model]\nbias_init = nan\n"), "model.bias_init", 3, 13, "finite");
    case(&with_head("[model]\nbias_init = inf\n"), "model.bias_init", 3, 13, "finite");
    Spec::parse(Path::new("ok.toml"), with_head("[model]\nbias_init = -2.5\n")).unwrap();
}

/// Trainer controls: one located line for every value that cannot train.
#[test]
fn trainer_controls() {
    let t = |body: &str| with_head(&format!("[train]\n{body}\n"));
    case(&t("schedule = \"step\""), "train.schedule", 3, 12, "unknown variant `step`");
    case(&t("steps = 100\nwarmup_steps = 100"), "train.warmup_steps", 4, 16, "shorter than training");
    case(&t("warmup_ratio = 1.5"), "train.warmup_ratio", 3, 16, "[0, 1)");
    case(&t("warmup_ratio = 0.1\nwarmup_steps = 5"), "train.warmup_ratio", 3, 16, "not both");
    case(&t("max_grad_norm = -1.0"), "train.max_grad_norm", 3, 17, "≥ 0");
    case(&t("gradient_accumulation = 0"), "train.gradient_accumulation", 3, 25, "> 0");
    case(&t("sampling = \"shuffle\""), "train.sampling", 3, 12, "unknown variant");
    case(&t("batch_size = \"most\""), "train.batch_size", 3, 14, "\"all\"");
    case(
        &t("early_stopping_metric = \"acuracy\""),
        "train.early_stopping_metric",
        3,
        25,
        "unknown metric `acuracy`",
    );
    case(
        &t("early_stopping_metric = \"reward_max_abs\""),
        "train.early_stopping_metric",
        3,
        25,
        "no better direction",
    );
    case(
        &t("early_stopping_metric = \"accuracy\"\nearly_stopping_split = \"dev\""),
        "train.early_stopping_split",
        4,
        24,
        "unknown split `dev`",
    );
    case(
        &format!("{HEAD}[data]\nval_frac = 0.0\n[train]\nearly_stopping_metric = \"accuracy\"\n"),
        "train.early_stopping_split",
        4,
        1,
        "empty",
    );
    case(&t("save = \"best\""), "train.save", 3, 8, "needs train.early_stopping_metric");
    case(&t("save = \"all\""), "train.save", 3, 8, "unknown variant");
    Spec::parse(Path::new("ok.toml"), t("batch_size = \"all\"\nschedule = \"cosine\"\nwarmup_ratio = 0.1"))
        .unwrap();
}
