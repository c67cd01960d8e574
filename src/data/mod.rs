//! Stage 2, preference data: responses with features and labelled pairs, split by prompt.
//!
//! Generators ([`synthetic`]) and readers ([`preference_file`]) produce [`Preferences`] (plain
//! host vectors, easy to test); training moves them to a device once as a [`Dataset`]. A file's
//! rows become [`Comparisons`] (one node per response), whose per-prompt comparison graphs
//! ([`graph`]) and statistics ([`DataReport`]) are what `rmlab data` shows.

pub mod comparison_graph;
mod comparisons;
mod dataset;
pub mod graph;
mod pair;
pub mod preference_file;
mod preferences;
mod report;
mod split;
pub mod synthetic;
pub mod text_features;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub use comparisons::Comparisons;
pub use dataset::{Dataset, SplitTensors};
pub use graph::{ComparisonGraphs, ComponentKind};
pub use pair::Pair;
pub use preference_file::ReadLimits;
pub use preferences::{Bags, Preferences, Texts};
pub use report::{DataReport, Lengths};
pub use split::{Split, split_prompts};

use crate::error::{Error, Result};
use crate::experiment::Cell;
use crate::experiment::config::{DataConfig, DataKind, PromptSplit, TextFeatures};

/// Checks every row of each preference file the cells read (training and evaluation files),
/// once per file and reading rule, so that a bad file is bad input (exit 2, with the file and
/// line of its first bad row) before any cell runs.
pub fn check_files(cells: &[Cell]) -> Result<()> {
    let mut checked: HashSet<String> = HashSet::new();
    for cell in cells {
        let d = &cell.config.data;
        if d.kind != DataKind::PreferenceFile {
            continue;
        }
        // Everything that decides whether loading can fail: the files' content and how they
        // are read. Loading also checks what reading alone cannot (embeddings present).
        let mut key = d.clone();
        (key.val_frac, key.test_frac, key.resolved_path) = (0.0, 0.0, None);
        if checked.insert(serde_json::to_string(&key).expect("a DataConfig serializes")) {
            load(d, cell.config.seed)?;
        }
    }
    Ok(())
}

/// One preference file read, as comparisons, with its graphs and report.
#[derive(Clone, Debug)]
pub struct FileData {
    pub comparisons: Comparisons,
    pub graphs: ComparisonGraphs,
    pub report: DataReport,
}

/// Reads a preference file into comparisons, its prompts' graphs and its report, within
/// `limits`.
pub fn read_file(
    path: &Path,
    skip_bad_rows: bool,
    prompt_split: PromptSplit,
    limits: ReadLimits,
) -> Result<FileData> {
    let (examples, read) = preference_file::read(path, skip_bad_rows, prompt_split, limits)?;
    let comparisons = Comparisons::new(&examples);
    let graphs = ComparisonGraphs::new(comparisons.prompts.len(), &comparisons.prompt_of, &comparisons.pairs);
    let report = DataReport::new(&path.display().to_string(), &read, &comparisons, &graphs);
    Ok(FileData { comparisons, graphs, report })
}

/// The data reports of a run: its training file's and each evaluation file's, by split name.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunDataReport {
    pub train: DataReport,
    pub eval: BTreeMap<String, DataReport>,
}

/// Loads the data of a run: generated (synthetic), or read from a preference file and its
/// evaluation files. For files, the report says what each held (rows read and skipped, the
/// comparison graphs).
pub fn load(cfg: &DataConfig, seed: u64) -> Result<(Preferences, Option<RunDataReport>)> {
    match cfg.kind {
        DataKind::Synthetic => Ok((synthetic::generate(cfg, seed), None)),
        DataKind::PreferenceFile => {
            let path = cfg
                .resolved_path
                .clone()
                .or_else(|| cfg.path.as_ref().map(PathBuf::from))
                .ok_or_else(|| Error::Config { key: "data.path".into(), message: "is not set".into() })?;
            let limits = ReadLimits::from(cfg);
            let train = read_file(&path, cfg.skip_bad_rows, cfg.prompt_split, limits)?;
            let mut files = vec![(path, None, train)];
            for e in &cfg.eval {
                let p = e.resolved_path.clone().unwrap_or_else(|| PathBuf::from(&e.path));
                let data = read_file(&p, cfg.skip_bad_rows, cfg.prompt_split, limits)?;
                files.push((p, Some(Split::eval(&e.name)), data));
            }
            // The training file's prompts are split at random; those of an evaluation file are
            // its own split. The draw sees only the training file, so adding evaluation files
            // leaves the train/val/test split as it was.
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let n_train_prompts = files[0].2.comparisons.prompts.len();
            let mut split_of_prompt = split_prompts(n_train_prompts, cfg.val_frac, cfg.test_frac, &mut rng);
            let any_margins = files.iter().any(|f| f.2.comparisons.margins.is_some());
            let mut p = Preferences {
                dim: 0,
                features: Vec::new(),
                prompt_of: Vec::new(),
                true_reward: None,
                split_of_prompt: Vec::new(),
                beta: None,
                flip: 0.0,
                pairs: Vec::new(),
                bags: None,
                texts: Some(Texts { prompts: Vec::new(), responses: Vec::new() }),
                margins: any_margins.then(Vec::new),
                pair_kind: Some(Vec::new()),
            };
            let mut embeddings: Vec<&Option<Vec<f32>>> = Vec::new();
            let mut firsts: Vec<(&Path, usize)> = Vec::new();
            for (path, split, f) in &files {
                let c = &f.comparisons;
                let (x0, r0) = (p.texts.as_ref().map_or(0, |t| t.prompts.len()), p.prompt_of.len());
                if let Some(s) = split {
                    split_of_prompt.extend(std::iter::repeat_n(*s, c.prompts.len()));
                }
                p.prompt_of.extend(c.prompt_of.iter().map(|x| x0 + x));
                p.pairs.extend(
                    c.pairs.iter().map(|q| Pair { chosen: r0 + q.chosen, rejected: r0 + q.rejected }),
                );
                if let Some(m) = &mut p.margins {
                    m.extend(c.margins.clone().unwrap_or_else(|| vec![0.0; c.pairs.len()]));
                }
                if let Some(k) = &mut p.pair_kind {
                    k.extend(&f.graphs.pair_kind);
                }
                let t = p.texts.as_mut().expect("file data keep their texts");
                t.prompts.extend(c.prompts.iter().cloned());
                t.responses.extend(c.responses.iter().cloned());
                embeddings.extend(&c.embeddings);
                firsts.extend((0..c.responses.len()).map(|r| (path.as_path(), r)));
            }
            p.split_of_prompt = split_of_prompt;
            let texts = p.texts.as_ref().expect("file data keep their texts");
            match cfg.text_features {
                TextFeatures::Ngrams => {
                    let items: Vec<(&str, &str)> = p
                        .prompt_of
                        .iter()
                        .zip(&texts.responses)
                        .map(|(&x, y)| (texts.prompts[x].as_str(), y.as_str()))
                        .collect();
                    let (width, ids) = text_features::bags(&items, cfg.ngram, cfg.buckets, cfg.max_tokens);
                    p.dim = width;
                    p.bags = Some(Bags { width, ids, buckets: cfg.buckets });
                }
                TextFeatures::Embedding => {
                    let mut dim = None;
                    for (e, (path, r)) in embeddings.iter().zip(&firsts) {
                        let Some(v) = e else {
                            return Err(Error::file(
                                path,
                                format!(
                                    "response {} has no embedding_chosen/embedding_rejected, but data.text_features = \"embedding\"",
                                    r + 1
                                ),
                            ));
                        };
                        if *dim.get_or_insert(v.len()) != v.len() {
                            return Err(Error::file(
                                path,
                                format!(
                                    "response {} has an embedding of length {}, earlier ones {}",
                                    r + 1,
                                    v.len(),
                                    dim.unwrap_or(0)
                                ),
                            ));
                        }
                        p.features.extend(v);
                    }
                    p.dim = dim.unwrap_or(0);
                }
            }
            let mut reports = files.into_iter().map(|(_, split, f)| (split, f.report));
            let train = reports.next().expect("the training file").1;
            let eval =
                reports.map(|(s, r)| (s.expect("an evaluation split").as_str().to_string(), r)).collect();
            Ok((p, Some(RunDataReport { train, eval })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trl").join(name)
    }

    fn file_config(path: &str) -> DataConfig {
        DataConfig {
            kind: DataKind::PreferenceFile,
            path: Some(fixture(path).display().to_string()),
            skip_bad_rows: true,
            val_frac: 0.0,
            ..DataConfig::default()
        }
    }

    /// tests/fixtures/trl/graph.jsonl loads as the graph built by hand in its README: a repeated
    /// response text is one response, each row one pair.
    #[test]
    fn repeated_responses_are_one_node() {
        let (p, report) = load(&file_config("graph.jsonl"), 0).unwrap();
        let t = p.texts.as_ref().unwrap();
        assert_eq!(
            t.prompts,
            ["Name a primary colour.", "What is 2 + 2?", "Say hi.", "Pick a number.", "Describe the sea."]
        );
        let expected: [(usize, &[&str]); 5] = [
            (0, &["Red.", "Blue.", "Green."]),
            (1, &["4", "5", "22"]),
            (2, &["Hi!", ""]),
            (3, &["7", "3", "9", "1"]),
            (4, &["Waves.", "Salt.", "Blue.", "Deep.", "Vast.", "Wet.", "Old."]),
        ];
        let (mut prompt_of, mut responses) = (Vec::new(), Vec::new());
        for (x, texts) in expected {
            prompt_of.extend(std::iter::repeat_n(x, texts.len()));
            responses.extend(texts.iter().map(|s| s.to_string()));
        }
        assert_eq!(p.prompt_of, prompt_of);
        assert_eq!(t.responses, responses);
        let pairs: Vec<(usize, usize)> = p.pairs.iter().map(|q| (q.chosen, q.rejected)).collect();
        // Rows 1–8, 10–13, 15–19 (9 is a tie, 14 invalid JSON), as response indices.
        let rows = [(0, 1), (1, 2), (0, 2), (3, 4), (3, 5), (6, 7), (8, 9), (3, 4), (7, 6), (10, 11)];
        let sea = [(12, 13), (13, 14), (14, 15), (15, 12), (16, 17), (17, 18), (18, 16)];
        assert_eq!(pairs, rows.iter().chain(&sea).copied().collect::<Vec<_>>());
        use ComponentKind::{OddCycle as O, OneSided as S, TwoSided as T};
        assert_eq!(p.pair_kind.as_deref().unwrap(), [O, O, O, S, S, T, S, S, T, S, T, T, T, T, O, O, O]);
        assert_eq!(p.bags.as_ref().unwrap().ids.len(), 19 * p.dim, "one bag per response");
        let r = report.unwrap();
        assert_eq!((r.train.rows, r.train.skipped, r.train.pairs, r.train.responses), (19, 2, 17, 19));
        assert!(r.eval.is_empty());
    }

    /// An evaluation file's prompts and responses follow the training file's as a split of
    /// their own; the training file's split is the one it has alone.
    #[test]
    fn evaluation_files_are_splits_after_the_training_file() {
        let mut cfg = file_config("pairs.jsonl");
        cfg.val_frac = 0.25;
        let (alone, _) = load(&cfg, 3).unwrap();
        cfg.eval.push(crate::experiment::config::EvalFile {
            name: "graph".into(),
            path: fixture("graph.jsonl").display().to_string(),
            file_sha256: None,
            resolved_path: None,
        });
        let (p, report) = load(&cfg, 3).unwrap();
        let n = alone.split_of_prompt.len();
        assert_eq!(p.split_of_prompt[..n], alone.split_of_prompt[..]);
        assert!(p.split_of_prompt[n..].iter().all(|&s| s == Split::eval("graph")));
        assert_eq!(p.split_of_prompt.len(), n + 5);
        assert_eq!(p.n_pairs(Split::eval("graph")), 17);
        assert_eq!(p.pairs[..alone.pairs.len()], alone.pairs[..]);
        // The training file has margins, the evaluation file none: its pairs get 0.
        assert!(p.margins.as_ref().unwrap()[alone.pairs.len()..].iter().all(|&m| m == 0.0));
        let r = report.unwrap();
        assert_eq!(r.eval["graph"].pairs, 17);
        assert_eq!(r.train.pairs, 400);
        let ds = Dataset::new(&p, tch::Device::Cpu);
        assert_eq!(ds.splits().map(Split::as_str).collect::<Vec<_>>(), ["train", "val", "test", "graph"]);
        assert_eq!(ds.split(Split::eval("graph")).n_pairs, 17);
    }
}
