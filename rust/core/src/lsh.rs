//! LSH banding: parameters from a Jaccard threshold, and band hashes of signatures.

use xxhash_rust::xxh3::xxh3_64_with_seed;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LshParams {
    pub bands: usize,
    pub rows: usize,
}

/// Probability that two documents of Jaccard `s` share at least one band.
#[must_use]
pub fn collision_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

/// Composite Simpson integration; the integrands are smooth polynomials.
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const N: usize = 256;
    let h = (b - a) / N as f64;
    let mut acc = f(a) + f(b);
    for i in 1..N {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        acc += w * f(a + i as f64 * h);
    }
    acc * h / 3.0
}

/// The (bands, rows) with `bands × rows ≤ num_perm` that minimise the weighted sum of the false
/// positive area (below the threshold) and false negative area (above it): the rule datasketch's
/// `MinHashLSH` uses, so the same threshold gives the same banding in both.
#[must_use]
pub fn optimal_params(
    threshold: f64,
    num_perm: usize,
    fp_weight: f64,
    fn_weight: f64,
) -> LshParams {
    let mut best = (f64::INFINITY, LshParams { bands: 1, rows: 1 });
    for bands in 1..=num_perm {
        for rows in 1..=num_perm / bands {
            let fp = integrate(|s| collision_probability(s, bands, rows), 0.0, threshold);
            let fneg = integrate(
                |s| 1.0 - collision_probability(s, bands, rows),
                threshold,
                1.0,
            );
            let err = fp * fp_weight + fneg * fn_weight;
            if err < best.0 {
                best = (err, LshParams { bands, rows });
            }
        }
    }
    best.1
}

/// Hash each band (`rows` consecutive signature values) of `sig` into `out[band]`. The band number
/// seeds the hash, so equal keys from different bands do not collide.
pub fn band_hashes(sig: &[u32], params: LshParams, out: &mut [u64]) {
    debug_assert!(params.bands * params.rows <= sig.len());
    let mut buf = [0u8; 4 * 256];
    for (band, slot) in out.iter_mut().enumerate().take(params.bands) {
        let rows = &sig[band * params.rows..(band + 1) * params.rows];
        let bytes = if rows.len() <= 256 {
            for (dst, v) in buf.chunks_exact_mut(4).zip(rows) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
            &buf[..rows.len() * 4]
        } else {
            // Very long bands are rare; build them on the heap.
            return band_hashes_slow(sig, params, out);
        };
        *slot = xxh3_64_with_seed(bytes, band as u64);
    }
}

fn band_hashes_slow(sig: &[u32], params: LshParams, out: &mut [u64]) {
    for (band, slot) in out.iter_mut().enumerate().take(params.bands) {
        let bytes: Vec<u8> = sig[band * params.rows..(band + 1) * params.rows]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        *slot = xxh3_64_with_seed(&bytes, band as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_datasketch_choices() {
        // Values printed by datasketch.MinHashLSH(threshold=t, num_perm=k).b/.r (also checked in the
        // Python suite against the installed datasketch).
        assert_eq!(
            optimal_params(0.8, 128, 0.5, 0.5),
            LshParams { bands: 9, rows: 13 }
        );
        assert_eq!(
            optimal_params(0.5, 128, 0.5, 0.5),
            LshParams { bands: 25, rows: 5 }
        );
        assert_eq!(
            optimal_params(0.7, 128, 0.5, 0.5),
            LshParams { bands: 14, rows: 9 }
        );
        assert_eq!(
            optimal_params(0.9, 128, 0.5, 0.5),
            LshParams { bands: 5, rows: 25 }
        );
        assert_eq!(
            optimal_params(0.8, 256, 0.5, 0.5),
            LshParams {
                bands: 17,
                rows: 15
            }
        );
    }

    #[test]
    fn collision_curve_is_monotone() {
        let p = LshParams { bands: 9, rows: 13 };
        let lo = collision_probability(0.5, p.bands, p.rows);
        let hi = collision_probability(0.9, p.bands, p.rows);
        assert!(lo < 0.01 && hi > 0.9, "{lo} {hi}");
    }
}
