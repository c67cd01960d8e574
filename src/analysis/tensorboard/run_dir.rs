//! What a run is called in TensorBoard: its directory under the log directory, named by its
//! cell, and its hyperparameters, both made from the params the store keeps for it, so that a
//! run written while it trains and the same run exported later look alike.

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use sha2::{Digest, Sha256};

use super::proto::{Kind, ProtoValue, SessionStartInfo};

/// Longest directory name written (bytes); file systems allow 255.
const MAX_NAME: usize = 200;

/// A param's value as text in a run's name: integers and reals as Rust prints them (`0.1`,
/// `1`, `inf`), text as written, null as `null`.
fn value_text(v: &Sql) -> String {
    match v {
        Sql::Null => "null".into(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(f) => f.to_string(),
        Sql::Text(t) => t.clone(),
        Sql::Blob(b) => format!("{}-bytes", b.len()),
    }
}

/// `text` as one directory name: characters other than ASCII letters, digits and `.,=+_-`
/// become `_`, a leading `.` too (no hidden, `.` or `..` names); a name longer than
/// [`MAX_NAME`] is cut and ends with 16 hex digits of the whole name's SHA-256, so that two
/// long names still differ.
pub fn safe_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".,=+_-".contains(c) { c } else { '_' })
        .collect();
    if name.starts_with('.') || name.is_empty() {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME {
        let digest: String =
            Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        name.truncate(MAX_NAME - 17);
        name.push('-');
        name.push_str(&digest);
    }
    name
}

/// The directory of a run, relative to the log directory: `<experiment>/<key=value,…>` over
/// its swept params in key order (`loss.lambda=0.1,seed=3`), made file-system safe.
pub fn run_path(experiment: &str, swept: &BTreeMap<String, Sql>) -> String {
    format!("{}/{}", safe_name(experiment), safe_name(&cell_text(swept, true)))
}

fn cell_text(swept: &BTreeMap<String, Sql>, with_seed: bool) -> String {
    let parts: Vec<String> = swept
        .iter()
        .filter(|(k, _)| with_seed || k.as_str() != "seed")
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect();
    if parts.is_empty() { "base".into() } else { parts.join(",") }
}

/// The hparams plugin's start of a session for a run: every non-null param as a hyperparameter
/// (numbers as numbers, text as text; booleans are stored as 0/1 and stay numbers), grouped
/// with the runs of the other seeds of its grid point (`<experiment>/<swept values but the
/// seed>`), so that TensorBoard aggregates over seeds.
pub fn session_start_info(
    experiment: &str,
    params: &BTreeMap<String, Sql>,
    swept: &BTreeMap<String, Sql>,
    start_time_secs: f64,
) -> SessionStartInfo {
    let hparams = params
        .iter()
        .filter_map(|(k, v)| {
            let kind = match v {
                Sql::Null | Sql::Blob(_) => return None,
                Sql::Integer(i) => Kind::NumberValue(*i as f64),
                Sql::Real(f) => Kind::NumberValue(*f),
                Sql::Text(t) => Kind::StringValue(t.clone()),
            };
            Some((k.clone(), ProtoValue { kind: Some(kind) }))
        })
        .collect();
    SessionStartInfo {
        hparams,
        group_name: format!("{experiment}/{}", cell_text(swept, false)),
        start_time_secs,
    }
}

/// The scalar tag of a metric of a split: `val/accuracy`, as TRL's `eval/…` and `train/…`.
pub fn tag(split: &str, metric: &str) -> String {
    format!("{split}/{metric}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_by_its_swept_values_in_key_order() {
        let swept: BTreeMap<String, Sql> = [
            ("seed".to_string(), Sql::Integer(3)),
            ("loss.lambda".to_string(), Sql::Real(0.1)),
            ("data.path".to_string(), Sql::Text("a b/c.jsonl".into())),
        ]
        .into();
        assert_eq!(run_path("lambda", &swept), "lambda/data.path=a_b_c.jsonl,loss.lambda=0.1,seed=3");
        let info = session_start_info("lambda", &swept, &swept, 5.0);
        assert_eq!(info.group_name, "lambda/data.path=a b/c.jsonl,loss.lambda=0.1");
        assert_eq!(info.hparams["seed"], ProtoValue { kind: Some(Kind::NumberValue(3.0)) });
        assert_eq!(info.start_time_secs, 5.0);
    }

    #[test]
    fn names_are_safe_and_long_names_stay_distinct() {
        assert_eq!(safe_name(".."), "_..");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("é/\n"), "___");
        let a = safe_name(&"x".repeat(300));
        let b = safe_name(&format!("{}y", "x".repeat(299)));
        assert_eq!(a.len(), MAX_NAME);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || "-".contains(c)));
    }

    #[test]
    fn nulls_are_left_out_of_the_hyperparameters() {
        let params: BTreeMap<String, Sql> =
            [("a".to_string(), Sql::Null), ("b".to_string(), Sql::Text("adam".into()))].into();
        let info = session_start_info("e", &params, &BTreeMap::new(), 0.0);
        assert_eq!(info.hparams.len(), 1);
        assert_eq!(info.group_name, "e/base");
    }
}
