//! The error of opening a checkpoint (its `config.json`, `tokenizer.json` and the header of
//! its weights), shared by the files that read them.

use crate::error::Error;

/// A checkpoint that does not fit its config, by the config key it concerns: bad input
/// ([`Error::Spec`] at that key when a spec is at hand, else [`Error::Config`]; exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointError {
    pub key: &'static str,
    pub message: String,
}

impl CheckpointError {
    pub(crate) fn at(key: &'static str, message: impl Into<String>) -> CheckpointError {
        CheckpointError { key, message: message.into() }
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Error {
        Error::Config { key: e.key.into(), message: e.message }
    }
}
