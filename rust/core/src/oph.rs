//! One-permutation hashing with optimal densification (Shrivastava, ICML 2017).
//!
//! Each shingle hash picks one of k bins with its high 32 bits and competes for that bin's minimum
//! with its low 32 bits: one hash per shingle instead of k, so the cost is O(shingles + k). Bins no
//! shingle fell into borrow the value of a non-empty bin chosen by a hash of (bin, attempt) that is the
//! same for every document, which keeps the collision probability of each bin equal to the Jaccard
//! similarity.

use crate::minhash::splitmix64;

#[derive(Clone, Debug)]
pub struct OnePermutation {
    k: usize,
    /// Precomputed probe sequences for empty bins: `probes[i * PROBES + t]` is the t-th bin tried
    /// for empty bin i. Past the table, probes are computed on the fly.
    probes: Vec<u32>,
    seed: u64,
}

const PROBES: usize = 8;

impl OnePermutation {
    #[must_use]
    pub fn new(k: usize, seed: u64) -> Self {
        let mut probes = Vec::with_capacity(k * PROBES);
        for i in 0..k {
            for t in 0..PROBES {
                probes.push(probe(seed, i, t, k));
            }
        }
        Self { k, probes, seed }
    }

    /// Sketch a document from its 64-bit shingle hashes into `sig` (length k).
    pub fn sign(&self, hashes: &[u64], sig: &mut [u32]) {
        assert_eq!(sig.len(), self.k);
        sig.fill(u32::MAX);
        if hashes.is_empty() {
            return;
        }
        let mut filled = vec![false; self.k];
        let k = self.k as u64;
        for &h in hashes {
            let bin = (((h >> 32) * k) >> 32) as usize;
            let v = h as u32;
            filled[bin] = true;
            if v < sig[bin] {
                sig[bin] = v;
            }
        }
        if filled.iter().all(|&f| f) {
            return;
        }
        // Densify from the values of the originally filled bins only, so the result does not
        // depend on the order bins are visited in.
        let original: Vec<u32> = sig.to_vec();
        for i in 0..self.k {
            if filled[i] {
                continue;
            }
            let mut t = 0;
            loop {
                let j = if t < PROBES {
                    self.probes[i * PROBES + t] as usize
                } else {
                    probe(self.seed, i, t, self.k) as usize
                };
                if filled[j] {
                    sig[i] = original[j];
                    break;
                }
                t += 1;
            }
        }
    }
}

fn probe(seed: u64, bin: usize, attempt: usize, k: usize) -> u32 {
    let mut s = seed ^ ((bin as u64) << 32) ^ attempt as u64;
    let h = splitmix64(&mut s);
    (((h >> 32) * k as u64) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densified_sketch_has_no_empty_bins() {
        let oph = OnePermutation::new(128, 1);
        let mut sig = vec![0; 128];
        oph.sign(&[0xDEAD_BEEF_0000_0001, 0x1234_5678_9ABC_DEF0], &mut sig);
        assert!(sig.iter().all(|&v| v == 1 || v == 0x9ABC_DEF0));
        oph.sign(&[], &mut sig);
        assert!(sig.iter().all(|&v| v == u32::MAX));
    }
}
