//! `manifest.json` of a token dataset (DESIGN §3) and the checksums it records.

use super::config::MetadataColumn;
use super::encoder::SpecialIds;
use crate::error::{Error, Result};
use crate::reader::FieldConfig;
use std::io::Read;
use std::path::Path;
use xxhash_rust::xxh3::Xxh3;

pub const FORMAT: &str = "shardforge.tokens";
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const TOKENIZER: &str = "tokenizer.json";

/// Width of the stored token ids: `uint16` when every id fits, else `uint32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    Uint16,
    Uint32,
}

impl Dtype {
    #[must_use]
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Dtype::Uint16
        } else {
            Dtype::Uint32
        }
    }

    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Dtype::Uint16 => 2,
            Dtype::Uint32 => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenizerInfo {
    /// Always `tokenizer.json` (the copy inside the dataset).
    pub file: String,
    /// File name of the tokenizer the job was given.
    pub name: String,
    pub sha256: String,
    pub vocab_size: usize,
}

/// One shard: its two files, their sizes and xxh3-64 checksums (16 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardEntry {
    pub index: usize,
    pub tokens_file: String,
    pub table_file: String,
    pub documents: u64,
    pub tokens: u64,
    pub tokens_bytes: u64,
    pub tokens_xxh3: String,
    pub table_bytes: u64,
    pub table_xxh3: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub documents: u64,
    pub tokens: u64,
    pub shards: u64,
    /// Input records skipped as bad (`on_error="skip"`; listed in `rejects.jsonl`).
    pub rejected: u64,
    /// UTF-8 bytes of document text tokenized.
    pub text_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub tokenizer: TokenizerInfo,
    pub dtype: Dtype,
    pub special_ids: SpecialIds,
    /// Whether every document starts with the BOS id (every document always ends with EOS).
    pub bos_per_document: bool,
    pub fields: FieldConfig,
    pub metadata_columns: Vec<MetadataColumn>,
    pub totals: Totals,
    pub shards: Vec<ShardEntry>,
    /// Fingerprint of the inputs and config that produced the dataset (a rerun with the same one
    /// has nothing to do).
    pub fingerprint: String,
    pub created_by: String,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: format!("not a token dataset manifest: {e}"),
        })?;
        if m.format != FORMAT || m.version != VERSION {
            return Err(Error::Corrupt {
                path,
                message: format!(
                    "format {:?} version {} (this build reads {FORMAT:?} version {VERSION})",
                    m.format, m.version
                ),
            });
        }
        Ok(m)
    }
}

#[must_use]
pub fn hex64(v: u64) -> String {
    format!("{v:016x}")
}

/// xxh3-64 and size of a whole file.
pub fn file_xxh3(path: &Path) -> Result<(u64, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.digest(), n))
}

#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in d {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}
