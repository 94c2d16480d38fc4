//! Configuration of a dedup run. Every field has a default; unknown keys are an error.

use super::output::OutputFormat;
use crate::error::{Error, Result};
use crate::lsh::{LshParams, optimal_params};
use crate::reader::FieldConfig;
use crate::sketch::SketchConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepPolicy {
    /// The document seen first (input order: sorted files, then lines).
    First,
    /// The longest text (ties: first seen).
    Longest,
    /// The highest value of `fields.key_field` (missing values rank lowest; ties: first seen).
    MaxColumn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Every LSH candidate pair joins a cluster (datasketch and datatrove behaviour).
    None,
    /// Pairs join only if their signature estimate of Jaccard reaches the threshold.
    Signature,
    /// Pairs join only if the exact Jaccard of their shingle sets reaches the threshold (rereads
    /// the candidate documents).
    Exact,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop at the first bad record with an error naming its file and line.
    Raise,
    /// Count bad records, write them to `rejects.jsonl`, go on.
    Skip,
}

macro_rules! from_str_via_serde {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_owned()))
                    .map_err(|_| Error::Config(format!("unknown {} {s:?}", stringify!($t))))
            }
        }
    )*};
}
from_str_via_serde!(KeepPolicy, Verify, OnError);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    pub fields: FieldConfig,
    pub sketch: SketchConfig,
    /// Remove exact duplicates (xxh3-128 of the normalized text).
    pub exact: bool,
    /// Remove near duplicates (MinHash-LSH).
    pub near: bool,
    /// Jaccard threshold of near duplicates; picks (bands, rows) unless they are given.
    pub threshold: f64,
    pub bands: Option<usize>,
    pub rows: Option<usize>,
    pub verify: Verify,
    pub keep: KeepPolicy,
    pub on_error: OnError,
    /// Format of the deduplicated corpus: each input's own, or Parquet.
    pub output_format: OutputFormat,
    /// Bytes the band index may hold in memory before it spills to disk.
    pub memory_budget: u64,
    /// Worker threads (None: all cores).
    pub threads: Option<usize>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            fields: FieldConfig::default(),
            sketch: SketchConfig::default(),
            exact: true,
            near: true,
            threshold: 0.8,
            bands: None,
            rows: None,
            verify: Verify::None,
            keep: KeepPolicy::First,
            on_error: OnError::Raise,
            output_format: OutputFormat::Input,
            memory_budget: 4 << 30,
            threads: None,
        }
    }
}

impl DedupConfig {
    pub fn validate(&self) -> Result<()> {
        self.sketch.validate()?;
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::Config(format!(
                "threshold must be in (0, 1], got {}",
                self.threshold
            )));
        }
        match (self.bands, self.rows) {
            (Some(b), Some(r)) if b == 0 || r == 0 || b * r > self.sketch.num_perm => {
                return Err(Error::Config(format!(
                    "bands × rows = {b} × {r} must be positive and at most num_perm = {}",
                    self.sketch.num_perm
                )));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Config("give both bands and rows, or neither".into()));
            }
            _ => {}
        }
        if self.keep == KeepPolicy::MaxColumn && self.fields.key_field.is_none() {
            return Err(Error::Config(
                "keep = \"max_column\" needs fields.key_field".into(),
            ));
        }
        if self.fields.text_field.is_empty() {
            return Err(Error::Config("fields.text_field is empty".into()));
        }
        if self.threads == Some(0) {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        Ok(())
    }

    #[must_use]
    pub fn lsh_params(&self) -> LshParams {
        match (self.bands, self.rows) {
            (Some(bands), Some(rows)) => LshParams { bands, rows },
            _ => optimal_params(self.threshold, self.sketch.num_perm, 0.5, 0.5),
        }
    }
}
