//! Text to model input: a hashed bag of word n-grams.
//!
//! Tokenization: lower-case the text (Unicode), split it at every character that is not
//! alphanumeric, drop empty tokens. For n = 1..=`ngram`, every run of n consecutive tokens is
//! an n-gram, joined with a space. Prompt n-grams are hashed as `p:<gram>` and response
//! n-grams as `r:<gram>` (FNV-1a, 64 bit), so the model can tell what the prompt says from
//! what the response says; the hash modulo `buckets` is the n-gram's id. A response is the
//! bag of its prompt's and its own ids, the first `max_tokens` of them, padded with the id
//! `buckets` to a common width.

use std::hash::Hasher;

/// Lower-cased alphanumeric tokens.
pub fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Hashed n-gram ids of a text, in order, n = 1..=`ngram`.
pub fn ngram_ids(text: &str, namespace: &str, ngram: usize, buckets: usize) -> Vec<i64> {
    let toks = tokens(text);
    let mut ids = Vec::new();
    for n in 1..=ngram {
        for w in toks.windows(n) {
            let mut h = fnv::FnvHasher::default();
            h.write(namespace.as_bytes());
            h.write(w.join(" ").as_bytes());
            ids.push((h.finish() % buckets as u64) as i64);
        }
    }
    ids
}

/// Bags of `[prompt ids, response ids]` for responses, each cut to `max_tokens` and padded
/// with `buckets`: returns the width and the row-major `[R, width]` ids.
pub fn bags(items: &[(&str, &str)], ngram: usize, buckets: usize, max_tokens: usize) -> (usize, Vec<i64>) {
    let rows: Vec<Vec<i64>> = items
        .iter()
        .map(|(prompt, response)| {
            let mut ids = ngram_ids(response, "r:", ngram, buckets);
            ids.extend(ngram_ids(prompt, "p:", ngram, buckets));
            ids.truncate(max_tokens);
            ids
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut out = Vec::with_capacity(rows.len() * width);
    for r in rows {
        let pad = width - r.len();
        out.extend(r);
        out.extend(std::iter::repeat_n(buckets as i64, pad));
    }
    (width, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenization_is_lowercase_alphanumeric() {
        assert_eq!(tokens("Héllo, World!  It's 3pm."), ["héllo", "world", "it", "s", "3pm"]);
    }

    #[test]
    fn ngrams_and_namespaces() {
        let a = ngram_ids("a b c", "r:", 2, 1 << 20);
        assert_eq!(a.len(), 3 + 2);
        // FNV-1a of "r:a": a fixed value, so ids never change between runs or platforms.
        let mut h = fnv::FnvHasher::default();
        h.write(b"r:a");
        assert_eq!(a[0], (h.finish() % (1 << 20)) as i64);
        assert_ne!(ngram_ids("a", "p:", 1, 1 << 20), ngram_ids("a", "r:", 1, 1 << 20));
    }

    #[test]
    fn bags_are_padded_and_cut() {
        let (w, ids) = bags(&[("q", "a b"), ("q", "a b c d e")], 1, 100, 4);
        assert_eq!(w, 4);
        assert_eq!(ids.len(), 8);
        assert_eq!(ids[3], 100, "the short row is padded with the bucket count");
        assert!(ids[4..].iter().all(|&i| i < 100), "the long row is cut to max_tokens");
    }
}
