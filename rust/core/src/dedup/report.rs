//! The JSON report of a dedup run.

use crate::band_index::IndexStats;
use crate::lsh::LshParams;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub sketch_s: f64,
    pub cluster_s: f64,
    pub write_s: f64,
    pub total_s: f64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub files: usize,
    /// Input files whose sketches came from an earlier, interrupted run.
    pub files_resumed: usize,
    /// Output files that an earlier run had already written.
    pub outputs_resumed: usize,
    pub docs_in: u64,
    pub docs_out: u64,
    pub exact_duplicates: u64,
    pub near_duplicates: u64,
    /// Bad records skipped (`on_error = "skip"`), listed in `rejects.jsonl`.
    pub rejects: u64,
    /// Input files that ended early (truncated stream) and were kept up to the damage.
    pub incomplete_files: u64,
    pub clusters: u64,
    pub largest_cluster: u64,
    pub candidate_pairs: u64,
    pub joined_pairs: u64,
    pub input_bytes: u64,
    pub text_bytes_in: u64,
    pub text_bytes_out: u64,
    pub lsh: Option<LshParams>,
    pub index: IndexStats,
    /// Band-index bytes per near-dedup document at its peak.
    pub index_bytes_per_doc: f64,
    /// Bytes per document held in memory for clustering (hashes, lengths, keys, labels).
    pub resident_bytes_per_doc: f64,
    pub peak_rss_bytes: u64,
    pub threads: usize,
    pub timings: Timings,
    pub output_files: Vec<String>,
}
