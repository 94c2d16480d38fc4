//! Word n-gram shingles of normalized text, hashed with xxh3.
//!
//! Normalized text has single spaces between words (see `normalize`), so the n-gram starting at word
//! `i` is the byte slice from word `i`'s start to word `i + n - 1`'s end: no strings are built.
//! A text shorter than `n` words becomes one shingle of all its words, as datasketch and datatrove do.

use xxhash_rust::xxh3::xxh3_64;

/// Calls `f` with the xxh3-64 hash of every word `n`-gram of `normalized` (in text order, repeats
/// included: sketches take minima, so a repeat changes nothing). Returns the number of shingles.
pub fn for_each_shingle(normalized: &str, n: usize, mut f: impl FnMut(u64)) -> usize {
    debug_assert!(n >= 1);
    let bytes = normalized.as_bytes();
    if bytes.is_empty() {
        return 0;
    }
    // Ring of the start offsets of the last `n` words.
    let mut starts = [0usize; 32];
    let n = n.min(starts.len());
    let mut words = 0usize;
    let mut count = 0usize;
    let mut word_start = 0usize;
    let mut emit = |end: usize, words: usize, starts: &[usize; 32]| {
        if words >= n {
            let first = starts[(words - n) % n];
            f(xxh3_64(&bytes[first..end]));
            count += 1;
        }
    };
    for end in memchr::memchr_iter(b' ', bytes) {
        starts[words % n] = word_start;
        words += 1;
        emit(end, words, &starts);
        word_start = end + 1;
    }
    starts[words % n] = word_start;
    words += 1;
    emit(bytes.len(), words, &starts);
    if words < n {
        f(xxh3_64(bytes));
        count = 1;
    }
    count
}

/// All shingle hashes of a text, sorted and deduplicated: the exact set that Jaccard is defined on.
#[must_use]
pub fn shingle_set(normalized: &str, n: usize) -> Vec<u64> {
    let mut v = Vec::new();
    for_each_shingle(normalized, n, |h| v.push(h));
    v.sort_unstable();
    v.dedup();
    v
}

/// Exact Jaccard similarity of two sorted, deduplicated sets.
#[must_use]
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(text: &str, n: usize) -> Vec<u64> {
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        if words.is_empty() {
            return vec![];
        }
        if words.len() < n {
            return vec![xxh3_64(words.join(" ").as_bytes())];
        }
        words
            .windows(n)
            .map(|w| xxh3_64(w.join(" ").as_bytes()))
            .collect()
    }

    #[test]
    fn matches_naive_windows() {
        let text = "a bb ccc dddd e ff ggg hhhh i jj";
        for n in 1..=12 {
            let mut got = Vec::new();
            for_each_shingle(text, n, |h| got.push(h));
            assert_eq!(got, naive(text, n), "n={n}");
        }
        assert_eq!(for_each_shingle("", 5, |_| ()), 0);
    }

    #[test]
    fn jaccard_exact() {
        assert!((jaccard(&[1, 2, 3, 4], &[3, 4, 5, 6]) - 2.0 / 6.0).abs() < 1e-12);
        assert!((jaccard(&[], &[]) - 1.0).abs() < 1e-12);
        assert!(jaccard(&[1], &[]).abs() < 1e-12);
    }
}
