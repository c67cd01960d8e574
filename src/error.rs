//! The library's error type, one variant for each kind of failure, typed where it arises. The
//! exit code follows from the variant: bad input (a spec, a flag, an input file, a config
//! value) is 2; a failure while running (I/O, SQLite, LibTorch, a checkpoint that cannot be
//! read, training) is 1.

use std::path::Path;

/// Everything that can go wrong in rmlab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file that cannot be used as written, located at file:line:column. Exit 2.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Spec { file: String, line: usize, column: usize, key: String, message: String },
    /// A command-line value that cannot be used: `--run`, `--where`, `--set`, `--only`,
    /// `--out`, … (`value` may be empty when the flag as a whole is wrong). Exit 2.
    #[error("{flag}{}: {message}", if value.is_empty() { String::new() } else { format!(" {value}") })]
    Flag { flag: String, value: String, message: String },
    /// An input file whose content cannot be used (a preference file's row, a spec file that
    /// is missing or not UTF-8, a kept model's record, a store to merge), at `line` when
    /// known. Exit 2.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    File { path: String, line: Option<usize>, message: String },
    /// A config value that cannot be used, found outside a spec file (a run's config, a
    /// checkpoint that does not fit it). Exit 2.
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    /// A checkpoint or kept model that cannot be read: I/O, or a load that fails mid-run.
    /// Exit 1: the input was checked before the run; reading it failed while running.
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    /// SQLite failed on a store file. Exit 1.
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A store file that rmlab cannot use (another program's DB, a newer schema). Exit 1.
    #[error("{path}: {message}")]
    Store { path: String, message: String },
    /// LibTorch reported an error. Exit 1.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file could not be read or written. Exit 1.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A run could not be trained (empty split, an engine that cannot train the cell, a
    /// LibTorch panic); the run is recorded as failed. Exit 1.
    #[error("{message}")]
    Training { message: String },
    /// The machine cannot do what was asked: no CUDA device, a failing LibTorch check, no
    /// `sbatch`. Exit 1.
    #[error("{message}")]
    System { message: String },
    /// A result table or plot could not be built or written (polars, the plotting backend).
    /// Exit 1.
    #[error("{message}")]
    Report { message: String },
    /// Some cells of a sweep failed; each was reported when it failed. Exit 1.
    #[error("{failed} of {total} cells failed (see the errors above, and `status` in the runs table)")]
    CellsFailed { failed: usize, total: usize },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Process exit code: 2 for bad input, 1 for everything else (see each variant).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec { .. } | Error::Flag { .. } | Error::File { .. } | Error::Config { .. } => 2,
            Error::Unreadable { .. }
            | Error::Sqlite { .. }
            | Error::Store { .. }
            | Error::Torch(_)
            | Error::Io { .. }
            | Error::Training { .. }
            | Error::System { .. }
            | Error::Report { .. }
            | Error::CellsFailed { .. } => 1,
        }
    }

    /// [`Error::Flag`]: `flag value: message`.
    pub fn flag(flag: &str, value: impl std::fmt::Display, message: impl Into<String>) -> Error {
        Error::Flag { flag: flag.into(), value: value.to_string(), message: message.into() }
    }

    /// [`Error::File`] without a line: `path: message`.
    pub fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::File { path: path.as_ref().display().to_string(), line: None, message: message.into() }
    }

    /// [`Error::File`] at a line: `path:line: message`.
    pub fn file_line(path: impl AsRef<Path>, line: usize, message: impl Into<String>) -> Error {
        Error::File { path: path.as_ref().display().to_string(), line: Some(line), message: message.into() }
    }

    /// [`Error::Unreadable`]: `path: message`.
    pub fn unreadable(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Unreadable { path: path.as_ref().display().to_string(), message: message.into() }
    }

    pub fn training(message: impl Into<String>) -> Error {
        Error::Training { message: message.into() }
    }

    pub fn system(message: impl Into<String>) -> Error {
        Error::System { message: message.into() }
    }

    pub fn report(message: impl Into<String>) -> Error {
        Error::Report { message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    /// [`Error::Sqlite`] naming the store file `path`: the one place an SQLite error gets its
    /// path ([`Error::on`] and the store's own helpers call it).
    pub fn sqlite(path: &Path, source: rusqlite::Error) -> Error {
        Error::Sqlite { path: path.display().to_string(), source }
    }

    /// Maps an SQLite error on the store `conn` has open to [`Error::Sqlite`] naming the store's
    /// file: `stmt.map_err(Error::on(conn))?`.
    pub fn on(conn: &rusqlite::Connection) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
        move |source| Error::sqlite(Path::new(conn.path().unwrap_or("an in-memory store")), source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant's one line and exit code, as its doc comment says.
    #[test]
    fn display_and_exit_code_per_variant() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let sqlite = format!("r.sqlite: {}", rusqlite::Error::InvalidQuery);
        let torch = format!("libtorch: {}", tch::TchError::Torch("k".into()));
        let cases: Vec<(Error, &str, i32)> = vec![
            (
                Error::Spec {
                    file: "s.toml".into(),
                    line: 3,
                    column: 7,
                    key: "loss.lambda".into(),
                    message: "must be ≥ 0".into(),
                },
                "s.toml:3:7: loss.lambda: must be ≥ 0",
                2,
            ),
            (Error::flag("--where", "x", "expected key=value"), "--where x: expected key=value", 2),
            (Error::flag("--set", "", "a: bad"), "--set: a: bad", 2),
            (Error::file_line("p.jsonl", 4, "no `chosen`"), "p.jsonl:4: no `chosen`", 2),
            (Error::file("p.jsonl", "no usable pairs"), "p.jsonl: no usable pairs", 2),
            (
                Error::Config { key: "data.path".into(), message: "is not set".into() },
                "data.path: is not set",
                2,
            ),
            (
                Error::unreadable("m/model.safetensors", "not a readable safetensors file"),
                "m/model.safetensors: not a readable safetensors file",
                1,
            ),
            (Error::sqlite(Path::new("r.sqlite"), rusqlite::Error::InvalidQuery), &sqlite, 1),
            (
                Error::Store { path: "r.sqlite".into(), message: "newer schema".into() },
                "r.sqlite: newer schema",
                1,
            ),
            (Error::Torch(tch::TchError::Torch("k".into())), &torch, 1),
            (Error::io(Path::new("f"), io()), "f: gone", 1),
            (Error::training("the training split has no pairs"), "the training split has no pairs", 1),
            (Error::system("no CUDA device"), "no CUDA device", 1),
            (Error::report("polars: x"), "polars: x", 1),
            (
                Error::CellsFailed { failed: 1, total: 2 },
                "1 of 2 cells failed (see the errors above, and `status` in the runs table)",
                1,
            ),
        ];
        for (e, text, code) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.exit_code(), code, "{text}");
        }
    }

    #[test]
    fn on_names_the_store_file() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let e = conn.execute("NOT SQL", []).map_err(Error::on(&conn)).unwrap_err();
        assert!(e.to_string().starts_with("an in-memory store: ") || e.to_string().starts_with(": "), "{e}");
        assert_eq!(e.exit_code(), 1);
    }
}
