//! Which source each global sample comes from: mixture weights realised exactly over every window
//! of `window` samples, and curriculum phases that switch at an exact sample.
//!
//! A window gives each source its largest-remainder quota of `weight × window` samples and
//! interleaves the sources smoothly (at every prefix each source is within 1.5 samples of its share),
//! so a short run sees the mixture too. Every window of a phase has the same schedule, which makes
//! `locate` O(log phases) with no per-sample state: resume needs only the global sample number.

use crate::error::{Error, Result};

/// The order of sources inside one window.
#[derive(Debug)]
struct Window {
    quota: Vec<u64>,
    /// Source of each position.
    order: Vec<u16>,
    /// How many earlier positions of the window hold the same source.
    rank: Vec<u32>,
    /// Positions of each source, ascending (for counts over a partial window).
    positions: Vec<Vec<u32>>,
}

impl Window {
    fn new(weights: &[f64], size: u32, names: &[String]) -> Result<Self> {
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::Config(format!(
                "mixture weights must be finite and >= 0, got {weights:?}"
            )));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(Error::Config("mixture weights are all zero".into()));
        }
        let n = u64::from(size);
        let exact: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
        let mut quota: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
        let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let missing = n - quota.iter().sum::<u64>();
        for &s in by_remainder.iter().take(missing as usize) {
            quota[s] += 1;
        }
        for (s, (&q, &w)) in quota.iter().zip(weights).enumerate() {
            if w > 0.0 && q == 0 {
                return Err(Error::Config(format!(
                    "mixture_window {size} is too small to give source '{}' (weight {:.4}) a \
                     sample; use a window of at least {}",
                    names[s],
                    w / total,
                    (total / w).ceil()
                )));
            }
        }
        // Smooth interleave: next comes the source furthest behind its share. Every prefix then
        // stays within about one sample of its share (never two; see the tests).
        let mut count = vec![0u64; quota.len()];
        let mut order = Vec::with_capacity(size as usize);
        let mut rank = Vec::with_capacity(size as usize);
        let mut positions = vec![Vec::new(); quota.len()];
        for i in 0..n {
            let mut best = usize::MAX;
            let mut best_deficit = i128::MIN;
            for s in 0..quota.len() {
                if count[s] == quota[s] {
                    continue;
                }
                let deficit = i128::from(quota[s]) * i128::from(i + 1) - i128::from(count[s] * n);
                if deficit > best_deficit {
                    best = s;
                    best_deficit = deficit;
                }
            }
            order.push(best as u16);
            rank.push(count[best] as u32);
            positions[best].push(i as u32);
            count[best] += 1;
        }
        Ok(Window {
            quota,
            order,
            rank,
            positions,
        })
    }

    /// Samples of source `s` among the first `m` positions of a window.
    fn count_before(&self, s: usize, m: u64) -> u64 {
        self.positions[s].partition_point(|&p| u64::from(p) < m) as u64
    }
}

#[derive(Debug)]
struct Phase {
    start: u64,
    end: Option<u64>,
    window: Window,
    /// Samples each source gave to the phases before this one.
    before: Vec<u64>,
}

/// The mixture over all phases.
#[derive(Debug)]
pub struct Mixture {
    phases: Vec<Phase>,
    window: u64,
    sources: usize,
}

impl Mixture {
    /// `phases`: (length in samples, `None` only for an open-ended last phase; one weight per
    /// source).
    pub fn new(phases: &[(Option<u64>, Vec<f64>)], window: u32, names: &[String]) -> Result<Self> {
        if phases.is_empty() {
            return Err(Error::Config("a mixture needs at least one phase".into()));
        }
        if window == 0 {
            return Err(Error::Config("mixture_window must be at least 1".into()));
        }
        let mut out: Vec<Phase> = Vec::with_capacity(phases.len());
        let mut start = 0u64;
        let mut before = vec![0u64; names.len()];
        for (i, (len, weights)) in phases.iter().enumerate() {
            if weights.len() != names.len() {
                return Err(Error::Config(format!(
                    "phase {i} has {} weights for {} sources",
                    weights.len(),
                    names.len()
                )));
            }
            if len.is_none() && i + 1 != phases.len() {
                return Err(Error::Config(format!(
                    "only the last phase may be open-ended (phase {i} has no length)"
                )));
            }
            if *len == Some(0) {
                return Err(Error::Config(format!("phase {i} is empty")));
            }
            let phase = Phase {
                start,
                end: len.map(|l| start + l),
                window: Window::new(weights, window, names)?,
                before: before.clone(),
            };
            if let Some(l) = len {
                for (s, b) in before.iter_mut().enumerate() {
                    *b += phase.count_in(s, *l, u64::from(window));
                }
                start += l;
            }
            out.push(phase);
        }
        Ok(Mixture {
            phases: out,
            window: u64::from(window),
            sources: names.len(),
        })
    }

    /// The end of the last phase, if it has one.
    #[must_use]
    pub fn end(&self) -> Option<u64> {
        self.phases.last().and_then(|p| p.end)
    }

    fn phase_at(&self, k: u64) -> &Phase {
        &self.phases[self.phase_index(k)]
    }

    /// Index of the phase that global sample `k` belongs to (the last phase past every end).
    #[must_use]
    pub fn phase_index(&self, k: u64) -> usize {
        self.phases.partition_point(|p| p.start <= k) - 1
    }

    /// Source of global sample `k` and its index in that source's own stream.
    #[must_use]
    pub fn locate(&self, k: u64) -> (usize, u64) {
        let p = self.phase_at(k);
        let off = k - p.start;
        let (w, r) = (off / self.window, (off % self.window) as usize);
        let s = usize::from(p.window.order[r]);
        (
            s,
            p.before[s] + w * p.window.quota[s] + u64::from(p.window.rank[r]),
        )
    }

    /// Samples each source gives to global samples `0..k`.
    #[must_use]
    pub fn consumed(&self, k: u64) -> Vec<u64> {
        if k == 0 {
            return vec![0; self.sources];
        }
        let p = self.phase_at(k - 1);
        (0..self.sources)
            .map(|s| p.before[s] + p.count_in(s, k - p.start, self.window))
            .collect()
    }
}

impl Phase {
    /// Samples of source `s` among the phase's first `len` samples.
    fn count_in(&self, s: usize, len: u64, window: u64) -> u64 {
        (len / window) * self.window.quota[s] + self.window.count_before(s, len % window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}")).collect()
    }

    #[test]
    fn every_window_has_the_quota_and_every_prefix_is_smooth() {
        let w = vec![0.6, 0.15, 0.1, 0.15];
        let m = Mixture::new(&[(None, w.clone())], 100, &names(4)).unwrap();
        let mut count = [0u64; 4];
        let mut next = [0u64; 4];
        for k in 0..1000u64 {
            let (s, local) = m.locate(k);
            assert_eq!(local, next[s], "each source's stream is read in order");
            next[s] += 1;
            count[s] += 1;
            for (c, wt) in count.iter().zip(&w) {
                assert!((*c as f64 - wt * (k % 100 + 1) as f64).abs() < 1.5);
            }
            if (k + 1) % 100 == 0 {
                assert_eq!(count, [60, 15, 10, 15]);
                count = [0; 4];
            }
        }
        assert_eq!(m.consumed(1000), vec![600, 150, 100, 150]);
    }

    #[test]
    fn random_mixtures_stay_within_one_and_a_half_samples_at_every_prefix() {
        let mut rng = super::super::rng::SplitMix64::for_stream(&[11]);
        for _ in 0..200 {
            let n = 2 + rng.below(6) as usize;
            let w: Vec<f64> = (0..n).map(|_| 1.0 + rng.below(1000) as f64).collect();
            let window = 1000;
            let m = Mixture::new(&[(None, w.clone())], window, &names(n)).unwrap();
            let share: Vec<f64> = (0..n)
                .map(|s| m.phases[0].window.quota[s] as f64 / f64::from(window))
                .collect();
            let mut count = vec![0f64; n];
            for k in 0..u64::from(window) {
                count[m.locate(k).0] += 1.0;
                for s in 0..n {
                    assert!(
                        (count[s] - share[s] * (k + 1) as f64).abs() < 1.5,
                        "{w:?} at {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn phases_switch_at_the_exact_sample_and_streams_continue() {
        let m = Mixture::new(
            &[(Some(250), vec![1.0, 0.0]), (None, vec![0.5, 0.5])],
            10,
            &names(2),
        )
        .unwrap();
        assert!((0..250).all(|k| m.locate(k).0 == 0));
        assert_eq!(m.locate(249), (0, 249));
        assert_eq!(m.phase_index(249), 0);
        assert_eq!(m.phase_index(250), 1);
        let mut next = [250u64, 0];
        for k in 250..400 {
            let (s, local) = m.locate(k);
            assert_eq!(local, next[s]);
            next[s] += 1;
        }
        assert_eq!(m.consumed(400), vec![325, 75]);
        assert_eq!(m.consumed(250), vec![250, 0]);
    }

    #[test]
    fn bad_mixtures_are_config_errors() {
        let n = names(2);
        for (phases, window) in [
            (vec![(None, vec![1.0, 0.001])], 100),
            (vec![(None, vec![0.0, 0.0])], 100),
            (vec![(None, vec![1.0, -1.0])], 100),
            (vec![(None, vec![1.0, 1.0]), (Some(5), vec![1.0, 1.0])], 10),
            (vec![(None, vec![1.0])], 10),
        ] {
            assert!(matches!(
                Mixture::new(&phases, window, &n),
                Err(Error::Config(_))
            ));
        }
    }
}
