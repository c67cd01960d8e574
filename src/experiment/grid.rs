//! The `[sweep]` table: grid axes (a key path → values), zip groups that vary together, and
//! seeds, checked and located.

use std::collections::HashSet;

use serde::Deserialize;

use super::config::RunConfig;
use super::location::{Source, Step};
use crate::error::Result;

/// Most seeds a spec may ask for.
const MAX_SEEDS: usize = 100_000;

/// Base sections a sweep axis may address.
pub(super) const SECTIONS: [&str; 5] = ["data", "model", "train", "loss", "eval"];

/// Where a swept value came from in the file.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    /// Path of the value in the document, e.g. `sweep / "loss.lambda" / 2`.
    pub(super) path: Vec<Step>,
}

/// One grid dimension: a single key, or a zip group of keys that move together.
#[derive(Clone, Debug)]
pub(super) struct Axis {
    /// Config key paths set by this axis.
    pub(super) keys: Vec<String>,
    /// `points[i][j]`: value of `keys[j]` at the axis' i-th point, with its origin.
    pub(super) points: Vec<Vec<(toml::Value, Origin)>>,
}

/// One entry of the `[sweep]` table as written.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum SweepEntry {
    /// `seeds = N` or `seeds = [..]`.
    Seeds(toml::Value),
    /// `[[sweep.zip]]`: groups of axes that vary together.
    Zip(toml::Value),
    /// `"section.key" = [..]`: a grid axis. Its values are config values of any key, so they
    /// stay TOML values until a cell's table is deserialized.
    Axis(String, toml::Value),
}

/// The `[sweep]` table: its entries in file order (axes vary in that order), checked and
/// located by [`parse_sweep`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct SweepSection(pub(super) Vec<SweepEntry>);

impl<'de> Deserialize<'de> for SweepSection {
    /// Read as a table first, so a `sweep` that is not one is refused as any table would be.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let entries = toml::Table::deserialize(d)?
            .into_iter()
            .map(|(key, value)| match key.as_str() {
                "seeds" => SweepEntry::Seeds(value),
                "zip" => SweepEntry::Zip(value),
                _ => SweepEntry::Axis(key, value),
            })
            .collect();
        Ok(SweepSection(entries))
    }
}

pub(super) fn display_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets `a.b.c` in a table, creating intermediate tables.
pub(super) fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut cur = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let next = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !next.is_table() {
            *next = toml::Value::Table(toml::Table::new());
        }
        cur = next.as_table_mut().expect("just made a table");
    }
}

/// Every dotted config key a sweep may set (from the serialized defaults).
pub(super) fn sweepable_keys() -> HashSet<String> {
    let defaults = RunConfig::default();
    let json = serde_json::to_value(defaults).expect("defaults serialize");
    let mut keys = HashSet::new();
    for section in SECTIONS {
        if let Some(obj) = json.get(section).and_then(|v| v.as_object()) {
            keys.extend(obj.keys().map(|k| format!("{section}.{k}")));
        }
    }
    keys
}

pub(super) fn parse_sweep(src: &Source, sweep: &SweepSection) -> Result<(Vec<Axis>, Vec<u64>)> {
    let valid = sweepable_keys();
    let mut axes = Vec::new();
    let mut seeds = vec![0];
    let mut used: HashSet<String> = HashSet::new();
    let at = |steps: &[Step]| -> Vec<Step> {
        let mut p = vec![Step::Key("sweep".into())];
        p.extend_from_slice(steps);
        p
    };
    let check_key = |key: &str, path: &[Step], used: &mut HashSet<String>| -> Result<()> {
        if key == "seed" {
            return Err(src.error_at_path(
                path,
                &format!("sweep.{key}"),
                "set seeds with `seeds = N` or `seeds = [..]`",
            ));
        }
        if !valid.contains(key) {
            let mut known: Vec<&String> =
                valid.iter().filter(|k| k.split('.').next() == key.split('.').next()).collect();
            known.sort();
            let hint = if known.is_empty() {
                format!("a key path starts with one of {}", SECTIONS.join(", "))
            } else {
                format!(
                    "known keys there: {}",
                    known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(src.error_at_path(
                path,
                &format!("sweep.\"{key}\""),
                &format!("unknown config key `{key}`; {hint}"),
            ));
        }
        if !used.insert(key.to_string()) {
            return Err(src.error_at_path(
                path,
                &format!("sweep.\"{key}\""),
                "this key is swept twice (as an axis and in a zip group, or in two zip groups)",
            ));
        }
        Ok(())
    };
    // `unique`: a plain axis may not repeat a value; a zip column may (its tuples are checked).
    let values_of =
        |key: &str, v: &toml::Value, path: Vec<Step>, unique: bool| -> Result<Vec<(toml::Value, Origin)>> {
            let label = format!("sweep.\"{key}\"");
            let toml::Value::Array(items) = v else {
                return Err(src.error_at_path(
                    &path,
                    &label,
                    &format!("an axis is a list of values, found {}", v.type_str()),
                ));
            };
            if items.is_empty() {
                return Err(src.error_at_path(
                    &path,
                    &label,
                    "an axis needs at least one value, found an empty list",
                ));
            }
            let mut out: Vec<(toml::Value, Origin)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(Step::Index(i));
                if let Some(j) = out.iter().position(|(o, _)| unique && o == item) {
                    return Err(src.error_at_path(
                        &p,
                        &label,
                        &format!("value {} repeats value {j} of this axis", display_value(item)),
                    ));
                }
                out.push((item.clone(), Origin { path: p }));
            }
            Ok(out)
        };
    for entry in &sweep.0 {
        match entry {
            SweepEntry::Seeds(value) => seeds = parse_seeds(src, value, &at(&[Step::Key("seeds".into())]))?,
            SweepEntry::Zip(value) => {
                let path = at(&[Step::Key("zip".into())]);
                let toml::Value::Array(groups) = value else {
                    return Err(src.error_at_path(
                        &path,
                        "sweep.zip",
                        "expected [[sweep.zip]] tables of key paths → lists",
                    ));
                };
                for (g, group) in groups.iter().enumerate() {
                    let gpath = at(&[Step::Key("zip".into()), Step::Index(g)]);
                    let toml::Value::Table(group) = group else {
                        return Err(src.error_at_path(
                            &gpath,
                            "sweep.zip",
                            "expected a table of key paths → lists",
                        ));
                    };
                    if group.len() < 2 {
                        return Err(src.error_at_path(
                            &gpath,
                            "sweep.zip",
                            "a zip group needs at least two keys (use a plain axis for one)",
                        ));
                    }
                    let mut keys = Vec::new();
                    let mut columns = Vec::new();
                    for (k, v) in group {
                        let kpath = at(&[Step::Key("zip".into()), Step::Index(g), Step::Key(k.clone())]);
                        check_key(k, &kpath, &mut used)?;
                        let col = values_of(k, v, kpath.clone(), false)?;
                        if let Some(first) = columns.first().map(|c: &Vec<_>| c.len())
                            && col.len() != first
                        {
                            return Err(src.error_at_path(
                                &kpath,
                                &format!("sweep.zip.\"{k}\""),
                                &format!(
                                    "zip lists must have equal lengths: `{}` has {first}, `{k}` has {}",
                                    keys[0],
                                    col.len()
                                ),
                            ));
                        }
                        keys.push(k.clone());
                        columns.push(col);
                    }
                    let n = columns[0].len();
                    let points: Vec<Vec<(toml::Value, Origin)>> =
                        (0..n).map(|i| columns.iter().map(|c| c[i].clone()).collect()).collect();
                    for i in 1..n {
                        let same = |j: usize| points[j].iter().zip(&points[i]).all(|(x, y)| x.0 == y.0);
                        if let Some(j) = (0..i).find(|&j| same(j)) {
                            return Err(src.error_at_path(
                                &points[i][0].1.path,
                                "sweep.zip",
                                &format!("point {i} of this zip group repeats point {j}"),
                            ));
                        }
                    }
                    axes.push(Axis { keys, points });
                }
            }
            SweepEntry::Axis(key, value) => {
                let path = at(&[Step::Key(key.clone())]);
                check_key(key, &path, &mut used)?;
                let points = values_of(key, value, path, true)?.into_iter().map(|v| vec![v]).collect();
                axes.push(Axis { keys: vec![key.clone()], points });
            }
        }
    }
    Ok((axes, seeds))
}

pub(super) fn parse_seeds(src: &Source, v: &toml::Value, path: &[Step]) -> Result<Vec<u64>> {
    let err = |p: &[Step], m: &str| src.error_at_path(p, "sweep.seeds", m);
    match v {
        toml::Value::Integer(n) if *n > MAX_SEEDS as i64 => {
            Err(err(path, &format!("at most {MAX_SEEDS} seeds, found {n}")))
        }
        toml::Value::Integer(n) if *n > 0 => Ok((0..*n as u64).collect()),
        toml::Value::Integer(n) => Err(err(path, &format!("a seed count must be > 0, found {n}"))),
        toml::Value::Array(items) if items.is_empty() => Err(err(path, "the seed list is empty")),
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let mut p = path.to_vec();
                p.push(Step::Index(i));
                match item {
                    toml::Value::Integer(s) if *s >= 0 => {
                        if out.contains(&(*s as u64)) {
                            return Err(err(&p, &format!("seed {s} appears twice")));
                        }
                        out.push(*s as u64);
                    }
                    other => {
                        return Err(err(&p, &format!("a seed is an integer ≥ 0, found {other}")));
                    }
                }
            }
            Ok(out)
        }
        other => Err(err(path, &format!("expected a count or a list of seeds, found {}", other.type_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Parses the `[sweep]` table of `text` (a whole spec) as the spec reader does.
    fn sweep_of(text: &str) -> Result<(Vec<Axis>, Vec<u64>)> {
        let src = Source { file: "g.toml".into(), text };
        let doc: toml::Table = toml::from_str(text).expect("valid TOML");
        parse_sweep(&src, &SweepSection::deserialize(doc["sweep"].clone()).expect("a [sweep] table"))
    }

    fn values(axis: &Axis) -> Vec<Vec<String>> {
        axis.points.iter().map(|p| p.iter().map(|(v, _)| display_value(v)).collect()).collect()
    }

    fn spec_error(text: &str) -> (usize, usize, String) {
        match sweep_of(text) {
            Err(Error::Spec { line, column, message, .. }) => (line, column, message),
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    #[test]
    fn axes_keep_file_order_values_and_origins() {
        let text = "name = \"g\"\n[sweep]\n\"train.lr\" = [0.1, 0.01, 0.001]\n\"loss.lambda\" = [0.0, 1.0]\nseeds = 2\n";
        let (axes, seeds) = sweep_of(text).unwrap();
        assert_eq!(seeds, [0, 1]);
        assert_eq!(axes.len(), 2);
        assert_eq!(axes[0].keys, ["train.lr"]);
        assert_eq!(values(&axes[0]), [["0.1"], ["0.01"], ["0.001"]]);
        assert_eq!(axes[1].keys, ["loss.lambda"]);
        assert_eq!(values(&axes[1]), [["0.0"], ["1.0"]]);
        let origin = &axes[0].points[2][0].1.path;
        assert_eq!(origin, &[Step::Key("sweep".into()), Step::Key("train.lr".into()), Step::Index(2)]);
    }

    #[test]
    fn a_zip_group_is_one_axis_of_tuples() {
        let text = "name = \"g\"\n[sweep]\n\"loss.lambda\" = [0.0, 1.0]\n[[sweep.zip]]\n\"data.flip\" = [0.0, 0.1, 0.2]\n\"data.beta\" = [1.0, 2.0, 1.0]\n";
        let (axes, seeds) = sweep_of(text).unwrap();
        assert_eq!(seeds, [0], "one seed, 0, by default");
        assert_eq!(axes.len(), 2);
        assert_eq!(axes[1].keys, ["data.flip", "data.beta"]);
        // A zip column may repeat a value (beta 1.0 twice); its tuples differ.
        assert_eq!(values(&axes[1]), [["0.0", "1.0"], ["0.1", "2.0"], ["0.2", "1.0"]]);
        let origin = &axes[1].points[1][1].1.path;
        assert_eq!(
            origin,
            &[
                Step::Key("sweep".into()),
                Step::Key("zip".into()),
                Step::Index(0),
                Step::Key("data.beta".into()),
                Step::Index(1)
            ]
        );
    }

    #[test]
    fn seeds_are_a_count_or_a_list() {
        let seeds = |s: &str| sweep_of(&format!("name = \"g\"\n[sweep]\nseeds = {s}\n")).map(|r| r.1);
        assert_eq!(seeds("3").unwrap(), [0, 1, 2]);
        assert_eq!(seeds("[7, 0, 3]").unwrap(), [7, 0, 3], "a list keeps its order");
        assert_eq!(seeds(&MAX_SEEDS.to_string()).unwrap().len(), MAX_SEEDS);
        for (bad, needle) in [
            ("0", "must be > 0"),
            ("-2", "must be > 0"),
            ("100001", "at most 100000 seeds"),
            ("[]", "empty"),
            ("[1, 2, 1]", "seed 1 appears twice"),
            ("[1, -1]", "integer ≥ 0"),
            ("\"3\"", "a count or a list"),
        ] {
            let (line, _, message) = spec_error(&format!("name = \"g\"\n[sweep]\nseeds = {bad}\n"));
            assert_eq!(line, 3, "{bad}");
            assert!(message.contains(needle), "{bad}: {message}");
        }
    }

    #[test]
    fn bad_axes_are_located_errors() {
        let head = "name = \"g\"\n[sweep]\n";
        for (body, line, column, needle) in [
            ("\"loss.lambda\" = [0.1, 0.2, 0.1]", 3, 28, "value 0.1 repeats value 0"),
            ("seed = [1, 2]", 3, 8, "seeds = N"),
            ("\"loss.lamda\" = [1]", 3, 16, "unknown config key `loss.lamda`"),
            (
                "\"data.flip\" = [0.0]\n[[sweep.zip]]\n\"data.flip\" = [0.0, 0.1]\n\"data.beta\" = [1.0, 2.0]",
                5,
                15,
                "swept twice",
            ),
            ("[[sweep.zip]]\n\"data.flip\" = [0.0, 0.1]\n\"data.beta\" = [1.0]", 5, 15, "equal lengths"),
            ("[[sweep.zip]]\n\"data.flip\" = [0.0]", 3, 1, "at least two keys"),
            (
                "[[sweep.zip]]\n\"data.flip\" = [0.0, 0.0]\n\"data.beta\" = [1.0, 1.0]",
                4,
                21,
                "point 1 of this zip group repeats point 0",
            ),
        ] {
            let (l, c, message) = spec_error(&format!("{head}{body}\n"));
            assert!(message.contains(needle), "{body}: {message}");
            assert_eq!((l, c), (line, column), "{body}: {message}");
        }
    }

    #[test]
    fn set_path_makes_and_replaces_tables() {
        let mut t: toml::Table = toml::from_str("a = 1\n[b]\nc = 2\n").unwrap();
        set_path(&mut t, "b.d.e", toml::Value::Integer(3));
        set_path(&mut t, "a.x", toml::Value::Integer(4));
        set_path(&mut t, "f", toml::Value::String("g".into()));
        let want: toml::Table = toml::from_str("f = \"g\"\n[a]\nx = 4\n[b]\nc = 2\n[b.d]\ne = 3\n").unwrap();
        assert_eq!(t, want);
    }

    #[test]
    fn sweepable_keys_are_the_sections_fields() {
        let keys = sweepable_keys();
        for k in ["loss.lambda", "train.lr", "data.flip", "model.hidden", "eval.every"] {
            assert!(keys.contains(k), "{k}");
        }
        assert!(!keys.contains("seed") && !keys.contains("loss"));
        assert!(keys.iter().all(|k| SECTIONS.contains(&k.split('.').next().unwrap())));
    }

    #[test]
    fn values_display_without_quotes() {
        assert_eq!(display_value(&toml::Value::String("mlp".into())), "mlp");
        assert_eq!(display_value(&toml::Value::Float(0.5)), "0.5");
        assert_eq!(display_value(&toml::Value::Integer(3)), "3");
        assert_eq!(display_value(&toml::Value::Array(vec![toml::Value::Integer(32)])), "[32]");
    }
}
