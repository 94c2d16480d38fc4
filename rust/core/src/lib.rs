//! shardforge-core: the pure-Rust engine of shardforge (no Python here; see `rust/python`).
//!
//! - `reader`, `input`: streaming JSONL (plain/gz/zst) and Parquet ingest with per-record errors;
//!   `json_table` turns JSON records into Arrow batches for Parquet output.
//! - `normalize`, `shingle`, `minhash`, `oph`, `sketch`: text → word n-grams → `MinHash` signatures
//!   (`mt19937` draws the classic parameters as datasketch and datatrove do).
//! - `lsh`, `band_index`, `union_find`: candidate pairs and clusters.
//! - `dedup`: the exact + near-duplicate removal job and its in-memory twin.
//! - `filter`: Gopher, C4 and `FineWeb` quality rules and their file job.

pub mod atomic;
pub mod band_index;
pub mod control;
pub mod decontam;
pub mod dedup;
pub mod error;
pub mod filter;
pub mod input;
pub mod job;
pub mod json_table;
pub mod loader;
pub mod lsh;
pub mod minhash;
pub mod mt19937;
pub mod normalize;
pub mod oph;
pub mod reader;
pub mod shingle;
pub mod sketch;
#[cfg(test)]
mod test_rng;
pub mod tokenize;
pub mod union_find;

pub use error::{Error, Result};
