//! Stage 2, preference data: responses with features and labelled pairs, split by prompt.
//!
//! Generators ([`synthetic`]) and readers ([`preference_file`]) produce [`Preferences`] (plain
//! host vectors, easy to test); training moves them to a device once as a [`Dataset`].

pub mod comparison_graph;
mod dataset;
pub mod preference_file;
mod preferences;
mod split;
pub mod synthetic;
pub mod text_features;

use std::collections::HashSet;

pub use dataset::{Dataset, SplitTensors};
pub use preferences::{Bags, Pair, Preferences, Texts};
pub use split::{Split, split_prompts};

use crate::error::Result;
use crate::experiment::Cell;
use crate::experiment::config::DataKind;

/// Checks every row of each preference file the cells read, once per file and skip setting, so
/// that a bad file is bad input (exit 2, with the file and line of its first bad row) before
/// any cell runs.
pub fn check_files(cells: &[Cell]) -> Result<()> {
    let mut checked: HashSet<(String, bool)> = HashSet::new();
    for cell in cells {
        let d = &cell.config.data;
        if d.kind != DataKind::PreferenceFile {
            continue;
        }
        let (Some(path), Some(sha)) = (&d.resolved_path, &d.file_sha256) else { continue };
        if checked.insert((sha.clone(), d.skip_bad_rows)) {
            preference_file::read(path, d.skip_bad_rows)?;
        }
    }
    Ok(())
}

/// Loads the data of a run: generated (synthetic) or read from a preference file. The report
/// says how many rows a file had and which were skipped.
pub fn load(
    cfg: &crate::experiment::config::DataConfig,
    seed: u64,
) -> crate::error::Result<(Preferences, Option<preference_file::ReadReport>)> {
    use crate::experiment::config::{DataKind, TextFeatures};
    match cfg.kind {
        DataKind::Synthetic => Ok((synthetic::generate(cfg, seed), None)),
        DataKind::PreferenceFile => {
            let path = cfg
                .resolved_path
                .clone()
                .or_else(|| cfg.path.as_ref().map(std::path::PathBuf::from))
                .ok_or_else(|| crate::error::Error::Input("data.path is not set".into()))?;
            let (examples, report) = preference_file::read(&path, cfg.skip_bad_rows)?;
            let mut prompt_ids: std::collections::HashMap<&str, usize> = Default::default();
            let mut prompt_of = Vec::with_capacity(2 * examples.len());
            let mut pairs = Vec::with_capacity(examples.len());
            for (i, e) in examples.iter().enumerate() {
                let next = prompt_ids.len();
                let x = *prompt_ids.entry(e.prompt.as_str()).or_insert(next);
                prompt_of.extend([x, x]);
                pairs.push(Pair { chosen: 2 * i, rejected: 2 * i + 1 });
            }
            let (features, dim, bags) = match cfg.text_features {
                TextFeatures::Ngrams => {
                    let items: Vec<(&str, &str)> = examples
                        .iter()
                        .flat_map(|e| {
                            [(e.prompt.as_str(), e.chosen.as_str()), (e.prompt.as_str(), e.rejected.as_str())]
                        })
                        .collect();
                    let (width, ids) = text_features::bags(&items, cfg.ngram, cfg.buckets, cfg.max_tokens);
                    (Vec::new(), width, Some(Bags { width, ids, buckets: cfg.buckets }))
                }
                TextFeatures::Embedding => {
                    let mut values = Vec::new();
                    let mut dim = None;
                    for (i, e) in examples.iter().enumerate() {
                        let Some((a, b)) = &e.embedding else {
                            return Err(crate::error::Error::Input(format!(
                                "{}: pair {} has no embedding_chosen/embedding_rejected, but data.text_features = \"embedding\"",
                                path.display(),
                                i + 1
                            )));
                        };
                        if *dim.get_or_insert(a.len()) != a.len() {
                            return Err(crate::error::Error::Input(format!(
                                "{}: pair {} has embeddings of length {}, earlier ones {}",
                                path.display(),
                                i + 1,
                                a.len(),
                                dim.unwrap_or(0)
                            )));
                        }
                        values.extend(a);
                        values.extend(b);
                    }
                    (values, dim.unwrap_or(0), None)
                }
            };
            let n_prompts = prompt_ids.len();
            let mut prompts = vec![String::new(); n_prompts];
            for (text, &x) in &prompt_ids {
                prompts[x] = text.to_string();
            }
            let texts = Texts {
                prompts,
                responses: examples.iter().flat_map(|e| [e.chosen.clone(), e.rejected.clone()]).collect(),
            };
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let split_of_prompt = split_prompts(n_prompts, cfg.val_frac, cfg.test_frac, &mut rng);
            Ok((
                Preferences {
                    dim,
                    features,
                    prompt_of,
                    true_reward: None,
                    split_of_prompt,
                    beta: None,
                    flip: 0.0,
                    margins: examples
                        .iter()
                        .any(|e| e.margin.is_some())
                        .then(|| examples.iter().map(|e| e.margin.unwrap_or(0.0)).collect()),
                    pairs,
                    bags,
                    texts: Some(texts),
                },
                Some(report),
            ))
        }
    }
}
