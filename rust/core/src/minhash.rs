//! Classic k-permutation `MinHash`, bit-compatible with datasketch and datatrove.
//!
//! Each scheme draws its permutation parameters from numpy's `RandomState(seed)` (reimplemented in
//! `mt19937`) exactly as the peer does, and applies the same map to a 32-bit shingle hash, so the
//! same hashes give the same signature:
//! - `Affine32` (datasketch ≥ 2.0's default): `x` is pre-mixed once with the `MurmurHash3` finalizer,
//!   then permutation `i` maps it to `a_i·x + b_i mod 2^32` with odd `a_i`, a bijection of the
//!   32-bit values. The loop is permutation-major: each permutation's minimum over the shingles is
//!   a 32-bit vector reduction (16 lanes with AVX-512, 8 with AVX2, chosen at run time).
//! - `Legacy` (datasketch < 2.0) and `Datatrove`: `((a_i·x + b_i) mod 2^64) mod (2^61 − 1)`, keeping
//!   the low 32 bits. The two differ only in the order the parameters are drawn. 64-bit lanes make
//!   this about five (AVX-512) to eight (AVX2) times the work of `Affine32`.

use crate::mt19937::RandomState;

/// Deterministic 64-bit generator (splitmix64), for the other sketches' parameters and for tests.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which peer's permutations the classic sketch reproduces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// datasketch ≥ 2.0 (`scheme="affine32"`, its default).
    #[default]
    Affine32,
    /// datasketch < 2.0 (`scheme="legacy"`): parameters drawn in (a, b) pairs.
    Legacy,
    /// datatrove's `MinhashDedupSignature` with 32-bit hashes: every a, then every b.
    Datatrove,
}

const MERSENNE_61: u64 = (1 << 61) - 1;

/// `MurmurHash3`'s 32-bit finalizer: a fixed bijection that datasketch applies before `Affine32`.
#[must_use]
#[inline]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

#[derive(Clone, Debug)]
enum Params {
    Affine32 { a: Vec<u32>, b: Vec<u32> },
    Mersenne { a: Vec<u64>, b: Vec<u64> },
}

#[derive(Clone, Debug)]
pub struct Permutations {
    params: Params,
}

impl Permutations {
    /// The `k` permutations `scheme`'s peer draws from `RandomState(seed)`.
    #[must_use]
    pub fn new(k: usize, seed: u32, scheme: Scheme) -> Self {
        let mut rs = RandomState::new(seed);
        let params = match scheme {
            Scheme::Affine32 => {
                let a = (0..k).map(|_| rs.randint_u32(0, 1 << 31) * 2 + 1).collect();
                let b = (0..k).map(|_| rs.randint_u32(0, 1 << 32)).collect();
                Params::Affine32 { a, b }
            }
            Scheme::Legacy => {
                let (a, b) = (0..k)
                    .map(|_| {
                        let a = rs.randint_u64(1, MERSENNE_61);
                        (a, rs.randint_u64(0, MERSENNE_61))
                    })
                    .unzip();
                Params::Mersenne { a, b }
            }
            Scheme::Datatrove => {
                let a = (0..k).map(|_| rs.randint_u64(1, MERSENNE_61)).collect();
                let b = (0..k).map(|_| rs.randint_u64(0, MERSENNE_61)).collect();
                Params::Mersenne { a, b }
            }
        };
        Self { params }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        match &self.params {
            Params::Affine32 { a, .. } => a.len(),
            Params::Mersenne { a, .. } => a.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Turn 32-bit shingle hashes (the low 32 bits of ours, what the peer's `hashfunc` would
    /// return) into the kernel's inputs, in place: `Affine32` pre-mixes them. A separate pass, so it
    /// vectorizes; per shingle inside the shingle loop it cost 9 % end to end.
    pub fn prepare(&self, hashes: &mut [u32]) {
        if let Params::Affine32 { .. } = self.params {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { premix_avx2(hashes) };
            }
            premix(hashes);
        }
    }

    /// Fill `sig` (length k) with the minima of every permutation over `inputs` (values from
    /// `prepare`). An empty `inputs` leaves `u32::MAX` everywhere, the peers' empty value.
    pub fn sign(&self, inputs: &[u32], sig: &mut [u32]) {
        assert_eq!(sig.len(), self.len());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU supports AVX-512F and DQ (checked just above).
            return unsafe {
                match &self.params {
                    Params::Affine32 { a, b } => sign_avx512(a, b, inputs, sig),
                    Params::Mersenne { a, b } => sign_mersenne_avx512(a, b, inputs, sig),
                }
            };
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe {
                match &self.params {
                    Params::Affine32 { a, b } => sign_avx2(a, b, inputs, sig),
                    Params::Mersenne { a, b } => sign_mersenne_avx2(a, b, inputs, sig),
                }
            };
        }
        match &self.params {
            Params::Affine32 { a, b } => sign_generic(a, b, inputs, sig),
            Params::Mersenne { a, b } => sign_mersenne_generic(a, b, inputs, sig),
        }
    }
}

// Always inlined so the AVX2 wrapper compiles its own vectorized copy of the loop.
#[allow(clippy::inline_always)]
#[inline(always)]
fn premix(hashes: &mut [u32]) {
    for h in hashes {
        *h = fmix32(*h);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn premix_avx2(hashes: &mut [u32]) {
    premix(hashes);
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

/// `sign_avx2` in 16 lanes. On a CPU with full-width 512-bit units (Zen 5, recent Xeons) this
/// does twice the permutations per instruction; a masked load takes the tile's tail, so no scalar
/// remainder is left.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sign_avx512(a: &[u32], b: &[u32], hashes: &[u32], sig: &mut [u32]) {
    sig.fill(u32::MAX);
    for tile in hashes.chunks(4096) {
        // SAFETY: the caller checked AVX-512F, which is all `sign_tile_avx512` needs.
        unsafe { sign_tile_avx512(a, b, tile, sig) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sign_tile_avx512(a: &[u32], b: &[u32], hashes: &[u32], sig: &mut [u32]) {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_min_epu32,
        _mm512_maskz_loadu_epi32, _mm512_min_epu32, _mm512_mullo_epi32, _mm512_reduce_min_epu32,
        _mm512_set1_epi32,
    };
    const BLOCK: usize = 64;
    let body = hashes.len() / BLOCK * BLOCK;
    let (blocks, rest) = hashes.split_at(body);
    // The tail, at most 63 hashes, as four masked 16-lane loads; lanes past the end are zero and
    // their mask bit is clear, so they never reach a minimum.
    let tail: [(__m512i, u16); 4] = std::array::from_fn(|q| {
        let len = rest.len().saturating_sub(16 * q).min(16);
        let mask = ((1u32 << len) - 1) as u16;
        // SAFETY: the mask enables only the `len` lanes inside `rest`; masked-off lanes are not
        // read, so the address past the end (`wrapping_add`, never dereferenced there) is fine.
        let x =
            unsafe { _mm512_maskz_loadu_epi32(mask, rest.as_ptr().wrapping_add(16 * q).cast()) };
        (x, mask)
    });
    let k = a.len();
    let mut i = 0;
    while i < k {
        let j = (i + 1).min(k - 1);
        let (a0, b0) = (
            _mm512_set1_epi32(a[i] as i32),
            _mm512_set1_epi32(b[i] as i32),
        );
        let (a1, b1) = (
            _mm512_set1_epi32(a[j] as i32),
            _mm512_set1_epi32(b[j] as i32),
        );
        let mut m0 = [_mm512_set1_epi32(-1); 4];
        let mut m1 = [_mm512_set1_epi32(-1); 4];
        for block in blocks.chunks_exact(BLOCK) {
            for (q, lanes) in block.chunks_exact(16).enumerate() {
                // SAFETY: `lanes` holds exactly sixteen u32s, one unaligned 512-bit load.
                let x = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
                m0[q] = _mm512_min_epu32(m0[q], _mm512_add_epi32(_mm512_mullo_epi32(x, a0), b0));
                m1[q] = _mm512_min_epu32(m1[q], _mm512_add_epi32(_mm512_mullo_epi32(x, a1), b1));
            }
        }
        for (q, &(x, mask)) in tail.iter().enumerate() {
            let y0 = _mm512_add_epi32(_mm512_mullo_epi32(x, a0), b0);
            let y1 = _mm512_add_epi32(_mm512_mullo_epi32(x, a1), b1);
            m0[q] = _mm512_mask_min_epu32(m0[q], mask, m0[q], y0);
            m1[q] = _mm512_mask_min_epu32(m1[q], mask, m1[q], y1);
        }
        let s0 = _mm512_reduce_min_epu32(_mm512_min_epu32(
            _mm512_min_epu32(m0[0], m0[1]),
            _mm512_min_epu32(m0[2], m0[3]),
        ));
        let s1 = _mm512_reduce_min_epu32(_mm512_min_epu32(
            _mm512_min_epu32(m1[0], m1[1]),
            _mm512_min_epu32(m1[2], m1[3]),
        ));
        sig[i] = sig[i].min(s0);
        sig[j] = sig[j].min(s1);
        i += 2;
    }
}

/// One legacy permutation of one input: `((a·x + b) mod 2^64) mod (2^61 − 1)`, low 32 bits.
#[inline]
fn mersenne_map(a: u64, b: u64, x: u32) -> u32 {
    let t = a.wrapping_mul(u64::from(x)).wrapping_add(b);
    // 2^61 ≡ 1 (mod 2^61 − 1), so folding the top three bits onto the rest reduces t to at most
    // 2^61 + 6, and one conditional subtraction finishes it.
    let y = (t & MERSENNE_61) + (t >> 61);
    (if y >= MERSENNE_61 { y - MERSENNE_61 } else { y }) as u32
}

fn sign_mersenne_generic(a: &[u64], b: &[u64], inputs: &[u32], sig: &mut [u32]) {
    for ((&ai, &bi), out) in a.iter().zip(b).zip(sig.iter_mut()) {
        *out = inputs
            .iter()
            .fold(u32::MAX, |m, &x| m.min(mersenne_map(ai, bi, x)));
    }
}

/// Run a Mersenne tile kernel over `inputs`: tiles of 1024 inputs, widened once to 64-bit lanes
/// (8 KiB, stays in L1), each cut to a multiple of `lanes` for the kernel; the tile's last few
/// inputs take the scalar map.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)] // into each SIMD wrapper, so the widening loop compiles with its features
fn sign_mersenne_tiled(
    a: &[u64],
    b: &[u64],
    inputs: &[u32],
    sig: &mut [u32],
    lanes: usize,
    mut kernel: impl FnMut(&[u64], &mut [u32]),
) {
    sig.fill(u32::MAX);
    let mut wide = [0u64; 1024];
    for tile in inputs.chunks(wide.len()) {
        let body = tile.len() / lanes * lanes;
        for (w, &x) in wide.iter_mut().zip(&tile[..body]) {
            *w = u64::from(x);
        }
        kernel(&wide[..body], sig);
        for ((&ai, &bi), out) in a.iter().zip(b).zip(sig.iter_mut()) {
            for &x in &tile[body..] {
                *out = (*out).min(mersenne_map(ai, bi, x));
            }
        }
    }
}

/// The legacy map in four 64-bit lanes: AVX2 has no 64-bit multiply, but `x` < 2^32, so
/// `a·x mod 2^64` is `a_lo·x + (a_hi·x << 32)`, two 32×32→64 multiplies.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sign_mersenne_avx2(a: &[u64], b: &[u64], inputs: &[u32], sig: &mut [u32]) {
    sign_mersenne_tiled(a, b, inputs, sig, 8, |wide, sig| {
        // SAFETY: the caller checked AVX2, which is all the tile kernel needs.
        unsafe { sign_mersenne_tile_avx2(a, b, wide, sig) };
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sign_mersenne_tile_avx2(a: &[u64], b: &[u64], wide: &[u64], sig: &mut [u32]) {
    use std::arch::x86_64::{
        _mm256_add_epi64, _mm256_and_si256, _mm256_cmpgt_epi64, _mm256_loadu_si256,
        _mm256_min_epu32, _mm256_mul_epu32, _mm256_set1_epi32, _mm256_set1_epi64x,
        _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_sub_epi64,
    };
    let p = _mm256_set1_epi64x(MERSENNE_61 as i64);
    let p_less_1 = _mm256_set1_epi64x(MERSENNE_61 as i64 - 1);
    for ((&ai, &bi), out) in a.iter().zip(b).zip(sig.iter_mut()) {
        let a_lo = _mm256_set1_epi64x((ai & 0xFFFF_FFFF) as i64);
        let a_hi = _mm256_set1_epi64x((ai >> 32) as i64);
        let bv = _mm256_set1_epi64x(bi as i64);
        // Only the low 32 bits of each 64-bit lane are the value; `min_epu32` keeps them right and
        // the high halves are ignored.
        let mut m = [_mm256_set1_epi32(-1); 2];
        for block in wide.chunks_exact(8) {
            for (q, lanes) in block.chunks_exact(4).enumerate() {
                // SAFETY: `lanes` holds exactly four u64s, one unaligned 256-bit load.
                let x = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
                let ax = _mm256_add_epi64(
                    _mm256_mul_epu32(x, a_lo),
                    _mm256_slli_epi64(_mm256_mul_epu32(x, a_hi), 32),
                );
                let t = _mm256_add_epi64(ax, bv);
                let y = _mm256_add_epi64(_mm256_and_si256(t, p), _mm256_srli_epi64(t, 61));
                // y < 2^62, so the signed compare is an unsigned one here.
                let y = _mm256_sub_epi64(y, _mm256_and_si256(_mm256_cmpgt_epi64(y, p_less_1), p));
                m[q] = _mm256_min_epu32(m[q], y);
            }
        }
        let mut lanes = [0u32; 8];
        // SAFETY: `lanes` is 32 bytes, the width of one unaligned store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_min_epu32(m[0], m[1])) };
        let low_halves = lanes.iter().step_by(2).copied().min().unwrap_or(u32::MAX);
        *out = (*out).min(low_halves);
    }
}

/// The legacy map in eight 64-bit lanes: AVX-512DQ multiplies 64 by 64 bits directly, and a
/// compare into a mask does the conditional subtraction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn sign_mersenne_avx512(a: &[u64], b: &[u64], inputs: &[u32], sig: &mut [u32]) {
    sign_mersenne_tiled(a, b, inputs, sig, 16, |wide, sig| {
        // SAFETY: the caller checked AVX-512F and DQ, all the tile kernel needs.
        unsafe { sign_mersenne_tile_avx512(a, b, wide, sig) };
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn sign_mersenne_tile_avx512(a: &[u64], b: &[u64], wide: &[u64], sig: &mut [u32]) {
    use std::arch::x86_64::{
        _mm512_add_epi64, _mm512_and_si512, _mm512_cmpgt_epu64_mask, _mm512_loadu_si512,
        _mm512_mask_sub_epi64, _mm512_min_epu32, _mm512_mullo_epi64, _mm512_set1_epi32,
        _mm512_set1_epi64, _mm512_srli_epi64, _mm512_storeu_si512,
    };
    let p = _mm512_set1_epi64(MERSENNE_61 as i64);
    let p_less_1 = _mm512_set1_epi64(MERSENNE_61 as i64 - 1);
    for ((&ai, &bi), out) in a.iter().zip(b).zip(sig.iter_mut()) {
        let av = _mm512_set1_epi64(ai as i64);
        let bv = _mm512_set1_epi64(bi as i64);
        // As in the AVX2 kernel, only each lane's low 32 bits matter, and `min_epu32` keeps them.
        let mut m = [_mm512_set1_epi32(-1); 2];
        for block in wide.chunks_exact(16) {
            for (q, lanes) in block.chunks_exact(8).enumerate() {
                // SAFETY: `lanes` holds exactly eight u64s, one unaligned 512-bit load.
                let x = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
                let t = _mm512_add_epi64(_mm512_mullo_epi64(x, av), bv);
                let y = _mm512_add_epi64(_mm512_and_si512(t, p), _mm512_srli_epi64(t, 61));
                let y = _mm512_mask_sub_epi64(y, _mm512_cmpgt_epu64_mask(y, p_less_1), y, p);
                m[q] = _mm512_min_epu32(m[q], y);
            }
        }
        let mut lanes = [0u32; 16];
        // SAFETY: `lanes` is 64 bytes, the width of one unaligned store.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), _mm512_min_epu32(m[0], m[1])) };
        let low_halves = lanes.iter().step_by(2).copied().min().unwrap_or(u32::MAX);
        *out = (*out).min(low_halves);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU can run, against the portable one. `sign` itself picks the widest,
    /// so the narrower ones are called directly to keep them tested too.
    #[test]
    fn simd_kernels_and_generic_agree() {
        let mut state = 1u64;
        // Odd k (the kernels pair permutations); lengths empty, below one block, on block and tile
        // edges, with every tail length of the 64-hash block, and over several tiles.
        let mut cases = vec![
            (64, 1003),
            (7, 5),
            (129, 9000),
            (1, 33),
            (3, 0),
            (5, 4096),
            (5, 4097),
        ];
        cases.extend((0..=130).map(|len| (2, len)));
        for (k, len) in cases {
            let hashes: Vec<u32> = (0..len).map(|_| splitmix64(&mut state) as u32).collect();
            for scheme in [Scheme::Affine32, Scheme::Legacy] {
                let perms = Permutations::new(k, 7, scheme);
                let mut want = vec![u32::MAX; k];
                match &perms.params {
                    Params::Affine32 { a, b } => sign_generic(a, b, &hashes, &mut want),
                    Params::Mersenne { a, b } => sign_mersenne_generic(a, b, &hashes, &mut want),
                }
                let mut got = vec![0; k];
                perms.sign(&hashes, &mut got);
                assert_eq!(got, want, "sign {scheme:?} k={k} len={len}");
                #[cfg(target_arch = "x86_64")]
                for (kernel, available) in [
                    ("avx2", std::is_x86_feature_detected!("avx2")),
                    (
                        "avx512",
                        std::is_x86_feature_detected!("avx512f")
                            && std::is_x86_feature_detected!("avx512dq"),
                    ),
                ] {
                    if !available {
                        continue;
                    }
                    got.fill(0);
                    // SAFETY: the CPU supports the kernel's instruction set (checked above).
                    unsafe {
                        match (&perms.params, kernel) {
                            (Params::Affine32 { a, b }, "avx2") => {
                                sign_avx2(a, b, &hashes, &mut got);
                            }
                            (Params::Affine32 { a, b }, _) => sign_avx512(a, b, &hashes, &mut got),
                            (Params::Mersenne { a, b }, "avx2") => {
                                sign_mersenne_avx2(a, b, &hashes, &mut got);
                            }
                            (Params::Mersenne { a, b }, _) => {
                                sign_mersenne_avx512(a, b, &hashes, &mut got);
                            }
                        }
                    }
                    assert_eq!(got, want, "{kernel} {scheme:?} k={k} len={len}");
                }
            }
        }
        for scheme in [Scheme::Affine32, Scheme::Datatrove] {
            let perms = Permutations::new(64, 7, scheme);
            let mut s1 = vec![0; 64];
            perms.sign(&[], &mut s1);
            assert!(s1.iter().all(|&v| v == u32::MAX));
        }
    }

    #[test]
    fn prepare_premixes_affine32_only() {
        let mut state = 5u64;
        let raw: Vec<u32> = (0..1001).map(|_| splitmix64(&mut state) as u32).collect();
        let mut mixed = raw.clone();
        Permutations::new(4, 1, Scheme::Affine32).prepare(&mut mixed);
        assert!(raw.iter().zip(&mixed).all(|(&r, &m)| fmix32(r) == m));
        let mut kept = raw.clone();
        Permutations::new(4, 1, Scheme::Legacy).prepare(&mut kept);
        assert_eq!(kept, raw);
        // datasketch: `_fmix(np.array([1], np.uint32), 32)`.
        assert_eq!(fmix32(1), 0x514E_28B7);
    }

    #[test]
    fn mersenne_reduction_is_exact() {
        // Inputs that land on and next to multiples of the prime, where the fold needs its
        // conditional subtraction, against 128-bit arithmetic.
        let reference = |a: u64, b: u64, x: u32| {
            let t = a.wrapping_mul(u64::from(x)).wrapping_add(b);
            (u128::from(t) % u128::from(MERSENNE_61)) as u32
        };
        let mut state = 3u64;
        for _ in 0..100_000 {
            let a = splitmix64(&mut state) % MERSENNE_61;
            let x = splitmix64(&mut state) as u32;
            let b = splitmix64(&mut state) % MERSENNE_61;
            assert_eq!(mersenne_map(a, b, x), reference(a, b, x));
        }
        for t in [
            MERSENNE_61 - 1,
            MERSENNE_61,
            MERSENNE_61 + 1,
            2 * MERSENNE_61,
            u64::MAX,
        ] {
            assert_eq!(mersenne_map(1, t, 0), reference(1, t, 0), "t={t}");
        }
    }
}
