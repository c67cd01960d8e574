//! A preference file's rows as comparisons between responses: one node per response.
//!
//! Prompts with the same text are one prompt, and within a prompt the same response text is
//! one response however many rows name it, so that a prompt's rows form its comparison graph
//! (a response preferred in one row and rejected in another joins the two pairs). Every row is
//! one labelled pair, in row order, repeats and contradictions included.

use std::collections::HashMap;

use super::pair::Pair;
use super::preference_file::Example;

/// Prompts, responses and labelled pairs of one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparisons {
    /// Text of each prompt, in order of first appearance.
    pub prompts: Vec<String>,
    /// Text of each response, in order of first appearance, `[R]`.
    pub responses: Vec<String>,
    /// Prompt of each response, `[R]`.
    pub prompt_of: Vec<usize>,
    /// One pair per row, in row order.
    pub pairs: Vec<Pair>,
    /// Margin of each pair (0 where a row has none), when some row has one.
    pub margins: Option<Vec<f64>>,
    /// Precomputed embedding of each response, from the first row that names it, `[R]`.
    pub embeddings: Vec<Option<Vec<f32>>>,
}

impl Comparisons {
    /// The comparisons of a file's rows.
    pub fn new(examples: &[Example]) -> Comparisons {
        let mut prompt_ids: HashMap<&str, usize> = HashMap::new();
        let mut response_ids: HashMap<(usize, &str), usize> = HashMap::new();
        let mut c = Comparisons {
            prompts: Vec::new(),
            responses: Vec::new(),
            prompt_of: Vec::new(),
            pairs: Vec::with_capacity(examples.len()),
            margins: examples
                .iter()
                .any(|e| e.margin.is_some())
                .then(|| examples.iter().map(|e| e.margin.unwrap_or(0.0)).collect()),
            embeddings: Vec::new(),
        };
        for e in examples {
            let x = *prompt_ids.entry(e.prompt.as_str()).or_insert_with(|| {
                c.prompts.push(e.prompt.clone());
                c.prompts.len() - 1
            });
            let embedding = |side: usize| e.embedding.as_ref().map(|(a, b)| [a, b][side].clone());
            let [chosen, rejected] =
                [(0, e.chosen.as_str()), (1, e.rejected.as_str())].map(|(side, text)| {
                    *response_ids.entry((x, text)).or_insert_with(|| {
                        c.responses.push(text.to_string());
                        c.prompt_of.push(x);
                        c.embeddings.push(embedding(side));
                        c.responses.len() - 1
                    })
                });
            c.pairs.push(Pair { chosen, rejected });
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(prompt: &str, chosen: &str, rejected: &str) -> Example {
        Example {
            line: 0,
            prompt: prompt.into(),
            prompt_from: crate::data::preference_file::PromptFrom::Column,
            chosen: chosen.into(),
            rejected: rejected.into(),
            margin: None,
            embedding: None,
        }
    }

    /// A response text repeated within a prompt is one node; the same text under another
    /// prompt is another node.
    #[test]
    fn one_node_per_response_text_within_a_prompt() {
        let c = Comparisons::new(&[
            ex("p", "a", "b"),
            ex("q", "a", "b"),
            ex("p", "b", "c"),
            ex("p", "a", "b"),
            ex("p", "c", "a"),
        ]);
        assert_eq!(c.prompts, ["p", "q"]);
        assert_eq!(c.responses, ["a", "b", "a", "b", "c"]);
        assert_eq!(c.prompt_of, [0, 0, 1, 1, 0]);
        let pairs: Vec<(usize, usize)> = c.pairs.iter().map(|p| (p.chosen, p.rejected)).collect();
        assert_eq!(pairs, [(0, 1), (2, 3), (1, 4), (0, 1), (4, 0)]);
        assert_eq!(c.margins, None);
    }

    /// Margins stay per row (0 where a row has none); a response's embedding is that of the
    /// first row naming it.
    #[test]
    fn margins_per_row_embeddings_per_response() {
        let mut rows = [ex("p", "a", "b"), ex("p", "b", "c"), ex("p", "c", "a")];
        rows[1].margin = Some(2.0);
        for (i, r) in rows.iter_mut().enumerate() {
            r.embedding = Some((vec![i as f32, 0.0], vec![i as f32, 1.0]));
        }
        let c = Comparisons::new(&rows);
        assert_eq!(c.margins, Some(vec![0.0, 2.0, 0.0]));
        assert_eq!(c.embeddings, [Some(vec![0.0, 0.0]), Some(vec![0.0, 1.0]), Some(vec![1.0, 1.0])]);
    }
}
