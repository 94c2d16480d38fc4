//! How one source's documents become samples of `seq_len + 1` tokens.
//!
//! - Concatenate and chunk: each epoch shuffles the documents, concatenates them, and cuts the stream
//!   every `seq_len` tokens (consecutive samples share one token, so every token is a label once).
//!   No padding; a document that crosses a cut is split.
//! - Best fit (Ding et al. 2024, "Fewer Truncations Improve Language Modeling"): documents longer
//!   than a sample are cut into sample-sized chunks, then every chunk goes, largest first, into the
//!   fullest sample it still fits (best-fit decreasing). Only documents longer than a sample are
//!   split; the price is padding. The packing is done once per source; epochs reorder its samples.

use super::rng::{SplitMix64, permutation};

/// A source's selected documents: where each one lies in the shards.
#[derive(Debug, Default)]
pub struct Docs {
    pub shard: Vec<u32>,
    pub offset: Vec<u64>,
    pub len: Vec<u32>,
}

impl Docs {
    #[must_use]
    pub fn tokens(&self) -> u64 {
        self.len.iter().map(|&l| u64::from(l)).sum()
    }
}

/// A piece of one document inside a sample: `len` tokens from token `start` of document `doc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub doc: u32,
    pub start: u32,
    pub len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    Concat,
    BestFit,
}

/// What packing costs, for the report: documents split across samples, padding, tokens unused.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PackingStats {
    pub samples_per_epoch: u64,
    pub documents: u64,
    pub tokens: u64,
    pub truncated_documents: u64,
    pub padding_tokens: u64,
    /// Tokens an epoch leaves out (the concatenated stream's tail after the last full sample).
    pub dropped_tokens: u64,
}

/// The samples of one epoch of a concatenated source.
#[derive(Debug)]
pub struct ConcatEpoch {
    /// Documents in stream order.
    order: Vec<u32>,
    /// `start[i]`: stream position of `order[i]`; one extra entry for the end.
    start: Vec<u64>,
    /// Sample `j` of the epoch is the chunk `chunk[j]` of the stream.
    chunk: Vec<u32>,
}

/// Concatenate-and-chunk samples per epoch: `(tokens - 1) / seq_len`.
#[must_use]
pub fn concat_samples(tokens: u64, seq_len: u32) -> u64 {
    tokens.saturating_sub(1) / u64::from(seq_len)
}

impl ConcatEpoch {
    #[must_use]
    pub fn build(
        docs: &Docs,
        seq_len: u32,
        rng_doc: &mut SplitMix64,
        rng_sample: &mut SplitMix64,
    ) -> Self {
        let order = permutation(docs.len.len(), rng_doc);
        let mut start = Vec::with_capacity(order.len() + 1);
        let mut pos = 0u64;
        for &d in &order {
            start.push(pos);
            pos += u64::from(docs.len[d as usize]);
        }
        start.push(pos);
        let n = concat_samples(pos, seq_len) as usize;
        ConcatEpoch {
            order,
            start,
            chunk: permutation(n, rng_sample),
        }
    }

    /// The pieces of sample `j`, `seq_len + 1` tokens in all.
    pub fn pieces(&self, j: u64, seq_len: u32, docs: &Docs, out: &mut Vec<Piece>) {
        let span = u64::from(seq_len);
        let from = u64::from(self.chunk[j as usize]) * span;
        let to = from + span + 1;
        let mut i = self.start.partition_point(|&s| s <= from) - 1;
        let mut pos = from;
        while pos < to {
            let doc = self.order[i];
            let doc_end = self.start[i] + u64::from(docs.len[doc as usize]);
            let end = doc_end.min(to);
            out.push(Piece {
                doc,
                start: (pos - self.start[i]) as u32,
                len: (end - pos) as u32,
            });
            pos = end;
            i += 1;
        }
    }

    #[must_use]
    pub fn stats(&self, docs: &Docs, seq_len: u32) -> PackingStats {
        let span = u64::from(seq_len);
        let samples = self.chunk.len() as u64;
        let used_end = samples * span + u64::from(samples > 0);
        let mut truncated = 0;
        for w in self.start.windows(2) {
            let (a, e) = (w[0], w[1]);
            // The sample that starts at or before `a` and ends last is chunk a / span.
            let c = a / span;
            if e > used_end || e > c * span + span + 1 {
                truncated += 1;
            }
        }
        let tokens = *self.start.last().unwrap_or(&0);
        PackingStats {
            samples_per_epoch: samples,
            documents: docs.len.len() as u64,
            tokens,
            truncated_documents: truncated,
            padding_tokens: 0,
            dropped_tokens: tokens - used_end.min(tokens),
        }
    }
}

/// Best-fit-decreasing packing of a source, shared by all its epochs.
#[derive(Debug)]
pub struct BestFit {
    items: Vec<Piece>,
    /// Items of sample `b` are `items[bin_start[b]..bin_start[b + 1]]`.
    bin_start: Vec<u32>,
    stats: PackingStats,
}

impl BestFit {
    #[must_use]
    pub fn build(docs: &Docs, seq_len: u32, rng: &mut SplitMix64) -> Self {
        let cap = seq_len + 1;
        // Shuffled first, so that equal-length chunks are not packed in shard order.
        let mut items = Vec::with_capacity(docs.len.len());
        let mut truncated = 0;
        for d in permutation(docs.len.len(), rng) {
            let len = docs.len[d as usize];
            truncated += u64::from(len > cap);
            let mut start = 0;
            while start < len {
                let l = (len - start).min(cap);
                items.push(Piece {
                    doc: d,
                    start,
                    len: l,
                });
                start += l;
            }
        }
        items.sort_by_key(|p| std::cmp::Reverse(p.len));

        // Open samples grouped by the room they have left; `room` finds the tightest fit.
        let mut room = FreeRoom::new(cap as usize);
        let mut open: Vec<Vec<u32>> = vec![Vec::new(); cap as usize + 1];
        let mut bin_of = Vec::with_capacity(items.len());
        let mut bins = 0u32;
        for it in &items {
            let need = it.len as usize;
            let bin = if let Some(r) = room.smallest_at_least(need) {
                let b = open[r].pop().expect("room tracks open samples");
                if open[r].is_empty() {
                    room.set(r, false);
                }
                let left = r - need;
                if left > 0 {
                    open[left].push(b);
                    room.set(left, true);
                }
                b
            } else {
                let left = cap as usize - need;
                if left > 0 {
                    open[left].push(bins);
                    room.set(left, true);
                }
                bins += 1;
                bins - 1
            };
            bin_of.push(bin);
        }
        // Group items by sample, keeping placement order inside each.
        let mut bin_start = vec![0u32; bins as usize + 1];
        for &b in &bin_of {
            bin_start[b as usize + 1] += 1;
        }
        for b in 0..bins as usize {
            bin_start[b + 1] += bin_start[b];
        }
        let mut fill = bin_start.clone();
        let mut grouped = vec![
            Piece {
                doc: 0,
                start: 0,
                len: 0
            };
            items.len()
        ];
        for (it, &b) in items.iter().zip(&bin_of) {
            grouped[fill[b as usize] as usize] = *it;
            fill[b as usize] += 1;
        }
        let tokens = docs.tokens();
        let stats = PackingStats {
            samples_per_epoch: u64::from(bins),
            documents: docs.len.len() as u64,
            tokens,
            truncated_documents: truncated,
            padding_tokens: u64::from(bins) * u64::from(cap) - tokens,
            dropped_tokens: 0,
        };
        BestFit {
            items: grouped,
            bin_start,
            stats,
        }
    }

    #[must_use]
    pub fn samples(&self) -> u64 {
        self.bin_start.len() as u64 - 1
    }

    #[must_use]
    pub fn stats(&self) -> &PackingStats {
        &self.stats
    }

    /// The pieces of packed sample `b` (at most `seq_len + 1` tokens; the rest is padding).
    #[must_use]
    pub fn pieces(&self, b: u32) -> &[Piece] {
        &self.items[self.bin_start[b as usize] as usize..self.bin_start[b as usize + 1] as usize]
    }
}

/// Which room sizes `1..=cap` have an open sample: a segment tree that finds the smallest size
/// `>= need` in O(log cap).
struct FreeRoom {
    leaves: usize,
    any: Vec<bool>,
}

impl FreeRoom {
    fn new(cap: usize) -> Self {
        let leaves = (cap + 1).next_power_of_two();
        FreeRoom {
            leaves,
            any: vec![false; 2 * leaves],
        }
    }

    fn set(&mut self, room: usize, open: bool) {
        let mut i = self.leaves + room;
        self.any[i] = open;
        while i > 1 {
            i /= 2;
            self.any[i] = self.any[2 * i] || self.any[2 * i + 1];
        }
    }

    fn smallest_at_least(&self, need: usize) -> Option<usize> {
        self.first_from(1, 0, self.leaves, need)
    }

    fn first_from(&self, node: usize, lo: usize, hi: usize, need: usize) -> Option<usize> {
        if hi <= need || !self.any[node] {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = usize::midpoint(lo, hi);
        self.first_from(2 * node, lo, mid, need)
            .or_else(|| self.first_from(2 * node + 1, mid, hi, need))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(lens: &[u32]) -> Docs {
        let mut offset = 0;
        let mut d = Docs::default();
        for &l in lens {
            d.shard.push(0);
            d.offset.push(offset);
            d.len.push(l);
            offset += u64::from(l);
        }
        d
    }

    fn lens(seed: u64, n: usize) -> Vec<u32> {
        let mut rng = SplitMix64::for_stream(&[seed]);
        (0..n)
            .map(|_| 1 + rng.below(300) as u32 + if rng.below(10) == 0 { 500 } else { 0 })
            .collect()
    }

    #[test]
    fn concat_covers_the_stream_once_with_one_shared_token_per_cut() {
        let d = docs(&lens(1, 200));
        let seq = 64;
        let e = ConcatEpoch::build(
            &d,
            seq,
            &mut SplitMix64::for_stream(&[1]),
            &mut SplitMix64::for_stream(&[2]),
        );
        let n = concat_samples(d.tokens(), seq);
        let mut seen = vec![0u32; d.tokens() as usize];
        let mut pieces = Vec::new();
        for j in 0..n {
            pieces.clear();
            e.pieces(j, seq, &d, &mut pieces);
            assert_eq!(pieces.iter().map(|p| p.len).sum::<u32>(), seq + 1);
            for p in &pieces {
                assert!(p.start + p.len <= d.len[p.doc as usize]);
                for t in 0..p.len {
                    seen[(d.offset[p.doc as usize] + u64::from(p.start + t)) as usize] += 1;
                }
            }
        }
        // Every token once, the first token of every chunk but the first twice, the tail never.
        let total: u32 = seen.iter().sum();
        assert_eq!(u64::from(total), n * u64::from(seq) + 1 + (n - 1));
        assert!(seen.iter().all(|&c| c <= 2));
    }

    #[test]
    fn best_fit_places_every_token_once_and_never_overfills() {
        let d = docs(&lens(3, 500));
        let seq = 128;
        let bf = BestFit::build(&d, seq, &mut SplitMix64::for_stream(&[5]));
        let mut seen = vec![0u32; d.tokens() as usize];
        for b in 0..bf.samples() as u32 {
            let ps = bf.pieces(b);
            assert!(ps.iter().map(|p| p.len).sum::<u32>() <= seq + 1);
            for p in ps {
                for t in 0..p.len {
                    seen[(d.offset[p.doc as usize] + u64::from(p.start + t)) as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
        let s = bf.stats();
        assert_eq!(
            s.truncated_documents,
            d.len.iter().filter(|&&l| l > seq + 1).count() as u64
        );
        // Best-fit decreasing needs at most 11/9 OPT + 1 samples; OPT >= tokens / capacity.
        let lower = d.tokens().div_ceil(u64::from(seq + 1));
        assert!(
            bf.samples() * 9 <= lower * 11 + 9,
            "{} samples, {lower} at least",
            bf.samples()
        );
    }

    #[test]
    fn best_fit_truncates_fewer_documents_than_concat() {
        let d = docs(&lens(9, 2000));
        let seq = 256;
        let e = ConcatEpoch::build(
            &d,
            seq,
            &mut SplitMix64::for_stream(&[1]),
            &mut SplitMix64::for_stream(&[2]),
        );
        let bf = BestFit::build(&d, seq, &mut SplitMix64::for_stream(&[3]));
        let (c, b) = (e.stats(&d, seq), bf.stats().clone());
        assert_eq!(
            b.truncated_documents,
            d.len.iter().filter(|&&l| l > seq + 1).count() as u64
        );
        assert!(
            b.truncated_documents * 2 < c.truncated_documents,
            "{b:?} vs {c:?}"
        );
        assert!(b.padding_tokens > 0 && c.padding_tokens == 0);
    }

    #[test]
    fn free_room_finds_the_tightest_fit() {
        let mut r = FreeRoom::new(100);
        assert_eq!(r.smallest_at_least(1), None);
        r.set(30, true);
        r.set(70, true);
        assert_eq!(r.smallest_at_least(10), Some(30));
        assert_eq!(r.smallest_at_least(30), Some(30));
        assert_eq!(r.smallest_at_least(31), Some(70));
        assert_eq!(r.smallest_at_least(71), None);
        r.set(30, false);
        assert_eq!(r.smallest_at_least(10), Some(70));
    }
}
