//! Reading preference files in TRL's format: JSONL, JSONL.gz and Parquet.
//!
//! A row has `chosen` and `rejected`, and optionally `prompt`, `margin`, and precomputed
//! `embedding_chosen` / `embedding_rejected` (lists of numbers). Each text value is a string
//! or a conversation, a list of `{"role", "content"}` messages. Without `prompt` (TRL's
//! "implicit prompt"), the prompt is what `chosen` and `rejected` share at their start: the
//! longest common prefix of two strings, or the common leading messages of two conversations;
//! with [`PromptSplit::LastTurn`], at the last turn boundary the two share.
//!
//! An empty response is a response (HH-RLHF has rows whose preferred reply is empty: one text
//! is a prefix of the other). Every bad row (not UTF-8, invalid JSON, a missing or mistyped
//! column, identical `chosen` and `rejected`) is an error naming the file and line (row, for
//! Parquet), or, with `skip_bad_rows`, is skipped and counted.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::experiment::config::PromptSplit;

/// Why a row with identical `chosen` and `rejected` is bad: it states no preference (a tie).
pub const TIE: &str = "`chosen` and `rejected` are identical (a tie states no preference)";

/// The turn marker of HH-style strings (`"\n\nHuman: …\n\nAssistant: …"`).
const ASSISTANT_TURN: &str = "\n\nAssistant:";

/// Where a row's prompt came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptFrom {
    /// The `prompt` column.
    Column,
    /// The shared start of `chosen` and `rejected` (TRL's implicit prompt): no `prompt` column,
    /// or `"prompt": null`.
    Implicit,
}

/// One preference pair as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The row's line (row, for Parquet) in its file, from 1; 0 for a row parsed alone.
    pub line: usize,
    pub prompt: String,
    pub prompt_from: PromptFrom,
    /// The preferred response (without the prompt).
    pub chosen: String,
    pub rejected: String,
    pub margin: Option<f64>,
    pub embedding: Option<(Vec<f32>, Vec<f32>)>,
}

/// What reading a file found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadReport {
    /// Rows read (blank lines are not rows).
    pub rows: usize,
    /// `(line, reason)` of every skipped row.
    pub skipped: Vec<(usize, String)>,
    /// Blank lines, passed over.
    pub blank_lines: usize,
    /// Rows with an explicit `"prompt": ""`: kept, as comparisons under an empty prompt.
    pub empty_prompts: usize,
    /// Rows whose prompt was taken from the shared start of `chosen` and `rejected` (no
    /// `prompt` column, or `"prompt": null`).
    pub implicit_prompts: usize,
    /// Whether the file began with a UTF-8 byte-order mark (ignored).
    pub bom: bool,
}

/// Bounds on what reading one preference file may hold (`data.max_line_bytes`,
/// `data.max_file_bytes`, `data.max_rows`), so that a gzip bomb or an endless file stops with
/// an error naming the file and the limit, instead of exhausting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Longest line (Parquet: row as JSON), in bytes.
    pub max_line_bytes: usize,
    /// Most bytes read from one file after decompression (Parquet: its uncompressed size).
    pub max_file_bytes: usize,
    /// Most rows (non-blank lines) in one file.
    pub max_rows: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        use crate::experiment::config::{MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_ROWS};
        ReadLimits { max_line_bytes: MAX_LINE_BYTES, max_file_bytes: MAX_FILE_BYTES, max_rows: MAX_ROWS }
    }
}

impl From<&crate::experiment::config::DataConfig> for ReadLimits {
    fn from(d: &crate::experiment::config::DataConfig) -> Self {
        ReadLimits {
            max_line_bytes: d.max_line_bytes,
            max_file_bytes: d.max_file_bytes,
            max_rows: d.max_rows,
        }
    }
}

/// A limit met, for an error: `what` holds more than `limit` `unit`, and the spec key to raise.
fn over(what: &str, limit: usize, unit: &str, key: &str) -> String {
    format!(
        "{what} holds more than {limit} {unit}, the limit data.{key} sets (raise it if the file is meant to)"
    )
}

/// Reads every row of a preference file (format by extension: `.jsonl`, `.jsonl.gz`,
/// `.parquet`); `prompt_split` says where implicit prompts end. Lines are read one at a time
/// and parsed as they come, within `limits`.
pub fn read(
    path: &Path,
    skip_bad_rows: bool,
    prompt_split: PromptSplit,
    limits: ReadLimits,
) -> Result<(Vec<Example>, ReadReport)> {
    let name = path.display().to_string();
    // A FIFO or a device would block or never end: only regular files are read.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(Error::file(
            path,
            "not a regular file (a directory, FIFO or device); rmlab reads files only",
        ));
    }
    let mut report = ReadReport::default();
    // Rows as parsed, each line's bytes dropped as soon as it is: the good as examples, the
    // bad as `(line, why)`.
    let mut examples: Vec<Example> = Vec::new();
    let mut bad: Vec<(usize, String)> = Vec::new();
    let mut take = |line: usize, mut bytes: Vec<u8>, report: &mut ReadReport| -> Result<()> {
        // A UTF-8 byte-order mark (Windows editors write one) is not part of the first row.
        if line == 1 && bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            bytes.drain(..3);
            report.bom = true;
        }
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            report.blank_lines += 1;
            return Ok(());
        }
        report.rows += 1;
        if report.rows > limits.max_rows {
            return Err(Error::file_line(path, line, over("the file", limits.max_rows, "rows", "max_rows")));
        }
        match parse_row(&bytes, prompt_split) {
            Ok(ex) => examples.push(Example { line, ..ex }),
            Err(why) => bad.push((line, why)),
        }
        Ok(())
    };
    if name.ends_with(".parquet") {
        parquet_rows(path, limits, |line, bytes| take(line, bytes, &mut report))?;
    } else if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") || name.ends_with(".json.gz") {
        let file = std::fs::File::open(path).map_err(|e| Error::file(path, e.to_string()))?;
        let gz = name.ends_with(".gz");
        let reader: Box<dyn Read> =
            // Every gzip member: `cat a.gz b.gz`, and many writers, make files of several.
            if gz { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        let mut reader = BufReader::new(reader);
        let mut total: usize = 0;
        for line in 1.. {
            let mut bytes = Vec::new();
            // At most one byte past the limit is read, so a line without end stops there.
            let n = (&mut reader)
                .take((limits.max_line_bytes as u64).saturating_add(1))
                .read_until(b'\n', &mut bytes)
                .map_err(|e| Error::file_line(path, line, format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            total += n;
            if total > limits.max_file_bytes {
                return Err(Error::file_line(
                    path,
                    line,
                    over(
                        "the file",
                        limits.max_file_bytes,
                        if gz { "bytes after decompression" } else { "bytes" },
                        "max_file_bytes",
                    ),
                ));
            }
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            } else if bytes.len() > limits.max_line_bytes {
                return Err(Error::file_line(
                    path,
                    line,
                    over("the line", limits.max_line_bytes, "bytes", "max_line_bytes"),
                ));
            }
            take(line, bytes, &mut report)?;
        }
    } else {
        return Err(Error::file(path, "unknown format; expected .jsonl, .jsonl.gz or .parquet"));
    };
    let unit = if name.ends_with(".parquet") { "row" } else { "line" };
    // The embedding length most rows have (the first such row's on a tie): one bad row, first
    // or not, is the one named and skipped, never the rest.
    let width = {
        let mut counts: std::collections::HashMap<usize, (usize, usize)> = Default::default();
        for ex in &examples {
            if let Some((a, _)) = &ex.embedding {
                counts.entry(a.len()).or_insert((0, ex.line)).0 += 1;
            }
        }
        counts.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1))).map(|(w, (n, _))| (w, n))
    };
    if let Some((w, n)) = width {
        examples.retain(|ex| match &ex.embedding {
            Some((a, _)) if a.len() != w => {
                bad.push((
                    ex.line,
                    format!("embeddings of length {}, but {n} other {unit}s have length {w}", a.len()),
                ));
                false
            }
            _ => true,
        });
    }
    // In line order: embedding lengths were checked after every row was read.
    bad.sort_by_key(|(line, _)| *line);
    if let Some((line, reason)) = bad.first().filter(|_| !skip_bad_rows) {
        return Err(Error::file_line(
            path,
            *line,
            format!("{reason} (set data.skip_bad_rows = true to skip bad {unit}s)"),
        ));
    }
    report.skipped = bad;
    for ex in &examples {
        report.empty_prompts += usize::from(ex.prompt_from == PromptFrom::Column && ex.prompt.is_empty());
        report.implicit_prompts += usize::from(ex.prompt_from == PromptFrom::Implicit);
    }
    if examples.is_empty() {
        return Err(Error::file(path, format!("no usable preference pairs ({} rows read)", report.rows)));
    }
    Ok((examples, report))
}

/// SHA-256 (hex) of a preference file, read a block at a time; a FIFO or device (which could
/// block or never end) is refused.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::file(
            path,
            "not a regular file (a directory, FIFO or device); rmlab reads files only",
        ));
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::file(path, format!("cannot read: {e}"))),
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Hands each row of a Parquet file to `row` as a JSON line (with its row number, from 1), so
/// one parser checks every format alike. The row count and the uncompressed size the file
/// declares are checked against `limits` before it is decoded.
fn parquet_rows(
    path: &Path,
    limits: ReadLimits,
    mut row: impl FnMut(usize, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let unreadable = |e: PolarsError| Error::file(path, format!("not a readable Parquet file: {e}"));
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e.to_string()))?;
    let mut reader = ParquetReader::new(file);
    let meta = unpanicked(|| reader.get_metadata().cloned()).map_err(unreadable)?;
    let rows: usize = meta.row_groups.iter().map(|g| g.num_rows()).sum();
    let bytes: usize = meta.row_groups.iter().map(|g| g.total_byte_size()).sum();
    if rows > limits.max_rows {
        return Err(Error::file(path, over("the file", limits.max_rows, "rows", "max_rows")));
    }
    if bytes > limits.max_file_bytes {
        return Err(Error::file(
            path,
            over("the file", limits.max_file_bytes, "bytes uncompressed", "max_file_bytes"),
        ));
    }
    let df = unpanicked(|| reader.finish()).map_err(unreadable)?;
    // Written as JSON a slice at a time, each row handed on as it comes: the rows' JSON is never
    // held whole beside the table.
    let mut line = 0;
    for offset in (0..df.height()).step_by(PARQUET_SLICE) {
        let mut slice = df.slice(offset as i64, PARQUET_SLICE);
        let mut buf = Vec::new();
        unpanicked(|| JsonWriter::new(&mut buf).with_json_format(JsonFormat::JsonLines).finish(&mut slice))
            .map_err(unreadable)?;
        for l in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            line += 1;
            if l.len() > limits.max_line_bytes {
                return Err(Error::file_line(
                    path,
                    line,
                    over("the row", limits.max_line_bytes, "bytes as JSON", "max_line_bytes"),
                ));
            }
            row(line, l.to_vec())?;
        }
    }
    Ok(())
}

/// `f`, with a panic inside it turned into an error. polars panics on some files (found by
/// fuzzing, issue 26): reading them (a thrift field of the wrong type), or writing the frame it
/// read as JSON (columns of unequal lengths, a binary column). Such a file is bad input, not a
/// crash.
fn unpanicked<T>(f: impl FnOnce() -> PolarsResult<T>) -> PolarsResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .map(|m| m.lines().next().unwrap_or_default().to_string());
        Err(PolarsError::ComputeError(message.unwrap_or_else(|| "the Parquet reader failed".into()).into()))
    })
}

/// Rows of a Parquet file written as JSON at a time.
const PARQUET_SLICE: usize = 4096;

/// One row from its JSON bytes; the error says what is wrong with it.
pub fn parse_row(bytes: &[u8], prompt_split: PromptSplit) -> std::result::Result<Example, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 (byte {})", e.valid_up_to()))?;
    let row: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = row.as_object().ok_or("a row must be a JSON object")?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let chosen = get("chosen").ok_or("missing column `chosen`")?;
    let rejected = get("rejected").ok_or("missing column `rejected`")?;
    let ((prompt, chosen, rejected), prompt_from) = match get("prompt") {
        Some(p) => (
            (render(p, "prompt")?, render(chosen, "chosen")?, render(rejected, "rejected")?),
            PromptFrom::Column,
        ),
        None => (split_implicit(chosen, rejected, prompt_split)?, PromptFrom::Implicit),
    };
    if chosen == rejected {
        return Err(TIE.into());
    }
    let margin = match get("margin") {
        None => None,
        Some(v) => Some(v.as_f64().filter(|m| m.is_finite()).ok_or("`margin` must be a finite number")?),
    };
    let embedding = match (get("embedding_chosen"), get("embedding_rejected")) {
        (None, None) => None,
        (Some(a), Some(b)) => {
            let (a, b) = (floats(a, "embedding_chosen")?, floats(b, "embedding_rejected")?);
            if a.len() != b.len() || a.is_empty() {
                return Err(format!(
                    "embeddings differ in length ({} and {}) or are empty",
                    a.len(),
                    b.len()
                ));
            }
            Some((a, b))
        }
        _ => return Err("`embedding_chosen` and `embedding_rejected` come together".into()),
    };
    Ok(Example { line: 0, prompt, prompt_from, chosen, rejected, margin, embedding })
}

fn floats(v: &Value, key: &str) -> std::result::Result<Vec<f32>, String> {
    v.as_array()
        .ok_or(format!("`{key}` must be a list of numbers"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f as f32)
                .ok_or(format!("`{key}` must hold finite numbers"))
        })
        .collect()
}

/// A string, or a conversation rendered as `role: content` lines.
fn render(v: &Value, key: &str) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(msgs) => Ok(rendered(&messages(msgs, key)?)),
        other => Err(format!("`{key}` must be a string or a list of messages, found {}", kind(other))),
    }
}

/// `(role, content)` of each message of a conversation.
fn messages<'v>(msgs: &'v [Value], key: &str) -> std::result::Result<Vec<(&'v str, &'v str)>, String> {
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => Ok((r, c)),
                _ => Err(format!("`{key}` message {i} must have string `role` and `content`")),
            }
        })
        .collect()
}

/// Messages as `role: content` lines.
fn rendered(msgs: &[(&str, &str)]) -> String {
    msgs.iter().map(|(r, c)| format!("{r}: {c}")).collect::<Vec<_>>().join("\n")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The implicit prompt: the shared start of `chosen` and `rejected`, cut where `rule` says.
fn split_implicit(
    chosen: &Value,
    rejected: &Value,
    rule: PromptSplit,
) -> std::result::Result<(String, String, String), String> {
    match (chosen, rejected) {
        (Value::String(a), Value::String(b)) => {
            let common = a.char_indices().zip(b.chars()).take_while(|((_, x), y)| x == y).count();
            // Byte offset of the end of the common prefix; the prefix is byte-identical in `b`.
            let mut cut = a.char_indices().nth(common).map_or(a.len(), |(i, _)| i);
            if rule == PromptSplit::LastTurn {
                let turn = a[..cut].rfind(ASSISTANT_TURN).ok_or(
                    "`chosen` and `rejected` share no `\\n\\nAssistant:` turn (data.prompt_split = \"last_turn\")",
                )?;
                cut = turn + ASSISTANT_TURN.len();
            }
            Ok((a[..cut].to_string(), a[cut..].to_string(), b[cut..].to_string()))
        }
        (Value::Array(a), Value::Array(b)) => {
            let (ma, mb) = (messages(a, "chosen")?, messages(b, "rejected")?);
            let common = ma.iter().zip(&mb).take_while(|(x, y)| x == y).count();
            let cut = match rule {
                PromptSplit::CommonPrefix => common,
                // The last common message after which both go on with an assistant turn (or
                // end): the prompt never ends inside an exchange both answers share.
                PromptSplit::LastTurn => {
                    let answers =
                        |m: &[(&str, &str)], k: usize| m.get(k).is_none_or(|(r, _)| *r == "assistant");
                    (0..=common).rev().find(|&k| answers(&ma, k) && answers(&mb, k)).ok_or(
                        "`chosen` and `rejected` share no turn before an assistant message (data.prompt_split = \"last_turn\")",
                    )?
                }
            };
            Ok((rendered(&ma[..cut]), rendered(&ma[cut..]), rendered(&mb[cut..])))
        }
        (a, b) => Err(format!(
            "`chosen` and `rejected` must both be strings or both conversations, found {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: PromptSplit = PromptSplit::CommonPrefix;
    const TURN: PromptSplit = PromptSplit::LastTurn;
    const LIMITS: ReadLimits = ReadLimits {
        max_line_bytes: crate::experiment::config::MAX_LINE_BYTES,
        max_file_bytes: crate::experiment::config::MAX_FILE_BYTES,
        max_rows: crate::experiment::config::MAX_ROWS,
    };

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trl").join(name)
    }

    #[test]
    fn every_fixture_format_reads() {
        for (file, rows) in [
            ("pairs.jsonl", 400),
            ("pairs.jsonl.gz", 400),
            ("pairs.parquet", 400),
            ("implicit.jsonl", 400),
            ("conversation.jsonl", 150),
            ("conversation_implicit.parquet", 150),
            ("embeddings.jsonl", 200),
        ] {
            let (ex, report) =
                read(&fixture(file), false, PREFIX, LIMITS).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!((ex.len(), report.rows), (rows, rows), "{file}");
            assert!(ex.iter().all(|e| !e.prompt.is_empty() && e.chosen != e.rejected), "{file}");
        }
        let (a, _) = read(&fixture("pairs.jsonl"), false, PREFIX, LIMITS).unwrap();
        let (b, _) = read(&fixture("pairs.parquet"), false, PREFIX, LIMITS).unwrap();
        let (c, _) = read(&fixture("pairs.jsonl.gz"), false, PREFIX, LIMITS).unwrap();
        assert_eq!(a, c);
        assert_eq!(
            a.iter().map(|e| &e.chosen).collect::<Vec<_>>(),
            b.iter().map(|e| &e.chosen).collect::<Vec<_>>()
        );
        let (e, _) = read(&fixture("embeddings.jsonl"), false, PREFIX, LIMITS).unwrap();
        assert_eq!(e[0].embedding.as_ref().unwrap().0.len(), 16);
    }

    #[track_caller]
    fn split(row: &str, rule: PromptSplit, expected: (&str, &str, &str)) {
        let e = parse_row(row.as_bytes(), rule).unwrap_or_else(|err| panic!("{row}: {err}"));
        assert_eq!((e.prompt.as_str(), e.chosen.as_str(), e.rejected.as_str()), expected, "{rule:?}");
    }

    #[test]
    fn implicit_prompts_are_the_shared_start() {
        let (ex, _) = read(&fixture("implicit.jsonl"), false, PREFIX, LIMITS).unwrap();
        assert!(ex[0].prompt.contains("Human:"), "{:?}", ex[0].prompt);
        assert!(!ex[0].chosen.contains("Human:"));
        split(
            r#"{"chosen": "Q: hi\nA: hello there", "rejected": "Q: hi\nA: go away"}"#,
            PREFIX,
            ("Q: hi\nA: ", "hello there", "go away"),
        );
    }

    /// HH-style strings: the common prefix takes the answers' shared first word into the
    /// prompt; the last turn leaves it in both answers and cuts after the last common
    /// `\n\nAssistant:`, earlier exchanges included.
    #[test]
    fn last_turn_rule_on_hh_strings() {
        let row = r#"{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Is tea healthy?\n\nAssistant: Sure, in moderation.",
                      "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Is tea healthy?\n\nAssistant: Sure thing, drink ten cups."}"#;
        let prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Is tea healthy?\n\nAssistant:";
        split(row, PREFIX, (&format!("{prompt} Sure"), ", in moderation.", " thing, drink ten cups."));
        split(row, TURN, (prompt, " Sure, in moderation.", " Sure thing, drink ten cups."));
        // HH-RLHF's refusals: the preferred reply is empty, one text a prefix of the other.
        let refusal = r#"{"chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant:",
                          "rejected": "\n\nHuman: How do I pick a lock?\n\nAssistant: Take a tension wrench."}"#;
        let prompt = "\n\nHuman: How do I pick a lock?\n\nAssistant:";
        split(refusal, PREFIX, (prompt, "", " Take a tension wrench."));
        split(refusal, TURN, (prompt, "", " Take a tension wrench."));
        // Both go on past a shared reply and differ in a later human turn: the cut is after the
        // last `\n\nAssistant:` they share, so the shared reply belongs to both answers.
        split(
            r#"{"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c", "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: d"}"#,
            TURN,
            ("\n\nHuman: a\n\nAssistant:", " b\n\nHuman: c", " b\n\nHuman: d"),
        );
        let err = parse_row(br#"{"chosen": "Q: hi\nA: yes", "rejected": "Q: hi\nA: no"}"#, TURN).unwrap_err();
        assert!(err.contains("no `\\n\\nAssistant:` turn"), "{err}");
    }

    /// Conversations: both rules cut at message boundaries; the last turn also backs off to
    /// the last common message before an assistant message.
    #[test]
    fn last_turn_rule_on_conversations() {
        let msg = |r: &str, c: &str| format!(r#"{{"role": "{r}", "content": "{c}"}}"#);
        let row = |a: &[String], b: &[String]| {
            format!(r#"{{"chosen": [{}], "rejected": [{}]}}"#, a.join(","), b.join(","))
        };
        let (sys, q) = (msg("system", "Be brief."), msg("user", "Is tea healthy?"));
        let (yes, no) =
            (msg("assistant", "Sure, in moderation."), msg("assistant", "Sure thing, drink ten cups."));
        let one_turn = row(&[sys.clone(), q.clone(), yes.clone()], &[sys.clone(), q.clone(), no.clone()]);
        let prompt = "system: Be brief.\nuser: Is tea healthy?";
        let answers = ("assistant: Sure, in moderation.", "assistant: Sure thing, drink ten cups.");
        split(&one_turn, PREFIX, (prompt, answers.0, answers.1));
        split(&one_turn, TURN, (prompt, answers.0, answers.1));
        // Both answers open with the same assistant message and differ in the user's next one.
        let (more, other) = (msg("user", "And coffee?"), msg("user", "And milk?"));
        let later = row(&[q.clone(), yes.clone(), more], &[q.clone(), yes.clone(), other]);
        split(
            &later,
            PREFIX,
            (
                "user: Is tea healthy?\nassistant: Sure, in moderation.",
                "user: And coffee?",
                "user: And milk?",
            ),
        );
        split(
            &later,
            TURN,
            (
                "user: Is tea healthy?",
                "assistant: Sure, in moderation.\nuser: And coffee?",
                "assistant: Sure, in moderation.\nuser: And milk?",
            ),
        );
        // An empty reply: one conversation ends where the other answers.
        split(
            &row(std::slice::from_ref(&q), &[q.clone(), no.clone()]),
            TURN,
            ("user: Is tea healthy?", "", answers.1),
        );
        let err = parse_row(row(&[msg("user", "a")], &[msg("user", "b")]).as_bytes(), TURN).unwrap_err();
        assert!(err.contains("no turn before an assistant message"), "{err}");
    }

    /// An empty response is a response (it used to be a bad row).
    #[test]
    fn empty_responses_load() {
        let (ex, report) = read(&fixture("empty_response.jsonl"), false, PREFIX, LIMITS).unwrap();
        assert_eq!((ex.len(), report.rows, report.skipped.len()), (5, 5, 0));
        assert_eq!(ex[3].chosen, "");
        assert!(!ex[3].rejected.is_empty());
        let e = parse_row(br#"{"prompt": "q", "chosen": "", "rejected": " "}"#, PREFIX).unwrap();
        assert_eq!((e.chosen.as_str(), e.rejected.as_str()), ("", " "));
        assert_eq!(parse_row(br#"{"prompt": "q", "chosen": "", "rejected": ""}"#, PREFIX).unwrap_err(), TIE);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        for (file, line, needle) in [
            ("bad_json.jsonl", 3, "invalid JSON"),
            ("bad_missing_column.jsonl", 2, "missing column `rejected`"),
            ("bad_identical.jsonl", 2, "identical"),
            ("bad_utf8.jsonl", 3, "not UTF-8"),
            ("bad_types.jsonl", 2, "must be a string or a list of messages"),
        ] {
            let err = read(&fixture(file), false, PREFIX, LIMITS).unwrap_err().to_string();
            assert!(err.contains(&format!("{file}:{line}: ")), "{err}");
            assert!(err.contains(needle), "{err}");
            assert_eq!(read(&fixture(file), false, PREFIX, LIMITS).unwrap_err().exit_code(), 2);
            let (ex, report) = read(&fixture(file), true, PREFIX, LIMITS).unwrap();
            assert_eq!(report.skipped.len(), 1, "{file}");
            assert_eq!(report.skipped[0].0, line);
            assert_eq!(ex.len() + 1, report.rows);
        }
    }

    fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    /// A `.jsonl.gz` of two gzip members (`cat a.gz b.gz`) is read whole: every row of both.
    #[test]
    fn every_member_of_a_gzip_file_is_read() {
        use std::io::Write;
        let member = |rows: std::ops::Range<usize>| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            for i in rows {
                writeln!(z, r#"{{"prompt": "Q{i}", "chosen": "a{i}", "rejected": "b{i}"}}"#).unwrap();
            }
            z.finish().unwrap()
        };
        let mut bytes = member(0..30);
        bytes.extend(member(30..60));
        let (_dir, path) = temp_file("two.jsonl.gz", &bytes);
        let (ex, report) = read(&path, false, PREFIX, LIMITS).unwrap();
        assert_eq!(ex.len(), 60, "rows of the second member are read too");
        assert_eq!((ex[0].prompt.as_str(), ex[59].prompt.as_str()), ("Q0", "Q59"));
        assert_eq!(report.rows, 60);
    }

    /// A UTF-8 byte-order mark is not part of the first row; blank lines are not rows; empty
    /// and null prompts are kept and counted.
    #[test]
    fn bom_blank_lines_and_empty_prompts_are_decided_and_counted() {
        let rows = [
            r#"{"prompt": "Q1", "chosen": "a", "rejected": "b"}"#,
            "",
            "   ",
            r#"{"prompt": "", "chosen": "c", "rejected": "d"}"#,
            r#"{"prompt": null, "chosen": "Q: x A: e", "rejected": "Q: x A: f"}"#,
        ];
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend(rows.join("\n").as_bytes());
        let (_dir, path) = temp_file("bom.jsonl", &bytes);
        let (ex, report) = read(&path, false, PREFIX, LIMITS).unwrap();
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].prompt, "Q1", "the first row reads despite the BOM");
        assert_eq!((ex[0].line, ex[1].line, ex[2].line), (1, 4, 5));
        assert_eq!(ex[2].prompt, "Q: x A: ");
        assert_eq!(
            (report.rows, report.blank_lines, report.empty_prompts, report.implicit_prompts, report.bom),
            (3, 2, 1, 1, true)
        );
        assert!(report.skipped.is_empty());
    }

    /// Rows whose embeddings differ in length from most rows' are bad rows, found when the file
    /// is read (not when a run trains on it): a short first row is the one named and skipped,
    /// never the 79 good rows after it.
    #[test]
    fn embedding_lengths_are_checked_against_most_rows_when_read() {
        let row = |i: usize, w: usize| {
            let v = vec!["1"; w].join(", ");
            format!(
                r#"{{"prompt": "p{i}", "chosen": "a", "rejected": "b", "embedding_chosen": [{v}], "embedding_rejected": [{v}]}}"#
            )
        };
        let text: Vec<String> = std::iter::once(row(0, 2)).chain((1..80).map(|i| row(i, 3))).collect();
        let (_dir, path) = temp_file("emb.jsonl", text.join("\n").as_bytes());
        let err = read(&path, false, PREFIX, LIMITS).unwrap_err().to_string();
        assert!(
            err.contains("emb.jsonl:1: embeddings of length 2, but 79 other lines have length 3"),
            "{err}"
        );
        let (ex, report) = read(&path, true, PREFIX, LIMITS).unwrap();
        assert_eq!((ex.len(), report.skipped.len()), (79, 1));
        assert_eq!(report.skipped[0].0, 1, "the short row is the one skipped");
        // A bad row in the middle is named the same way.
        let mut text = text.clone();
        text[0] = row(0, 3);
        text[40] = row(40, 5);
        let (_dir, path) = temp_file("emb2.jsonl", text.join("\n").as_bytes());
        let err = read(&path, false, PREFIX, LIMITS).unwrap_err().to_string();
        assert!(
            err.contains("emb2.jsonl:41: embeddings of length 5, but 79 other lines have length 3"),
            "{err}"
        );
    }
}
