//! Classic k-permutation `MinHash`.
//!
//! Permutation `i` maps a 32-bit shingle hash `x` to `a_i·x + b_i mod 2^32` with random odd `a_i` and
//! random `b_i`: a bijection of the 32-bit values. The shingle hashes are xxh3 outputs, uniform and
//! independent, so each permuted set is a uniform random sample and its minimum collides with
//! probability equal to the Jaccard similarity; distinct random multipliers keep the k minima close to
//! independent (the tests check the estimates' spread against the binomial error). Values are 32-bit,
//! like datasketch's and datatrove's (`MAX_HASH = 2^32 - 1`). The loop is permutation-major: each
//! permutation's minimum over the shingles is one 32-bit vector reduction (8 lanes with AVX2, chosen
//! at runtime).

/// Deterministic 64-bit generator for permutation parameters (splitmix64).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
pub struct Permutations {
    a: Vec<u32>,
    b: Vec<u32>,
}

impl Permutations {
    #[must_use]
    pub fn new(k: usize, seed: u64) -> Self {
        let mut state = seed;
        let a = (0..k)
            .map(|_| (splitmix64(&mut state) >> 32) as u32 | 1)
            .collect();
        let b = (0..k)
            .map(|_| (splitmix64(&mut state) >> 32) as u32)
            .collect();
        Self { a, b }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.a.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Fill `sig` (length k) with the minima of every permutation over `hashes` (32-bit shingle
    /// hashes). An empty `hashes` leaves `u32::MAX` everywhere.
    pub fn sign(&self, hashes: &[u32], sig: &mut [u32]) {
        assert_eq!(sig.len(), self.a.len());
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { sign_avx2(&self.a, &self.b, hashes, sig) };
                return;
            }
        }
        sign_generic(&self.a, &self.b, hashes, sig);
    }
}

// Always inlined so the AVX2 wrapper compiles its own vectorized copy of the loop.
#[allow(clippy::inline_always)]
#[inline(always)]
fn sign_generic(a: &[u32], b: &[u32], hashes: &[u32], sig: &mut [u32]) {
    sig.fill(u32::MAX);
    // Tiles of 2048 hashes (8 KiB) stay in L1 while all k permutations sweep them; without tiling
    // a long document's hashes would stream from L2/L3 k times.
    for tile in hashes.chunks(2048) {
        for ((&ai, &bi), out) in a.iter().zip(b).zip(sig.iter_mut()) {
            // Sixteen independent accumulators: two AVX2 registers of minima in flight.
            let mut acc = [u32::MAX; 16];
            let chunks = tile.chunks_exact(16);
            let rest = chunks.remainder();
            for chunk in chunks {
                for (slot, &x) in acc.iter_mut().zip(chunk) {
                    *slot = (*slot).min(ai.wrapping_mul(x).wrapping_add(bi));
                }
            }
            let mut m = acc.iter().copied().min().unwrap_or(u32::MAX);
            for &x in rest {
                m = m.min(ai.wrapping_mul(x).wrapping_add(bi));
            }
            *out = (*out).min(m);
        }
    }
}

/// Explicit AVX2: left to itself the compiler vectorizes `sign_generic` across its accumulators with
/// strided lane inserts, four times slower. Two permutations share each load of eight hashes, and
/// four accumulators per permutation keep the multiply latency hidden.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sign_avx2(a: &[u32], b: &[u32], hashes: &[u32], sig: &mut [u32]) {
    sig.fill(u32::MAX);
    // Tiles of 4096 hashes (16 KiB) stay in L1 while all k permutations sweep them.
    for tile in hashes.chunks(4096) {
        // SAFETY: the caller checked AVX2, which is all `sign_tile_avx2` needs.
        unsafe { sign_tile_avx2(a, b, tile, sig) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sign_tile_avx2(a: &[u32], b: &[u32], hashes: &[u32], sig: &mut [u32]) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_min_epu32, _mm256_mullo_epi32,
        _mm256_set1_epi32, _mm256_storeu_si256,
    };
    let body = hashes.len() / 32 * 32;
    let (blocks, rest) = hashes.split_at(body);
    let k = a.len();
    let min_lanes = |accs: &[__m256i; 4]| -> u32 {
        let mut lanes = [0u32; 8];
        let m = _mm256_min_epu32(
            _mm256_min_epu32(accs[0], accs[1]),
            _mm256_min_epu32(accs[2], accs[3]),
        );
        // SAFETY: `lanes` is 32 bytes, the width of one unaligned store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), m) };
        lanes.into_iter().min().unwrap_or(u32::MAX)
    };
    let mut i = 0;
    while i < k {
        // Two permutations per pass; an odd k repeats the last one.
        let j = (i + 1).min(k - 1);
        let (a0, b0) = (
            _mm256_set1_epi32(a[i] as i32),
            _mm256_set1_epi32(b[i] as i32),
        );
        let (a1, b1) = (
            _mm256_set1_epi32(a[j] as i32),
            _mm256_set1_epi32(b[j] as i32),
        );
        let mut m0 = [_mm256_set1_epi32(-1); 4];
        let mut m1 = [_mm256_set1_epi32(-1); 4];
        for block in blocks.chunks_exact(32) {
            for (q, lanes) in block.chunks_exact(8).enumerate() {
                // SAFETY: `lanes` holds exactly eight u32s, one unaligned 256-bit load.
                let x = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
                m0[q] = _mm256_min_epu32(m0[q], _mm256_add_epi32(_mm256_mullo_epi32(x, a0), b0));
                m1[q] = _mm256_min_epu32(m1[q], _mm256_add_epi32(_mm256_mullo_epi32(x, a1), b1));
            }
        }
        let mut s0 = min_lanes(&m0);
        let mut s1 = min_lanes(&m1);
        for &x in rest {
            s0 = s0.min(a[i].wrapping_mul(x).wrapping_add(b[i]));
            s1 = s1.min(a[j].wrapping_mul(x).wrapping_add(b[j]));
        }
        sig[i] = sig[i].min(s0);
        sig[j] = sig[j].min(s1);
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_and_generic_agree() {
        let mut state = 1u64;
        // Odd k (the kernel pairs permutations), and lengths below one block, with a remainder,
        // and over several tiles.
        for (k, len) in [(64, 1003), (7, 5), (129, 9000), (1, 33)] {
            let perms = Permutations::new(k, 7);
            let hashes: Vec<u32> = (0..len).map(|_| splitmix64(&mut state) as u32).collect();
            let mut s1 = vec![0; k];
            let mut s2 = vec![0; k];
            perms.sign(&hashes, &mut s1);
            sign_generic(&perms.a, &perms.b, &hashes, &mut s2);
            assert_eq!(s1, s2, "k={k} len={len}");
        }
        let perms = Permutations::new(64, 7);
        let mut s1 = vec![0; 64];
        perms.sign(&[], &mut s1);
        assert!(s1.iter().all(|&v| v == u32::MAX));
    }
}
