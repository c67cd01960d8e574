//! What a preference file holds, as `rmlab data` shows it and each run records it
//! (`runs.data_report`): rows read and skipped, prompts, responses, pairs, the shape of each
//! prompt's comparison graph, repeats and contradictions, empty responses, text lengths.

use std::collections::BTreeMap;

use serde::Serialize;

use super::comparisons::Comparisons;
use super::graph::{ComparisonGraphs, ComponentKind};
use super::preference_file::{ReadReport, TIE};

/// Skipped lines listed by line in a report (all are counted).
const LISTED_SKIPS: usize = 10;

/// The statistics of one preference file. Counts of prompts and responses are of the rows
/// that loaded; a component is a connected component with at least one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataReport {
    /// The file as named.
    pub path: String,
    /// Rows read (blank lines are not rows).
    pub rows: usize,
    /// Rows skipped as bad (`data.skip_bad_rows`), by reason.
    pub skipped: usize,
    /// Blank lines, passed over (not rows).
    pub blank_lines: usize,
    /// Rows with an explicit `"prompt": ""`, kept as comparisons under an empty prompt.
    pub empty_prompts: usize,
    /// Rows whose prompt is the shared start of `chosen` and `rejected` (no `prompt` column, or
    /// `"prompt": null`).
    pub implicit_prompts: usize,
    /// Whether the file began with a UTF-8 byte-order mark (ignored).
    pub bom: bool,
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// The first skipped rows: `(line, reason)`.
    pub skipped_lines: Vec<(usize, String)>,
    /// Skipped rows whose `chosen` and `rejected` are the same text.
    pub ties: usize,
    /// Labelled pairs: one per loaded row.
    pub pairs: usize,
    pub prompts: usize,
    /// Distinct responses: one per text within a prompt.
    pub responses: usize,
    /// Responses whose text is empty or white space.
    pub empty_responses: usize,
    /// Distinct compared response pairs.
    pub comparisons: usize,
    /// Rows repeating an earlier row's comparison in the same direction.
    pub duplicates: usize,
    /// Response pairs labelled both ways (a ≻ b and b ≻ a).
    pub contradictions: usize,
    /// `k → prompts with k pairs`.
    pub pairs_per_prompt: BTreeMap<usize, usize>,
    /// `k → prompts with k responses`.
    pub responses_per_prompt: BTreeMap<usize, usize>,
    pub components: usize,
    /// Bipartite components whose winners all sit on one side (a single pair always): the
    /// pair-sum term leaves their spread free.
    pub one_sided_components: usize,
    /// Bipartite components with winners on both sides: their spread is bounded.
    pub two_sided_components: usize,
    /// Of those, a single pair labelled both ways (two-sided by a contradiction).
    pub contradicted_pair_components: usize,
    /// Components with an odd cycle: the pair-sum term pins their rewards.
    pub odd_cycle_components: usize,
    /// Prompts with at least one component of the kind.
    pub prompts_with_one_sided_component: usize,
    pub prompts_with_two_sided_component: usize,
    pub prompts_with_odd_cycle: usize,
    /// Pairs (rows) in components of the kind.
    pub pairs_in_one_sided_components: usize,
    pub pairs_in_two_sided_components: usize,
    pub pairs_in_odd_cycle_components: usize,
    /// Length in characters (Unicode scalar values) of each prompt's text.
    pub prompt_chars: Lengths,
    /// Length in characters of each response's text.
    pub response_chars: Lengths,
}

/// Summary of a list of lengths; all 0 for an empty list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Lengths {
    pub min: usize,
    /// The middle value (mean of the two middle ones for an even count).
    pub median: f64,
    pub mean: f64,
    pub max: usize,
}

impl Lengths {
    pub fn of(texts: &[String]) -> Lengths {
        let mut n: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
        if n.is_empty() {
            return Lengths::default();
        }
        n.sort_unstable();
        let k = n.len();
        let median = if k % 2 == 1 { n[k / 2] as f64 } else { (n[k / 2 - 1] + n[k / 2]) as f64 / 2.0 };
        Lengths { min: n[0], median, mean: n.iter().sum::<usize>() as f64 / k as f64, max: n[k - 1] }
    }
}

impl DataReport {
    /// The report of a file read into `read` and `comparisons`, whose graphs are `graphs`.
    pub fn new(
        path: &str,
        read: &ReadReport,
        comparisons: &Comparisons,
        graphs: &ComparisonGraphs,
    ) -> DataReport {
        let mut skipped_by_reason = BTreeMap::new();
        for (_, reason) in &read.skipped {
            *skipped_by_reason.entry(reason_kind(reason)).or_insert(0) += 1;
        }
        let histogram = |count: &dyn Fn(&super::graph::PromptGraph) -> usize| {
            let mut h = BTreeMap::new();
            for g in &graphs.prompts {
                *h.entry(count(g)).or_insert(0) += 1;
            }
            h
        };
        let mut pairs_in = [0; 3];
        for k in &graphs.pair_kind {
            pairs_in[k.index()] += 1;
        }
        let components_of = |k: ComponentKind| graphs.components.iter().filter(|&&c| c == k).count();
        let prompts_with =
            |k: ComponentKind| graphs.prompts.iter().filter(|p| p.components[k.index()] > 0).count();
        use ComponentKind::{OddCycle, OneSided, TwoSided};
        let g = &graphs.prompts;
        DataReport {
            path: path.to_string(),
            rows: read.rows,
            skipped: read.skipped.len(),
            blank_lines: read.blank_lines,
            empty_prompts: read.empty_prompts,
            implicit_prompts: read.implicit_prompts,
            bom: read.bom,
            skipped_by_reason,
            skipped_lines: read.skipped.iter().take(LISTED_SKIPS).cloned().collect(),
            ties: read.skipped.iter().filter(|(_, r)| r == TIE).count(),
            pairs: comparisons.pairs.len(),
            prompts: comparisons.prompts.len(),
            responses: comparisons.responses.len(),
            empty_responses: comparisons.responses.iter().filter(|t| t.trim().is_empty()).count(),
            comparisons: g.iter().map(|p| p.edges).sum(),
            duplicates: graphs.duplicates,
            contradictions: graphs.contradictions,
            pairs_per_prompt: histogram(&|p| p.pairs),
            responses_per_prompt: histogram(&|p| p.responses),
            components: graphs.components.len(),
            one_sided_components: components_of(OneSided),
            two_sided_components: components_of(TwoSided),
            contradicted_pair_components: graphs.contradicted_pair_components,
            odd_cycle_components: components_of(OddCycle),
            prompts_with_one_sided_component: prompts_with(OneSided),
            prompts_with_two_sided_component: prompts_with(TwoSided),
            prompts_with_odd_cycle: prompts_with(OddCycle),
            pairs_in_one_sided_components: pairs_in[OneSided.index()],
            pairs_in_two_sided_components: pairs_in[TwoSided.index()],
            pairs_in_odd_cycle_components: pairs_in[OddCycle.index()],
            prompt_chars: Lengths::of(&comparisons.prompts),
            response_chars: Lengths::of(&comparisons.responses),
        }
    }
}

/// A skip reason without its particulars (`invalid JSON: expected … at column 7` → `invalid
/// JSON`), so that reasons can be counted.
fn reason_kind(reason: &str) -> String {
    reason.split([':', '(']).next().unwrap_or(reason).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_by_hand() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Lengths::of(&t(&["abc", "", "é"])),
            Lengths { min: 0, median: 1.0, mean: 4.0 / 3.0, max: 3 }
        );
        assert_eq!(Lengths::of(&t(&["ab", "abcd"])), Lengths { min: 2, median: 3.0, mean: 3.0, max: 4 });
        assert_eq!(Lengths::of(&[]), Lengths::default());
    }

    #[test]
    fn reasons_are_counted_without_particulars() {
        assert_eq!(reason_kind("invalid JSON: EOF while parsing at line 1 column 9"), "invalid JSON");
        assert_eq!(reason_kind("not UTF-8 (byte 58)"), "not UTF-8");
        assert_eq!(reason_kind(TIE), "`chosen` and `rejected` are identical");
    }
}
