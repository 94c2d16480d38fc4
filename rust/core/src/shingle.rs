//! Word n-gram shingles, hashed without building n-gram strings.
//!
//! Each word is hashed once (`padded_word_hash` of its normalized bytes), and the n-gram starting
//! at word `i` hashes to `mix(Σ_t w_{i+t}·P^{n-1-t} mod 2^64)`: a polynomial of its word hashes,
//! updated in O(1) as the window slides, then mixed by a bijection. The word hashes are
//! independent uniform values and every power of the odd `P` is invertible mod 2^64, so two
//! different n-grams collide with probability below 2^-56; reordered words give different hashes.
//! Hashing each word once instead of each n-gram's bytes does n times less hashing. A text shorter
//! than `n` words becomes one shingle of all its words, as datasketch and datatrove do.

use crate::normalize::{
    NormalizeConfig, WORD_PAD, WordScratch, for_each_padded_word, push_padded_word,
};
use xxhash_rust::xxh3::xxh3_64;

/// Odd, and ≡ 3 mod 4 so `P^k - 1` has few factors of two (xxHash's `PRIME64_2`).
const P: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Bumped whenever shingle hash values change, so resumed jobs redo sketches made by older code
/// instead of mixing two hash functions. 1: xxh3 of the n-gram bytes; 2: word-hash polynomial with
/// splitmix64's finalizer; 3: the same polynomial with a one-multiply mix; 4: words of up to 16
/// bytes hashed by `padded_word_hash` instead of xxh3.
pub const SHINGLE_HASH_VERSION: u32 = 4;

/// The longest n-gram supported (`SketchConfig::validate` checks it).
pub const MAX_NGRAM: usize = 32;

/// Slides a window of `n` word hashes over a stream of words.
pub struct Shingler {
    n: usize,
    ring: [u64; MAX_NGRAM],
    /// Next ring slot: `words mod n`, kept as a counter because a division per word costs more than
    /// the rest of `push`.
    slot: usize,
    words: usize,
    poly: u64,
    /// `P^n`: the weight of the word leaving the window.
    p_n: u64,
}

impl Shingler {
    #[must_use]
    pub fn new(n: usize) -> Self {
        assert!(
            (1..=MAX_NGRAM).contains(&n),
            "ngram {n} outside 1..={MAX_NGRAM}"
        );
        Self {
            n,
            ring: [0; MAX_NGRAM],
            slot: 0,
            words: 0,
            poly: 0,
            p_n: (0..n).fold(1u64, |acc, _| acc.wrapping_mul(P)),
        }
    }

    /// Adds the next word; calls `f` with the hash of the n-gram it completes, if any.
    pub fn push(&mut self, word: &str, f: &mut impl FnMut(u64)) {
        self.push_hash(word_hash(word.as_bytes()), f);
    }

    /// `push` of a word given as `for_each_padded_word` hands it out.
    // Always inlined into the word loop: as a call it cost 3 % of sketching end to end.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn push_padded(&mut self, padded: &[u8], len: usize, f: &mut impl FnMut(u64)) {
        self.push_hash(padded_word_hash(padded, len), f);
    }

    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn push_hash(&mut self, w: u64, f: &mut impl FnMut(u64)) {
        let slot = self.slot;
        self.poly = self.poly.wrapping_mul(P).wrapping_add(w);
        if self.words >= self.n {
            self.poly = self
                .poly
                .wrapping_sub(self.ring[slot].wrapping_mul(self.p_n));
        }
        self.ring[slot] = w;
        self.slot = if slot + 1 == self.n { 0 } else { slot + 1 };
        self.words += 1;
        if self.words >= self.n {
            f(mix(self.poly));
        }
    }

    /// Ends the text: a text of 1..n words gets its one shingle now. Returns the shingle count.
    pub fn finish(self, f: &mut impl FnMut(u64)) -> usize {
        if self.words == 0 {
            0
        } else if self.words < self.n {
            f(mix(self.poly));
            1
        } else {
            self.words - self.n + 1
        }
    }
}

/// The hash of the word `padded[..len]`, where `padded` holds at least 16 bytes. Words of up to
/// 16 bytes, nearly all of them, are loaded as 16 bytes and masked to their length, so the hash does
/// not branch on the length (xxh3's length dispatch mispredicted on most words); two folded
/// 64 x 64 -> 128-bit multiplies mix them, as rapidhash does for short inputs. Longer words take
/// xxh3.
#[allow(clippy::inline_always)]
#[inline(always)]
fn padded_word_hash(padded: &[u8], len: usize) -> u64 {
    // Odd 64-bit constants with balanced bits: the published default secrets of wyhash and rapidhash.
    const K: [u64; 3] = [
        0x2D35_8DCC_AA6C_78A5,
        0x8BB8_4B93_962E_ACC9,
        0x4B33_A62E_D433_D4A3,
    ];
    if len > 16 {
        return long_word_hash(&padded[..len]);
    }
    let block = u128::from_le_bytes(padded[..16].try_into().expect("16 bytes"));
    let keep = u128::MAX.checked_shr(8 * (16 - len) as u32).unwrap_or(0);
    let block = block & keep;
    let a = fold_mul(block as u64 ^ K[0], (block >> 64) as u64 ^ K[1]);
    fold_mul(a ^ K[2], K[1] ^ len as u64)
}

/// Out of line so that the word loop, which inlines the short path, stays small.
#[cold]
#[inline(never)]
fn long_word_hash(word: &[u8]) -> u64 {
    xxh3_64(word)
}

/// `padded_word_hash` of a word with nothing readable after it.
fn word_hash(word: &[u8]) -> u64 {
    if word.len() > 16 {
        return padded_word_hash(word, word.len());
    }
    let mut padded = [0u8; 16];
    padded[..word.len()].copy_from_slice(word);
    padded_word_hash(&padded, word.len())
}

/// The high and low halves of the 128-bit product, xored.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p >> 64) as u64 ^ p as u64
}

/// An odd multiply, then the high half folded onto the low half: a bijection (so no collisions are
/// added to the polynomial's), and it carries every input bit into the low 32 bits that classic
/// `MinHash` keeps. One multiply keeps the per-word dependency chain short.
#[inline]
fn mix(z: u64) -> u64 {
    let z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^ (z >> 32)
}

/// Calls `f` with the hash of every word `n`-gram of already normalized text (words separated by
/// single spaces), in text order, repeats included: sketches take minima, so a repeat changes
/// nothing. Returns the number of shingles.
pub fn for_each_shingle(normalized: &str, n: usize, mut f: impl FnMut(u64)) -> usize {
    let mut sh = Shingler::new(n);
    for word in normalized.split(' ').filter(|w| !w.is_empty()) {
        sh.push(word, &mut f);
    }
    sh.finish(&mut f)
}

/// `for_each_shingle` of `normalize(text)`, straight from the raw text in one pass. `normalized`,
/// when given, receives the normalized text on the way (the exact-duplicate hash needs it; copying
/// the words costs about a fifth of the pass, so callers that do not need it pass `None`).
pub fn for_each_shingle_in_text(
    text: &str,
    cfg: &NormalizeConfig,
    n: usize,
    scratch: &mut WordScratch,
    normalized: Option<&mut String>,
    mut f: impl FnMut(u64),
) -> usize {
    let mut sh = Shingler::new(n);
    if let Some(out) = normalized {
        out.clear();
        out.reserve(text.len() + WORD_PAD);
        for_each_padded_word(
            text,
            cfg,
            scratch,
            #[inline(always)]
            |padded, len| {
                push_padded_word(out, padded, len);
                sh.push_padded(padded, len, &mut f);
            },
        );
    } else {
        for_each_padded_word(
            text,
            cfg,
            scratch,
            #[inline(always)]
            |padded, len| sh.push_padded(padded, len, &mut f),
        );
    }
    sh.finish(&mut f)
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

    /// Each n-gram's polynomial computed from scratch.
    fn naive(text: &str, n: usize) -> Vec<u64> {
        let words: Vec<u64> = text
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| word_hash(w.as_bytes()))
            .collect();
        let poly = |ws: &[u64]| {
            mix(ws
                .iter()
                .fold(0u64, |acc, &w| acc.wrapping_mul(P).wrapping_add(w)))
        };
        if words.is_empty() {
            return vec![];
        }
        if words.len() < n {
            return vec![poly(&words)];
        }
        words.windows(n).map(poly).collect()
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
    fn word_order_and_boundaries_matter() {
        let set = |t: &str| shingle_set(t, 2);
        assert_ne!(set("a b"), set("b a"));
        assert_ne!(set("ab c"), set("a bc"));
        assert_eq!(
            set("a b a b"),
            set("a b a b a b").into_iter().take(2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn raw_text_path_matches_normalized_path() {
        let cfg = NormalizeConfig::default();
        let mut scratch = WordScratch::default();
        let mut normalized = String::new();
        for text in [
            "",
            "One",
            "  The Quick (brown) fox; jumps — over «the» lazy dog, 12 times…  ",
            "Ünïcödé wörds, ﬁne ligatures and 東京タワー next to ASCII words again and again",
        ] {
            for n in [1, 3, 5, 9] {
                let mut fused = Vec::new();
                let count = for_each_shingle_in_text(
                    text,
                    &cfg,
                    n,
                    &mut scratch,
                    Some(&mut normalized),
                    |h| fused.push(h),
                );
                let norm = crate::normalize::normalize(text, &cfg);
                assert_eq!(normalized, norm);
                let mut plain = Vec::new();
                assert_eq!(for_each_shingle(&norm, n, |h| plain.push(h)), count);
                assert_eq!(fused, plain, "{text:?} n={n}");
            }
        }
    }

    #[test]
    fn word_hash_ignores_the_bytes_after_the_word() {
        let mut rng = crate::test_rng::XorShift::new(0x1234_5678_9ABC_DEF1);
        let mut next = || rng.next_u64();
        for len in 0..=40 {
            let word: Vec<u8> = (0..len).map(|_| b'a' + (next() % 26) as u8).collect();
            let mut padded = word.clone();
            padded.extend((0..16).map(|_| next() as u8));
            assert_eq!(
                padded_word_hash(&padded, len),
                word_hash(&word),
                "len {len}"
            );
        }
    }

    #[test]
    fn short_words_do_not_collide() {
        // Every word of 1..=3 letters or digits, and words that differ only in length or in their
        // last byte (the masked edge): about 48,000 words.
        let alphabet: Vec<u8> = (b'a'..=b'z').chain(b'0'..=b'9').collect();
        let mut words: Vec<Vec<u8>> = Vec::new();
        for &a in &alphabet {
            words.push(vec![a]);
            for &b in &alphabet {
                words.push(vec![a, b]);
                for &c in &alphabet {
                    words.push(vec![a, b, c]);
                }
            }
        }
        for len in 4..=24 {
            for last in [b'a', b'b', b'0'] {
                let mut w = vec![b'x'; len];
                w[len - 1] = last;
                words.push(w);
            }
        }
        let mut hashes: Vec<u64> = words.iter().map(|w| word_hash(w)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), words.len());
    }

    #[test]
    fn jaccard_exact() {
        assert!((jaccard(&[1, 2, 3, 4], &[3, 4, 5, 6]) - 2.0 / 6.0).abs() < 1e-12);
        assert!((jaccard(&[], &[]) - 1.0).abs() < 1e-12);
        assert!(jaccard(&[1], &[]).abs() < 1e-12);
    }
}
