//! Stage 2, preference data: responses with features and labelled pairs, split by prompt.
//!
//! Generators ([`synthetic`]) and readers ([`preference_file`]) produce [`Preferences`] (plain
//! host vectors, easy to test); training moves them to a device once as a [`Dataset`]. A file's
//! rows become [`Comparisons`] (one node per response), whose per-prompt comparison graphs
//! ([`graph`]) and statistics ([`DataReport`]) are what `rmlab data` shows.

mod comparisons;
mod dataset;
pub mod graph;
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
pub use preferences::{Bags, Pair, Preferences, Texts};
pub use report::{DataReport, Lengths};
pub use split::{Split, split_prompts};

use crate::error::{Error, Result};
use crate::experiment::Cell;
use crate::experiment::config::{DataConfig, DataKind, PromptSplit, TextFeatures};

/// Checks every row of each preference file the cells read (training and evaluation files),
/// once per file and reading rule, so that a bad file is bad input (exit 2, with the file and
/// line of its first bad row) before any cell runs.
pub fn check_files(cells: &[Cell]) -> Result<()> {
    let mut checked: HashSet<(String, bool, PromptSplit)> = HashSet::new();
    for cell in cells {
        let d = &cell.config.data;
        if d.kind != DataKind::PreferenceFile {
            continue;
        }
        let files = std::iter::once((&d.resolved_path, &d.file_sha256))
            .chain(d.eval.iter().map(|e| (&e.resolved_path, &e.file_sha256)));
        for (path, sha) in files {
            let (Some(path), Some(sha)) = (path, sha) else { continue };
            if checked.insert((sha.clone(), d.skip_bad_rows, d.prompt_split)) {
                preference_file::read(path, d.skip_bad_rows, d.prompt_split)?;
            }
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

/// Reads a preference file into comparisons, its prompts' graphs and its report.
pub fn read_file(path: &Path, skip_bad_rows: bool, prompt_split: PromptSplit) -> Result<FileData> {
    let (examples, read) = preference_file::read(path, skip_bad_rows, prompt_split)?;
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
                .ok_or_else(|| Error::Input("data.path is not set".into()))?;
            let train = read_file(&path, cfg.skip_bad_rows, cfg.prompt_split)?;
            let mut files = vec![(path, None, train)];
            for e in &cfg.eval {
                let p = e.resolved_path.clone().unwrap_or_else(|| PathBuf::from(&e.path));
                let data = read_file(&p, cfg.skip_bad_rows, cfg.prompt_split)?;
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
                            return Err(Error::Input(format!(
                                "{}: response {} has no embedding_chosen/embedding_rejected, but data.text_features = \"embedding\"",
                                path.display(),
                                r + 1
                            )));
                        };
                        if *dim.get_or_insert(v.len()) != v.len() {
                            return Err(Error::Input(format!(
                                "{}: response {} has an embedding of length {}, earlier ones {}",
                                path.display(),
                                r + 1,
                                v.len(),
                                dim.unwrap_or(0)
                            )));
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
