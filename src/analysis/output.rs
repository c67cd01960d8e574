//! Writing DataFrames for people and programs: an aligned text table, CSV, JSON or Parquet.

use std::io::Write;
use std::path::Path;

use comfy_table::{ContentArrangement, Table, TableComponent, presets};
use polars::prelude::*;

use crate::error::{Error, Result};

/// Output formats of `rmlab query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text, numbers to 4 significant digits, wrapped to `width` columns.
    Table {
        width: u16,
    },
    Csv,
    /// An array of row objects.
    Json,
    Parquet,
}

/// Writes `df` in `format` to `out` (standard output when `None`). Parquet needs a file.
/// A file is written whole or not at all (a temporary name, then a rename); standard output
/// closed by its reader (`rmlab query … | head`) ends the output quietly.
pub fn write(df: &mut DataFrame, format: Format, out: Option<&Path>) -> Result<()> {
    if out.is_none() && format == Format::Parquet {
        return Err(Error::flag("--format", "parquet", "needs --out FILE"));
    }
    let mut bytes = Vec::new();
    let pe = |e: PolarsError| Error::report(format!("writing {format:?}: {e}"));
    match format {
        Format::Table { width } => bytes.extend_from_slice(format!("{}\n", table(df, width)).as_bytes()),
        Format::Csv => CsvWriter::new(&mut bytes).finish(df).map_err(pe)?,
        Format::Json => {
            JsonWriter::new(&mut bytes).with_json_format(JsonFormat::Json).finish(df).map_err(pe)?
        }
        Format::Parquet => {
            ParquetWriter::new(&mut bytes).finish(df).map_err(pe)?;
        }
    }
    emit(&bytes, out)
}

/// Refuses an output path that is a directory or lies in no existing directory, and an output
/// file that is one of the command's `inputs` or, for an input store, one of its SQLite side files (`-wal`, `-shm`, `-journal`): writing it would destroy what is read.
/// Paths are compared after resolving links and `..`, so `./r.sqlite` and `results/../r.sqlite`
/// are caught; an output that does not exist yet is compared through its directory.
pub fn refuse_overwriting(out: &Path, inputs: &[&Path]) -> Result<()> {
    // A path that cannot be written is bad input, said before any work is done.
    if out.is_dir() {
        return Err(Error::flag("--out", out.display(), "is a directory; name a file"));
    }
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::flag(
            "--out",
            out.display(),
            format!("{} is not an existing directory", dir.display()),
        ));
    }
    let resolve = |p: &Path| -> Option<std::path::PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(parent.canonicalize().ok()?.join(p.file_name()?))
    };
    let Some(target) = resolve(out) else { return Ok(()) };
    for input in inputs {
        let Some(input) = resolve(input) else { continue };
        let mut taken = vec![input.clone()];
        for side in ["-wal", "-shm", "-journal"] {
            let mut name = input.clone().into_os_string();
            name.push(side);
            taken.push(name.into());
        }
        if taken.contains(&target) {
            let what = if target == input {
                input.display().to_string()
            } else {
                format!("a side file of {}", input.display())
            };
            return Err(Error::flag(
                "--out",
                out.display(),
                format!("is {what}, which this command reads; write somewhere else"),
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to the file `out`, whole or not at all (a temporary name, then a rename), or
/// to standard output when `None`, where a reader that closed it (`| head`) ends the output
/// quietly.
pub fn emit(bytes: &[u8], out: Option<&Path>) -> Result<()> {
    match out {
        Some(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.part",
                path.file_name().map_or("out".into(), |n| n.to_string_lossy().into_owned())
            ));
            std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(path, e)
            })
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| Error::io(Path::new("standard output"), e)),
            }
        }
    }
}

/// The frame as an aligned text table of at most `width` columns, with a row count below.
pub fn table(df: &DataFrame, width: u16) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .remove_style(TableComponent::HorizontalLines)
        .remove_style(TableComponent::MiddleIntersections)
        .remove_style(TableComponent::LeftBorderIntersections)
        .remove_style(TableComponent::RightBorderIntersections)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    t.set_header(df.get_column_names().iter().map(|n| n.to_string()));
    for i in 0..df.height() {
        let row: Vec<String> =
            df.columns().iter().map(|c| cell(c.get(i).unwrap_or(AnyValue::Null))).collect();
        t.add_row(row);
    }
    format!("{t}\n{} row{}", df.height(), if df.height() == 1 { "" } else { "s" })
}

/// One value as text: floats to 4 significant digits, nulls blank.
fn cell(v: AnyValue) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::Float64(x) => number(x),
        AnyValue::Float32(x) => number(x as f64),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// The shortest exact form when it is short (0.001, 12.5), else 4 significant digits, in
/// scientific notation outside [1e-3, 1e5).
pub fn number(x: f64) -> String {
    let shortest = format!("{x}");
    if x == 0.0 || !x.is_finite() || shortest.len() <= 6 {
        return shortest;
    }
    let a = x.abs();
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        for (x, s) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.001, "0.001"),
            (0.12345, "0.1235"),
            (12.3456, "12.35"),
            (1234.56, "1235"),
            (-0.5, "-0.5"),
            (1.2345e-5, "1.234e-5"),
            (123456.7, "1.235e5"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(number(x), s, "{x}");
        }
    }

    #[test]
    fn table_fits_the_width() {
        let df = df!("a_rather_long_parameter_name" => [1.0, 2.5], "another.long.key" => ["x", "y"],
            "mean" => [0.123456, 10.0], "ci95_lo" => [0.1, 9.0], "ci95_hi" => [0.2, 11.0])
        .unwrap();
        let text = table(&df, 60);
        for line in text.lines() {
            assert!(line.chars().count() <= 60, "{line}");
        }
        assert!(text.ends_with("2 rows"));
        assert!(text.contains("0.1235"));
    }

    #[test]
    fn an_output_that_is_an_input_or_its_side_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("r.sqlite");
        std::fs::write(&store, b"x").unwrap();
        let other = dir.path().join("prefs.jsonl");
        std::fs::write(&other, b"x").unwrap();
        let inputs = [store.as_path(), other.as_path()];
        for bad in [
            store.clone(),
            dir.path().join("sub/../r.sqlite"),
            dir.path().join("r.sqlite-wal"),
            dir.path().join("r.sqlite-shm"),
            other.clone(),
        ] {
            if bad.parent().is_some_and(|p| p.ends_with("..")) {
                std::fs::create_dir_all(dir.path().join("sub")).unwrap();
            }
            let err = refuse_overwriting(&bad, &inputs).expect_err(&bad.display().to_string());
            assert_eq!(err.exit_code(), 2);
        }
        refuse_overwriting(&dir.path().join("out.csv"), &inputs).unwrap();
        refuse_overwriting(&dir.path().join("r.sqlite.csv"), &inputs).unwrap();
    }
}
