//! `rmlab data` as a table: the [`DataReport`]s of preference files side by side, one column a
//! file, then histograms of pairs and responses per prompt and the reasons rows were skipped.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::DataReport;

/// Histogram rows shown one by one; larger counts are binned (the JSON keeps every count).
const EXACT_UP_TO: usize = 10;
const BINS: [(usize, usize); 3] = [(11, 20), (21, 50), (51, usize::MAX)];

/// The reports as aligned text.
pub fn table(reports: &[DataReport]) -> String {
    let names: Vec<String> = reports
        .iter()
        .map(|r| {
            std::path::Path::new(&r.path).file_name().map_or(r.path.clone(), |n| n.to_string_lossy().into())
        })
        .collect();
    let share = |k: usize, n: usize| {
        if n == 0 { format!("{k}") } else { format!("{k} ({:.1} %)", 100.0 * k as f64 / n as f64) }
    };
    let lengths = |l: &crate::data::Lengths| format!("{} / {:.0} / {}", l.median, l.mean, l.max);
    type Row<'a> = (&'a str, Box<dyn Fn(&DataReport) -> String + 'a>);
    let rows: Vec<Row> = vec![
        ("rows read", Box::new(|r| r.rows.to_string())),
        ("rows skipped as bad", Box::new(|r| r.skipped.to_string())),
        ("  of which ties (chosen = rejected)", Box::new(|r| r.ties.to_string())),
        ("pairs", Box::new(|r| r.pairs.to_string())),
        ("prompts", Box::new(|r| r.prompts.to_string())),
        ("responses (one per text within a prompt)", Box::new(|r| r.responses.to_string())),
        ("empty responses", Box::new(|r| r.empty_responses.to_string())),
        ("distinct comparisons", Box::new(|r| r.comparisons.to_string())),
        ("duplicate pairs (same direction)", Box::new(|r| r.duplicates.to_string())),
        ("contradictions (a ≻ b and b ≻ a)", Box::new(|r| r.contradictions.to_string())),
        ("components", Box::new(|r| r.components.to_string())),
        ("  bipartite, winners on one side", Box::new(|r| r.one_sided_components.to_string())),
        ("  bipartite, winners on both sides", Box::new(|r| r.two_sided_components.to_string())),
        (
            "    of which one pair labelled both ways",
            Box::new(|r| r.contradicted_pair_components.to_string()),
        ),
        ("  with an odd cycle", Box::new(|r| r.odd_cycle_components.to_string())),
        (
            "prompts with a one-sided component",
            Box::new(move |r| share(r.prompts_with_one_sided_component, r.prompts)),
        ),
        (
            "prompts with a two-sided component",
            Box::new(move |r| share(r.prompts_with_two_sided_component, r.prompts)),
        ),
        ("prompts with an odd cycle", Box::new(move |r| share(r.prompts_with_odd_cycle, r.prompts))),
        ("pairs in one-sided components", Box::new(move |r| share(r.pairs_in_one_sided_components, r.pairs))),
        ("pairs in two-sided components", Box::new(move |r| share(r.pairs_in_two_sided_components, r.pairs))),
        ("pairs in odd-cycle components", Box::new(move |r| share(r.pairs_in_odd_cycle_components, r.pairs))),
        ("prompt chars (median / mean / max)", Box::new(move |r| lengths(&r.prompt_chars))),
        ("response chars (median / mean / max)", Box::new(move |r| lengths(&r.response_chars))),
    ];
    let mut out = String::new();
    let cells: Vec<(String, Vec<String>)> =
        rows.iter().map(|(label, f)| (label.to_string(), reports.iter().map(f).collect())).collect();
    out.push_str(&aligned("", &names, &cells));
    for (title, hist) in [
        (
            "pairs per prompt",
            (|r: &DataReport| &r.pairs_per_prompt) as fn(&DataReport) -> &BTreeMap<usize, usize>,
        ),
        ("responses per prompt", |r: &DataReport| &r.responses_per_prompt),
    ] {
        let keys: BTreeSet<usize> = reports.iter().flat_map(|r| hist(r).keys().copied()).collect();
        let mut bins: Vec<(String, usize, usize)> =
            keys.iter().filter(|&&k| k <= EXACT_UP_TO).map(|&k| (k.to_string(), k, k)).collect();
        for (lo, hi) in BINS {
            if keys.iter().any(|&k| (lo..=hi).contains(&k)) {
                let label = if hi == usize::MAX { format!("{lo}+") } else { format!("{lo}–{hi}") };
                bins.push((label, lo, hi));
            }
        }
        let cells: Vec<(String, Vec<String>)> = bins
            .iter()
            .map(|(label, lo, hi)| {
                let counts = reports
                    .iter()
                    .map(|r| hist(r).range(lo..=hi).map(|(_, n)| n).sum::<usize>().to_string())
                    .collect();
                (label.clone(), counts)
            })
            .collect();
        out.push('\n');
        out.push_str(&aligned(&format!("{title}: prompts with"), &names, &cells));
    }
    for (name, r) in names.iter().zip(reports) {
        if r.skipped == 0 {
            continue;
        }
        out.push_str(&format!("\n{name}: skipped rows by reason\n"));
        for (reason, n) in &r.skipped_by_reason {
            out.push_str(&format!("  {n:>6}  {reason}\n"));
        }
        for (line, reason) in &r.skipped_lines {
            out.push_str(&format!("  line {line}: {reason}\n"));
        }
    }
    out
}

/// A header line and rows of `(label, one value per column)`, right-aligned under the names.
fn aligned(corner: &str, names: &[String], rows: &[(String, Vec<String>)]) -> String {
    let width = |s: &str| s.chars().count();
    let label_w = rows.iter().map(|(l, _)| width(l)).chain([width(corner)]).max().unwrap_or(0);
    let col_w: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| rows.iter().map(|(_, v)| width(&v[i])).chain([width(n)]).max().unwrap_or(0))
        .collect();
    let pad = |s: &str, w: usize| format!("{}{s}", " ".repeat(w.saturating_sub(width(s))));
    let mut out = format!("{corner}{}", " ".repeat(label_w - width(corner)));
    for (n, w) in names.iter().zip(&col_w) {
        out.push_str(&format!("  {}", pad(n, *w)));
    }
    out.push('\n');
    for (label, values) in rows {
        out.push_str(&format!("{label}{}", " ".repeat(label_w - width(label))));
        for (v, w) in values.iter().zip(&col_w) {
            out.push_str(&format!("  {}", pad(v, *w)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_under_their_names() {
        let t = aligned(
            "k",
            &["a.jsonl".into(), "b".into()],
            &[
                ("one".into(), vec!["1".into(), "22".into()]),
                ("three".into(), vec!["333".into(), "4".into()]),
            ],
        );
        assert_eq!(t, "k      a.jsonl   b\none          1  22\nthree      333   4\n");
    }
}
