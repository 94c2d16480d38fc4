//! Exact and MinHash-LSH near-duplicate removal.
//!
//! `pipeline::run` is the file-to-file job; `dedup_texts` runs the same decision on in-memory texts.

pub mod cluster;
pub mod config;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod workfiles;

pub use crate::control::Control;
pub use cluster::{Decision, Reason};
pub use config::{DedupConfig, KeepPolicy, OnError, Verify};
pub use pipeline::run;
pub use report::Report;

use crate::band_index::BandIndex;
use crate::error::Result;
use crate::lsh::band_hashes;
use crate::shingle::{jaccard, shingle_set};
use crate::sketch::{Scratch, Sketcher, estimate_jaccard};
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

/// Result of deduplicating in-memory texts.
pub struct TextsResult {
    pub decision: Decision,
    /// Candidate pairs that joined a cluster (after verification).
    pub pairs: Vec<(u32, u32)>,
}

/// Deduplicate `texts` in memory with the same rules as the file pipeline. `keys` feeds the
/// `max_column` policy.
pub fn dedup_texts<S: AsRef<str> + Sync>(
    texts: &[S],
    keys: Option<&[f64]>,
    cfg: &DedupConfig,
) -> Result<TextsResult> {
    cfg.validate()?;
    let sketcher = Sketcher::new(&cfg.sketch)?;
    let params = cfg.lsh_params();
    let k = cfg.sketch.num_perm;
    let n = texts.len();
    let mut sigs = vec![0u32; n * k];
    let mut table = cluster::DocTable::with_capacity(n);
    let rows: Vec<(u128, u64, u32)> = sigs
        .par_chunks_mut(k)
        .zip(texts.par_iter())
        .map_init(Scratch::default, |scratch, (sig, text)| {
            let text = text.as_ref();
            let shingles = sketcher.sign_and_normalize(text, scratch, sig);
            (
                xxh3_128(scratch.normalized.as_bytes()),
                text.len() as u64,
                shingles as u32,
            )
        })
        .collect();
    for (i, (exact, len, shingles)) in rows.into_iter().enumerate() {
        table.push(exact, len, keys.map_or(f64::NAN, |k| k[i]), shingles);
    }
    let mut uf = table.exact_union_find(cfg.exact);
    let mut pairs = Vec::new();
    if cfg.near {
        let reps = table.near_candidates(&mut uf);
        let dir = std::env::temp_dir();
        let mut index = BandIndex::new(u64::MAX / 2, &dir, 0)?;
        let mut keys_buf = vec![0u64; params.bands];
        for &d in &reps {
            band_hashes(
                &sigs[d as usize * k..(d as usize + 1) * k],
                params,
                &mut keys_buf,
            );
            index.push(d, &keys_buf)?;
        }
        let (cands, _) = index.candidate_pairs()?;
        pairs = match cfg.verify {
            Verify::None => cands,
            Verify::Signature => cands
                .into_par_iter()
                .filter(|&(a, b)| {
                    let sa = &sigs[a as usize * k..(a as usize + 1) * k];
                    let sb = &sigs[b as usize * k..(b as usize + 1) * k];
                    estimate_jaccard(sa, sb) >= cfg.threshold
                })
                .collect(),
            Verify::Exact => cands
                .into_par_iter()
                .filter(|&(a, b)| {
                    let norm = |i: u32| {
                        crate::normalize::normalize(
                            texts[i as usize].as_ref(),
                            &cfg.sketch.normalize,
                        )
                    };
                    let sa = shingle_set(&norm(a), cfg.sketch.ngram);
                    let sb = shingle_set(&norm(b), cfg.sketch.ngram);
                    jaccard(&sa, &sb) >= cfg.threshold
                })
                .collect(),
        };
        for &(a, b) in &pairs {
            uf.union(a, b);
        }
    }
    let decision = table.decide(uf.labels(), cfg.keep);
    Ok(TextsResult { decision, pairs })
}
