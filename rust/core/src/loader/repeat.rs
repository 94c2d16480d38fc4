//! The instance filter: a training sequence dominated by one short pattern repeated many times in a
//! row (OLMo-core's filter: period at most 13, at least 32 repeats) is a known cause of loss spikes.

/// When a sequence counts as repetitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepeatFilter {
    pub max_period: u32,
    pub min_repeats: u32,
}

impl Default for RepeatFilter {
    fn default() -> Self {
        RepeatFilter {
            max_period: 13,
            min_repeats: 32,
        }
    }
}

impl RepeatFilter {
    /// Whether some pattern of period `1..=max_period` occurs `min_repeats` times back to back.
    ///
    /// `reps` copies of a period-`p` pattern are a run of `p * (reps - 1)` positions equal to the
    /// token `p` before them. Such a run covers one of every `need` consecutive positions, so only
    /// those are probed, and a run is measured only around a probe that matches: on ordinary text
    /// this reads about `n / need` tokens per period instead of `n`.
    #[must_use]
    pub fn is_repetitive(&self, tokens: &[u32]) -> bool {
        let reps = self.min_repeats.max(2) as usize;
        let n = tokens.len();
        for p in 1..=self.max_period as usize {
            let need = p * (reps - 1);
            if n < need + p {
                break;
            }
            let same = |i: usize| tokens[i] == tokens[i - p];
            let mut probe = p + need - 1;
            while probe < n {
                if same(probe) {
                    let mut lo = probe;
                    while lo > p && same(lo - 1) {
                        lo -= 1;
                    }
                    let mut hi = probe + 1;
                    while hi < n && same(hi) {
                        hi += 1;
                    }
                    if hi - lo >= need {
                        return true;
                    }
                }
                probe += need;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_exactly_min_repeats_and_not_one_fewer() {
        let f = RepeatFilter::default();
        for period in [1usize, 2, 7, 13] {
            let pattern: Vec<u32> = (0..period as u32).map(|t| t + 100).collect();
            let mut seq: Vec<u32> = (0..50).collect();
            let body = pattern.repeat(32);
            seq.extend(&body);
            seq.extend(500..520);
            assert!(f.is_repetitive(&seq), "period {period}");
            let mut short: Vec<u32> = (0..50).collect();
            short.extend(pattern.repeat(31));
            short.extend(500..520);
            assert!(!f.is_repetitive(&short), "period {period}, 31 repeats");
        }
        let period14: Vec<u32> = (0..14u32).collect::<Vec<_>>().repeat(40);
        assert!(!f.is_repetitive(&period14));
        assert!(!f.is_repetitive(&(0..5000).collect::<Vec<u32>>()));
    }

    /// The plain scan of every position, to check the probing one against.
    fn naive(f: RepeatFilter, t: &[u32]) -> bool {
        (1..=f.max_period as usize).any(|p| {
            let need = p * (f.min_repeats as usize - 1);
            let mut run = 0;
            (p..t.len()).any(|i| {
                run = if t[i] == t[i - p] { run + 1 } else { 0 };
                run >= need
            })
        })
    }

    #[test]
    fn probing_agrees_with_the_plain_scan() {
        let mut rng = crate::loader::rng::SplitMix64::for_stream(&[3]);
        let f = RepeatFilter {
            max_period: 5,
            min_repeats: 4,
        };
        for _ in 0..3000 {
            let n = rng.below(80) as usize;
            let alphabet = 1 + rng.below(3) as u32;
            let t: Vec<u32> = (0..n)
                .map(|_| rng.below(u64::from(alphabet)) as u32)
                .collect();
            assert_eq!(f.is_repetitive(&t), naive(f, &t), "{t:?}");
        }
    }
}
