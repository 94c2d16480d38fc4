//! numpy's legacy `RandomState(seed)`: MT19937 and its bounded integer draws.
//!
//! datasketch and datatrove draw their `MinHash` permutation parameters from
//! `np.random.RandomState(seed).randint(...)`. Drawing the same numbers here makes our signatures
//! bit-for-bit comparable with theirs without a Python round trip. The Python tests check every
//! draw against numpy itself.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_B0DF;
const UPPER: u32 = 0x8000_0000;
const LOWER: u32 = 0x7FFF_FFFF;

pub struct RandomState {
    key: [u32; N],
    pos: usize,
}

impl RandomState {
    /// `RandomState(seed)` for an integer seed (numpy accepts 0..2^32 and seeds with
    /// `init_genrand`).
    #[must_use]
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        let mut s = seed;
        for (i, slot) in key.iter_mut().enumerate() {
            *slot = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(i as u32 + 1);
        }
        Self { key, pos: N }
    }

    fn regenerate(&mut self) {
        let twist = |hi: u32, lo: u32| {
            let y = (hi & UPPER) | (lo & LOWER);
            (y >> 1) ^ (0u32.wrapping_sub(y & 1) & MATRIX_A)
        };
        for i in 0..N {
            let t = twist(self.key[i], self.key[(i + 1) % N]);
            self.key[i] = self.key[(i + M) % N] ^ t;
        }
        self.pos = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.regenerate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^ (y >> 18)
    }

    /// Two 32-bit draws, high word first (numpy's `mt19937_next64`).
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// `randint(low, high, dtype=np.uint32)`: masked rejection sampling, as the legacy generator
    /// does it (not Lemire's method, which `Generator` uses).
    pub fn randint_u32(&mut self, low: u32, high: u64) -> u32 {
        assert!(
            u64::from(low) < high && high <= 1 << 32,
            "empty or oversized range"
        );
        let rng = (high - 1 - u64::from(low)) as u32;
        if rng == 0 {
            return low;
        }
        if rng == u32::MAX {
            return low.wrapping_add(self.next_u32());
        }
        let mask = u32::MAX >> rng.leading_zeros();
        loop {
            let v = self.next_u32() & mask;
            if v <= rng {
                return low + v;
            }
        }
    }

    /// `randint(low, high, dtype=np.uint64)`; ranges that fit 32 bits use 32-bit draws.
    pub fn randint_u64(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty range");
        let rng = high - 1 - low;
        if let Ok(rng32) = u32::try_from(rng) {
            return low + u64::from(self.randint_u32(0, u64::from(rng32) + 1));
        }
        let mask = u64::MAX >> rng.leading_zeros();
        loop {
            let v = self.next_u64() & mask;
            if v <= rng {
                return low + v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_generator() {
        // The MT19937 reference (mt19937ar.c) seeded by init_genrand(5489): the 1st and 10000th
        // outputs, as given in the C++ standard for std::mt19937.
        let mut r = RandomState::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        let mut r = RandomState::new(5489);
        let last = (0..10_000).map(|_| r.next_u32()).last();
        assert_eq!(last, Some(4_123_659_995));
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut r = RandomState::new(1);
        for _ in 0..1000 {
            assert!((3..10).contains(&r.randint_u32(3, 10)));
            assert!((1..(1 << 61) - 1).contains(&r.randint_u64(1, (1 << 61) - 1)));
        }
    }
}
