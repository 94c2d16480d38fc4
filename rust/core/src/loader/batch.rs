//! Samples → the arrays a training step takes: inputs, labels (-100 where nothing is to be
//! predicted), position ids that restart at every document, and `cu_seqlens` for
//! intra-document attention over the flattened batch.

use super::index::SampleIndex;
use super::packing::Piece;
use crate::error::{Error, Result};

/// `count` samples of `seq_len` positions each, row-major.
#[derive(Debug, Default)]
pub struct Batch {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub position_ids: Vec<i64>,
    /// Start of every document piece in the flattened batch, then its total length.
    pub cu_seqlens: Vec<i32>,
    /// Source of each sample.
    pub source: Vec<u16>,
    /// Samples the repeat filter removed from the loss (their labels are all -100).
    pub filtered: Vec<bool>,
}

pub const IGNORE: i64 = -100;

impl SampleIndex {
    /// Global samples `first..first + count`.
    pub fn batch(&self, first: u64, count: usize) -> Result<Batch> {
        let last = first + count as u64;
        if let Some(end) = self.end()
            && last > end
        {
            return Err(Error::Config(format!(
                "samples {first}..{last} reach past the loader's {end} samples"
            )));
        }
        let l = self.spec.seq_len as usize;
        let mut b = Batch {
            input_ids: vec![i64::from(self.spec.pad_id); count * l],
            labels: vec![IGNORE; count * l],
            position_ids: vec![0; count * l],
            cu_seqlens: Vec::with_capacity(count * 4 + 1),
            source: Vec::with_capacity(count),
            filtered: Vec::with_capacity(count),
        };
        let filter = self.repeat_filter();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut seq: Vec<u32> = Vec::with_capacity(l + 1);
        for (row, k) in (first..last).enumerate() {
            pieces.clear();
            seq.clear();
            let (s, _) = self.pieces(k, &mut pieces);
            let docs = &self.sources[s].docs;
            let base = row * l;
            for p in &pieces {
                let d = p.doc as usize;
                let at = seq.len();
                if at < l {
                    b.cu_seqlens.push((base + at) as i32);
                    for (i, pos) in b.position_ids[base + at..base + (at + p.len as usize).min(l)]
                        .iter_mut()
                        .enumerate()
                    {
                        *pos = i as i64;
                    }
                }
                self.shards.read(
                    docs.shard[d],
                    docs.offset[d] + u64::from(p.start),
                    p.len,
                    &mut seq,
                );
            }
            let fill = seq.len();
            for (i, &t) in seq.iter().take(l).enumerate() {
                b.input_ids[base + i] = i64::from(t);
            }
            for (i, &t) in seq.iter().skip(1).enumerate() {
                b.labels[base + i] = i64::from(t);
            }
            if fill < l {
                // Padding is one segment of its own.
                b.cu_seqlens.push((base + fill) as i32);
                for (i, pos) in b.position_ids[base + fill..base + l].iter_mut().enumerate() {
                    *pos = i as i64;
                }
            }
            let repetitive = filter.is_some_and(|f| f.is_repetitive(&seq));
            if repetitive {
                b.labels[base..base + l].fill(IGNORE);
            }
            b.source.push(s as u16);
            b.filtered.push(repetitive);
        }
        b.cu_seqlens.push((count * l) as i32);
        Ok(b)
    }
}
