//! A small seeded generator for the loader's shuffles. The sample order must be the same on every
//! machine and every version, so it is spelled out here rather than borrowed from a crate whose
//! stream may change.

/// `SplitMix64` (Steele, Lea, Flood 2014): one add and two multiply-xorshift rounds per draw.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for one named stream: `parts` (seed, source, epoch, ...) are mixed in turn.
    #[must_use]
    pub fn for_stream(parts: &[u64]) -> Self {
        let mut state = 0x5348_4152_4446_4f52; // "SHARDFOR"
        for &p in parts {
            state = SplitMix64(state ^ p).next_u64();
        }
        SplitMix64(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` without modulo bias (Lemire's multiply-shift with rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// A uniformly random permutation of `0..n` (Fisher-Yates).
#[must_use]
pub fn permutation(n: usize, rng: &mut SplitMix64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_depends_on_the_stream() {
        let a = permutation(1000, &mut SplitMix64::for_stream(&[1, 2]));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(a, permutation(1000, &mut SplitMix64::for_stream(&[1, 2])));
        assert_ne!(a, permutation(1000, &mut SplitMix64::for_stream(&[1, 3])));
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = SplitMix64::for_stream(&[7]);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_400..10_600).contains(&c)),
            "{counts:?}"
        );
    }
}
