//! The library's error type. Bad input (exit code 2) is kept apart from failures while
//! running (exit code 1).

use std::path::Path;

/// Everything that can go wrong in rmlab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file that cannot be used as written, located at file:line:column.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Spec { file: String, line: usize, column: usize, key: String, message: String },
    /// Bad input that is not located in a spec: a command-line value, a missing file.
    #[error("{0}")]
    Input(String),
    /// SQLite failed on a store file.
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A store file that rmlab cannot use (another program's DB, a newer schema).
    #[error("{path}: {message}")]
    Store { path: String, message: String },
    /// LibTorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A run could not be trained (empty split, …); the run is recorded as failed.
    #[error("{0}")]
    Run(String),
    /// Some cells of a sweep failed; each was reported when it failed.
    #[error("{failed} of {total} cells failed (see the errors above, and `status` in the runs table)")]
    CellsFailed { failed: usize, total: usize },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Process exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec { .. } | Error::Input(_) => 2,
            _ => 1,
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    pub fn sqlite(path: &Path, source: rusqlite::Error) -> Error {
        Error::Sqlite { path: path.display().to_string(), source }
    }

    /// Maps an SQLite error on the store `conn` has open to [`Error::Sqlite`] naming the store's
    /// file: `stmt.map_err(Error::on(conn))?`.
    pub fn on(conn: &rusqlite::Connection) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
        move |source| Error::Sqlite { path: conn.path().unwrap_or("an in-memory store").to_string(), source }
    }
}
