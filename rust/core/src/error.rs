//! The one error type of the core. Every variant names the file and, where it applies, the line or
//! byte offset, so a user can find the bad record without re-running anything.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written (the OS error says why).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of a JSONL file is not a JSON object.
    #[error("{path}:{line}: malformed JSON: {message}")]
    Json {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A record's bytes are not UTF-8; `offset` is the byte offset of the first bad byte in the line.
    #[error("{path}:{line}: invalid UTF-8 at byte {offset} of the line")]
    Utf8 {
        path: PathBuf,
        line: u64,
        offset: usize,
    },
    /// The record has no usable value for a required field.
    #[error("{path}:{line}: {message}")]
    Field {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A compressed stream ended early or is corrupt; `offset` counts decompressed bytes read so far.
    #[error(
        "{path}: compressed stream is truncated or corrupt after line {line} (decompressed offset {offset}): {message}"
    )]
    Truncated {
        path: PathBuf,
        line: u64,
        offset: u64,
        message: String,
    },
    /// A Parquet file could not be decoded or has the wrong schema.
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    /// A `tokenizer.json` cannot be loaded or lacks a token the job needs.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// A token dataset file does not match its manifest (checksum, size, offsets, EOS); the message
    /// names the byte offset or document where it can.
    #[error("{path}: corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A configuration value is wrong; nothing was read or written.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The input names no file (empty glob, empty directory).
    #[error("no input files: {0}")]
    NoInput(String),
    /// The run was cancelled (Ctrl-C); finished work is kept and a rerun resumes from it.
    #[error("interrupted; finished files are kept and a rerun resumes from them")]
    Interrupted,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The line number the error points at, when it points at one.
    #[must_use]
    pub fn line(&self) -> Option<u64> {
        match self {
            Error::Json { line, .. }
            | Error::Utf8 { line, .. }
            | Error::Field { line, .. }
            | Error::Truncated { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// Short machine-readable kind, used in rejects files and reports.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Json { .. } => "malformed_json",
            Error::Utf8 { .. } => "invalid_utf8",
            Error::Field { .. } => "bad_field",
            Error::Truncated { .. } => "truncated",
            Error::Parquet { .. } => "parquet",
            Error::Tokenizer { .. } => "tokenizer",
            Error::Corrupt { .. } => "corrupt",
            Error::Config(_) => "config",
            Error::NoInput(_) => "no_input",
            Error::Interrupted => "interrupted",
        }
    }
}
