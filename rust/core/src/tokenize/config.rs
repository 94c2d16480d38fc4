//! Configuration of a tokenize run. Every field but the tokenizer has a default; unknown keys are an
//! error.

use crate::dedup::OnError;
use crate::error::{Error, Result};
use crate::reader::FieldConfig;

/// Type of a carried metadata column in the document tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    Bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Path of the `tokenizer.json` to use (copied into the dataset).
    pub tokenizer: String,
    /// Text and id fields; `fields.carry` is filled from `metadata`.
    pub fields: FieldConfig,
    /// Input fields carried into the document tables: `"name"` (a string column) or `"name:type"`
    /// with type `string`, `int64`, `float64` or `bool`.
    pub metadata: Vec<String>,
    /// End-of-document token (None: the first of the usual names the tokenizer has).
    pub eos_token: Option<String>,
    /// Prepend a beginning-of-document token to every document.
    pub add_bos: bool,
    pub bos_token: Option<String>,
    /// A shard closes after the document that takes it to this many tokens...
    pub shard_tokens: Option<u64>,
    /// ...or to this many bytes of token file (used when `shard_tokens` is not given).
    pub shard_bytes: u64,
    pub on_error: OnError,
    /// Worker threads (None: all cores).
    pub threads: Option<usize>,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        Self {
            tokenizer: String::new(),
            fields: FieldConfig::default(),
            metadata: Vec::new(),
            eos_token: None,
            add_bos: false,
            bos_token: None,
            shard_tokens: None,
            shard_bytes: 256 << 20,
            on_error: OnError::Raise,
            threads: None,
        }
    }
}

impl TokenizeConfig {
    pub fn validate(&self) -> Result<()> {
        if self.tokenizer.is_empty() {
            return Err(Error::Config(
                "tokenizer: a tokenizer.json path is required".into(),
            ));
        }
        if self.shard_tokens == Some(0) || self.shard_bytes == 0 {
            return Err(Error::Config("shard size must be positive".into()));
        }
        if !self.fields.carry.is_empty() {
            return Err(Error::Config(
                "fields.carry is set from metadata; list carried fields under metadata".into(),
            ));
        }
        if self.threads == Some(0) {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        let cols = self.metadata_columns()?;
        for (i, c) in cols.iter().enumerate() {
            if RESERVED_COLUMNS.contains(&c.name.as_str()) {
                return Err(Error::Config(format!(
                    "metadata column {:?} clashes with a document table column",
                    c.name
                )));
            }
            if cols[..i].iter().any(|p| p.name == c.name) {
                return Err(Error::Config(format!(
                    "metadata column {:?} listed twice",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// Parsed `metadata` specs.
    pub fn metadata_columns(&self) -> Result<Vec<MetadataColumn>> {
        self.metadata
            .iter()
            .map(|spec| {
                let (name, ty) = match spec.split_once(':') {
                    None => (spec.as_str(), ColumnType::String),
                    Some((name, ty)) => (
                        name,
                        serde_json::from_value(serde_json::Value::String(ty.to_owned())).map_err(
                            |_| {
                                Error::Config(format!(
                                    "metadata {spec:?}: type must be string, int64, float64 or bool"
                                ))
                            },
                        )?,
                    ),
                };
                if name.is_empty() {
                    return Err(Error::Config(format!(
                        "metadata {spec:?}: empty field name"
                    )));
                }
                Ok(MetadataColumn {
                    name: name.to_owned(),
                    ty,
                })
            })
            .collect()
    }

    /// The reader's field config, with the metadata fields to carry.
    pub fn reader_fields(&self) -> Result<FieldConfig> {
        let mut f = self.fields.clone();
        f.carry = self
            .metadata_columns()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        Ok(f)
    }
}

/// Columns every document table has; metadata columns may not reuse these names.
pub const RESERVED_COLUMNS: [&str; 4] = ["doc_id", "token_offset", "n_tokens", "source"];
