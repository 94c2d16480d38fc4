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
    #[must_use]
    pub fn is_repetitive(&self, tokens: &[u32]) -> bool {
        let reps = self.min_repeats.max(2) as usize;
        for p in 1..=self.max_period as usize {
            // `reps` copies of a period-`p` pattern are `p * (reps - 1)` positions equal to the
            // token `p` before them, in a row.
            let need = p * (reps - 1);
            if tokens.len() < need + p {
                break;
            }
            let mut run = 0;
            for i in p..tokens.len() {
                if tokens[i] == tokens[i - p] {
                    run += 1;
                    if run >= need {
                        return true;
                    }
                } else {
                    run = 0;
                }
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
}
