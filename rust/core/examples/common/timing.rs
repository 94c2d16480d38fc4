//! Timing shared by the stage examples.

use std::time::Instant;

/// `bytes` over the median wall time of `reps` calls of `f`, in MB/s.
pub fn median_mbps(bytes: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    bytes as f64 / 1e6 / t[reps / 2]
}
