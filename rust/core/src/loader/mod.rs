//! The streaming loader's index: which tokens make global sample `k` (DESIGN §4).
//!
//! - `mixture`: source of every global sample (weights exact per window, curriculum phases).
//! - `packing`: a source's documents → samples of `seq_len + 1` tokens (concatenate or best fit).
//! - `index`: the two together, epochs and their bounds; `batch`: samples → training arrays.
//! - `shards`: the token files, memory-mapped.
//!
//! Everything is a pure function of the spec and the global sample number, so a loader resumes
//! from one counter and any world size reads the same global sequence.

mod batch;
mod index;
mod mixture;
mod packing;
mod repeat;
mod rng;
mod shards;

pub use batch::Batch;
pub use index::{Plan, SampleIndex, SourcePlan};
pub use mixture::Mixture;
pub use packing::{Docs, Packing, PackingStats, Piece};
pub use repeat::RepeatFilter;

use crate::tokenize::manifest::Dtype;
use std::path::PathBuf;

/// Everything that decides the global sample sequence.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoaderSpec {
    pub seq_len: u32,
    pub packing: Packing,
    pub seed: u64,
    /// Mixture weights hold exactly over every window of this many samples.
    pub mixture_window: u32,
    pub sources: Vec<SourceSpec>,
    pub phases: Vec<PhaseSpec>,
    #[serde(default)]
    pub repeat_filter: Option<RepeatFilter>,
    /// Every shard any source reads; `Docs::shard` indexes this list.
    pub shards: Vec<ShardSpec>,
    /// Input id at padded positions (their labels are always ignored).
    #[serde(default)]
    pub pad_id: u32,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceSpec {
    pub name: String,
    /// Upper bound on epochs over this source (fractions allowed); `None`: unbounded.
    #[serde(default)]
    pub max_epochs: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PhaseSpec {
    /// Length in samples; `None` only for an open-ended last phase.
    pub samples: Option<u64>,
    /// One weight per source, in `sources` order.
    pub weights: Vec<f64>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ShardSpec {
    pub path: PathBuf,
    pub dtype: Dtype,
    pub tokens: u64,
}
