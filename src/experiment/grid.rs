//! The `[sweep]` table: grid axes (a key path → values), zip groups that vary together, and
//! seeds, checked and located.

use std::collections::HashSet;

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
    let defaults = RunConfig {
        seed: 0,
        data: Default::default(),
        model: Default::default(),
        train: Default::default(),
        loss: Default::default(),
        eval: Default::default(),
    };
    let json = serde_json::to_value(defaults).expect("defaults serialize");
    let mut keys = HashSet::new();
    for section in SECTIONS {
        if let Some(obj) = json.get(section).and_then(|v| v.as_object()) {
            keys.extend(obj.keys().map(|k| format!("{section}.{k}")));
        }
    }
    keys
}

pub(super) fn parse_sweep(src: &Source, sweep: &toml::Table) -> Result<(Vec<Axis>, Vec<u64>)> {
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
    for (key, value) in sweep {
        let path = at(&[Step::Key(key.clone())]);
        match key.as_str() {
            "seeds" => seeds = parse_seeds(src, value, &path)?,
            "zip" => {
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
            _ => {
                check_key(key, &path, &mut used)?;
                let points = values_of(key, value, path, true)?.into_iter().map(|v| vec![v]).collect();
                axes.push(Axis { keys: vec![key.clone()], points });
            }
        }
    }
    Ok((axes, seeds))
}

fn parse_seeds(src: &Source, v: &toml::Value, path: &[Step]) -> Result<Vec<u64>> {
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
