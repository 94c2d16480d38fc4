//! Core errors → Python exceptions: one base class, a subclass per kind of failure, and the OS
//! error classes (`FileNotFoundError`, `PermissionError`, ...) for I/O.

use pyo3::exceptions::{
    PyException, PyFileExistsError, PyFileNotFoundError, PyIsADirectoryError, PyKeyboardInterrupt,
    PyOSError, PyPermissionError,
};
use pyo3::prelude::*;
use shardforge_core::Error;

pyo3::create_exception!(
    shardforge._core,
    ShardforgeError,
    PyException,
    "Base class of every shardforge error."
);
pyo3::create_exception!(
    shardforge._core,
    ConfigError,
    ShardforgeError,
    "A configuration value is wrong; nothing was read or written."
);
pyo3::create_exception!(
    shardforge._core,
    NoInputError,
    ShardforgeError,
    "The inputs name no readable file."
);
pyo3::create_exception!(
    shardforge._core,
    MalformedRecordError,
    ShardforgeError,
    "A record is not valid JSON, not UTF-8, or lacks a required field."
);
pyo3::create_exception!(
    shardforge._core,
    TruncatedInputError,
    ShardforgeError,
    "A compressed input stream ends early or is corrupt."
);
pyo3::create_exception!(
    shardforge._core,
    ParquetError,
    ShardforgeError,
    "A Parquet file cannot be decoded or has the wrong schema."
);

pyo3::create_exception!(
    shardforge._core,
    TokenizerError,
    ShardforgeError,
    "A tokenizer.json cannot be loaded or lacks a token the job needs."
);
pyo3::create_exception!(
    shardforge._core,
    CorruptDatasetError,
    ShardforgeError,
    "A token dataset file does not match its manifest."
);

pub fn to_pyerr(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            std::io::ErrorKind::AlreadyExists => PyFileExistsError::new_err(msg),
            std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(msg),
            _ => PyOSError::new_err(msg),
        },
        Error::Json { .. } | Error::Utf8 { .. } | Error::Field { .. } => {
            MalformedRecordError::new_err(msg)
        }
        Error::Truncated { .. } => TruncatedInputError::new_err(msg),
        Error::Parquet { .. } => ParquetError::new_err(msg),
        Error::Tokenizer { .. } => TokenizerError::new_err(msg),
        Error::Corrupt { .. } => CorruptDatasetError::new_err(msg),
        Error::Config(_) => ConfigError::new_err(msg),
        Error::NoInput(_) => NoInputError::new_err(msg),
        Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
    }
}
