//! Where in a spec file a key or value is: byte spans and key paths to file:line:column, so
//! that every spec error names the file, line, column and key path it refers to.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::error::Error;

/// A step in a path through the TOML document.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// The spec text, for turning byte spans and key paths into file:line:column.
pub(super) struct Source<'a> {
    pub(super) file: String,
    pub(super) text: &'a str,
}

impl Source<'_> {
    pub(super) fn error_at(&self, span: Range<usize>, key: &str, message: &str) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Spec {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// An error at the value found by following `path`, or at its deepest existing ancestor.
    pub(super) fn error_at_path(&self, path: &[Step], key: &str, message: &str) -> Error {
        let span = DeTable::parse(self.text).ok().map(|doc| locate(doc.get_ref(), path)).unwrap_or(0..0);
        self.error_at(span, key, message)
    }

    /// The dotted key path of the innermost value whose span contains `offset`.
    pub(super) fn key_at(&self, offset: usize) -> String {
        let Ok(doc) = DeTable::parse(self.text) else {
            // Not valid TOML (a syntax error, a duplicate key): read the key off its line.
            return key_on_line(self.text, offset).unwrap_or_else(|| "(document)".into());
        };
        let mut path = Vec::new();
        find_key(doc.get_ref(), offset, &mut path);
        if path.is_empty() { "(top level)".into() } else { path.join(".") }
    }
}

/// The dotted key of the `key = value` line holding `offset`, within the last `[table]` or
/// `[[array]]` header before it; for text that does not parse as TOML.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let unquote = |k: &str| k.trim().trim_matches('"').trim_matches('\'').to_string();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[').then(|| unquote(l.trim_start_matches('[').split(']').next().unwrap_or("")))
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let key = unquote(line.split_once('=')?.0);
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let section = text[..start].lines().rev().find_map(header);
    Some(match section {
        Some(s) if !s.is_empty() => format!("{s}.{key}"),
        _ => key,
    })
}

/// Span of the value at `path` (or of the deepest part of it that exists).
fn locate(root: &DeTable, path: &[Step]) -> Range<usize> {
    let mut span = 0..0;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue>]> = None;
    for step in path {
        let value = match (step, table, array) {
            (Step::Key(k), Some(t), _) => match t.iter().find(|(key, _)| key.get_ref() == k) {
                Some((_, v)) => v,
                None => return span,
            },
            (Step::Index(i), _, Some(a)) if *i < a.len() => &a[*i],
            _ => return span,
        };
        span = value.span();
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    span
}

/// Appends to `path` the keys leading to `offset`. A `[table]` body lies outside its header's
/// span, so when no entry contains the offset, the last table whose header precedes it is
/// searched.
fn find_key(table: &DeTable, offset: usize, path: &mut Vec<String>) {
    let inside = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
    let containing = table.iter().find(|(k, v)| inside(&k.span()) || inside(&v.span()));
    let preceding = || {
        table
            .iter()
            .filter(|(k, v)| {
                k.span().start <= offset && matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_))
            })
            .max_by_key(|(k, _)| k.span().start)
    };
    let Some((key, value)) = containing.or_else(preceding) else {
        return;
    };
    path.push(key.get_ref().to_string());
    match value.get_ref() {
        DeValue::Table(t) => find_key(t, offset, path),
        DeValue::Array(items) => {
            let item = items.iter().rfind(|i| i.span().start <= offset);
            if let Some(DeValue::Table(t)) = item.map(|i| i.get_ref()) {
                find_key(t, offset, path);
            }
        }
        _ => {}
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}
