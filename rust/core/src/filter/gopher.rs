//! Gopher's quality and repetition rules (Rae et al. 2021, appendix A), with the thresholds and
//! measures datatrove uses for them.

use super::charsets::is_punctuation;
use super::text::{
    PreHashedBuild, char_len, count_str, duplicates, is_py_alpha, is_py_space, py_strip, ratio,
    split_runs, splitlines,
};
use super::{Outcome, Words};
use std::collections::HashSet;
use xxhash_rust::xxh3::xxh3_64;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherQualityConfig {
    pub enabled: bool,
    /// Bounds on the words that are not pure punctuation.
    #[serde(deserialize_with = "super::off_or")]
    pub min_doc_words: Option<u64>,
    #[serde(deserialize_with = "super::off_or")]
    pub max_doc_words: Option<u64>,
    /// Bounds on the mean length (code points) of those words.
    #[serde(deserialize_with = "super::off_or")]
    pub min_avg_word_length: Option<f64>,
    #[serde(deserialize_with = "super::off_or")]
    pub max_avg_word_length: Option<f64>,
    /// `#` per word, and `...`/`…` per word, each at most this.
    #[serde(deserialize_with = "super::off_or")]
    pub max_symbol_word_ratio: Option<f64>,
    /// Lines starting with `•` or `-`.
    #[serde(deserialize_with = "super::off_or")]
    pub max_bullet_lines_ratio: Option<f64>,
    /// Lines ending with `...` or `…`.
    #[serde(deserialize_with = "super::off_or")]
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// At least this fraction of words must hold an alphabetic character.
    #[serde(deserialize_with = "super::off_or")]
    pub max_non_alpha_words_ratio: Option<f64>,
    #[serde(deserialize_with = "super::off_or")]
    pub min_stop_words: Option<u64>,
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherRepetitionConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "super::off_or")]
    pub dup_line_frac: Option<f64>,
    #[serde(deserialize_with = "super::off_or")]
    pub dup_para_frac: Option<f64>,
    #[serde(deserialize_with = "super::off_or")]
    pub dup_line_char_frac: Option<f64>,
    #[serde(deserialize_with = "super::off_or")]
    pub dup_para_char_frac: Option<f64>,
    /// `(n, max)`: the most frequent word n-gram's characters (length × count) over the text's.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `(n, max)`: characters of n-grams that repeat an earlier one, over the text's.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

impl GopherQualityConfig {
    pub fn stat_names(&self, out: &mut Vec<String>) {
        out.extend(
            [
                "gopher_words",
                "gopher_mean_word_length",
                "gopher_hash_ratio",
                "gopher_ellipsis_ratio",
                "gopher_bullet_lines",
                "gopher_ellipsis_lines",
                "gopher_alpha_words",
                "gopher_stop_words",
            ]
            .map(String::from),
        );
    }

    pub fn evaluate(&self, text: &str, words: &Words, out: &mut Outcome) {
        let n_words = words.len();
        let mut content_words = 0usize;
        let mut content_chars = 0usize;
        let mut alpha = 0usize;
        let mut stop_seen = vec![false; self.stop_words.len()];
        let stop_len = self.stop_words.iter().map(String::len).max().unwrap_or(0);
        for w in words.iter(text) {
            if w.chars().any(|c| !is_punctuation(c)) {
                content_words += 1;
                content_chars += char_len(w);
            }
            if w.chars().any(is_py_alpha) {
                alpha += 1;
            }
            if w.len() <= stop_len
                && let Some(k) = self.stop_words.iter().position(|s| s == w)
            {
                stop_seen[k] = true;
            }
        }
        // Distinct stop words present, as the reference counts them.
        let stop = stop_seen.iter().filter(|&&x| x).count() as u64;
        // NaN without words: both length bounds then pass, as with NumPy's mean of nothing.
        let mean_len = if content_words == 0 {
            f64::NAN
        } else {
            content_chars as f64 / content_words as f64
        };
        let hash_ratio = ratio(count_str(text, "#"), n_words);
        let ellipsis_ratio = ratio(count_str(text, "...") + count_str(text, "…"), n_words);
        let (mut lines, mut bullets, mut ellipsis_lines) = (0usize, 0usize, 0usize);
        for line in splitlines(text) {
            lines += 1;
            let l = line.trim_start_matches(is_py_space);
            bullets += usize::from(l.starts_with('•') || l.starts_with('-'));
            let r = line.trim_end_matches(is_py_space);
            ellipsis_lines += usize::from(r.ends_with("...") || r.ends_with('…'));
        }
        let bullet_frac = ratio(bullets, lines);
        let ellipsis_frac = ratio(ellipsis_lines, lines);
        let alpha_frac = ratio(alpha, n_words);
        out.stats.extend([
            content_words as f64,
            mean_len,
            hash_ratio,
            ellipsis_ratio,
            bullet_frac,
            ellipsis_frac,
            alpha_frac,
            stop as f64,
        ]);
        let cw = content_words as u64;
        out.fail_if(
            self.min_doc_words.is_some_and(|m| cw < m),
            "gopher_short_doc",
        );
        out.fail_if(
            self.max_doc_words.is_some_and(|m| cw > m),
            "gopher_long_doc",
        );
        out.fail_if(
            self.min_avg_word_length.is_some_and(|m| mean_len < m),
            "gopher_short_words",
        );
        out.fail_if(
            self.max_avg_word_length.is_some_and(|m| mean_len > m),
            "gopher_long_words",
        );
        out.fail_if(
            self.max_symbol_word_ratio.is_some_and(|m| hash_ratio > m),
            "gopher_hashes",
        );
        out.fail_if(
            self.max_symbol_word_ratio
                .is_some_and(|m| ellipsis_ratio > m),
            "gopher_ellipsis",
        );
        out.fail_if(
            self.max_bullet_lines_ratio.is_some_and(|m| bullet_frac > m),
            "gopher_bullet_lines",
        );
        out.fail_if(
            self.max_ellipsis_lines_ratio
                .is_some_and(|m| ellipsis_frac > m),
            "gopher_ellipsis_lines",
        );
        out.fail_if(
            self.max_non_alpha_words_ratio
                .is_some_and(|m| alpha_frac < m),
            "gopher_alpha_words",
        );
        out.fail_if(
            self.min_stop_words.is_some_and(|m| stop < m),
            "gopher_stop_words",
        );
    }
}

/// Reused buffers and tables, so a document costs no allocation once they have grown.
#[derive(Default)]
pub struct RepetitionScratch {
    token_hashes: Vec<u64>,
    token_chars: Vec<u32>,
    /// The words whose n-gram may occur more than once, in text order, and the hash of that
    /// n-gram for the current n. An n-gram can only repeat where its (n-1)-gram prefix does, so
    /// the list shrinks as n grows; in prose few words are left after n = 3.
    live: Vec<u32>,
    grams: Vec<u64>,
    /// Per entry of `live`: its table slot, and whether its n-gram occurs more than once.
    slot_of: Vec<u32>,
    repeats: Vec<bool>,
    counts: GramCounts,
    seen: HashSet<u64, PreHashedBuild>,
}

/// One distinct n-gram: its hash, how often it occurs, and its first entry in `live`. `count` 0
/// marks an empty slot; its top bit marks an n-gram the duplicate scan has met.
#[derive(Clone, Copy, Default)]
struct GramSlot {
    key: u64,
    count: u32,
    first: u32,
}

const SEEN: u32 = 1 << 31;

/// Entries ahead whose table slot is prefetched.
const PREFETCH_AHEAD: usize = 16;

/// Counts of n-gram hashes: open addressing with linear probing, at most half full. Each
/// position remembers its slot, so the later passes over the positions index the table directly
/// instead of looking each n-gram up again.
#[derive(Default)]
struct GramCounts {
    slots: Vec<GramSlot>,
    mask: usize,
}

impl GramCounts {
    /// Empty, with room for `keys` distinct keys.
    fn reset(&mut self, keys: usize) {
        let capacity = (2 * keys).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(capacity, GramSlot::default());
        self.mask = capacity - 1;
    }

    /// Ask for the slot where `key`'s probe starts to be brought into the cache.
    #[inline]
    fn prefetch(&self, key: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let slot = &self.slots[key as usize & self.mask];
            // SAFETY: a prefetch only hints the cache; the address is a live slot.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(slot).cast()) };
        }
    }

    /// Count one occurrence of `key` at word `pos`; returns its slot.
    #[inline]
    fn add(&mut self, key: u64, pos: u32) -> usize {
        let mut i = key as usize & self.mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.count == 0 {
                *slot = GramSlot {
                    key,
                    count: 1,
                    first: pos,
                };
                return i;
            }
            if slot.key == key {
                slot.count += 1;
                return i;
            }
            i = (i + 1) & self.mask;
        }
    }
}

impl GopherRepetitionConfig {
    pub fn stat_names(&self, out: &mut Vec<String>) {
        out.extend(
            [
                "gopher_dup_para_frac",
                "gopher_dup_para_char_frac",
                "gopher_dup_line_frac",
                "gopher_dup_line_char_frac",
            ]
            .map(String::from),
        );
        for (n, _) in &self.top_n_grams {
            out.push(format!("gopher_top_{n}_gram_char_frac"));
        }
        for (n, _) in &self.dup_n_grams {
            out.push(format!("gopher_dup_{n}_gram_char_frac"));
        }
    }

    pub fn evaluate(
        &self,
        text: &str,
        words: &Words,
        scratch: &mut RepetitionScratch,
        out: &mut Outcome,
    ) {
        let text_chars = char_len(text);
        out.fail_if(text.is_empty(), "gopher_empty");
        let seen = &mut scratch.seen;
        let paragraphs = split_runs(py_strip(text), b'\n', 2);
        let (dup_paras, dup_para_chars) = duplicates(paragraphs.iter().copied(), seen);
        let para_frac = ratio(dup_paras, paragraphs.len());
        let para_char_frac = ratio(dup_para_chars, text_chars);
        let lines = split_runs(text, b'\n', 1);
        let (dup_lines, dup_line_chars) = duplicates(lines.iter().copied(), seen);
        let line_frac = ratio(dup_lines, lines.len());
        let line_char_frac = ratio(dup_line_chars, text_chars);
        out.stats
            .extend([para_frac, para_char_frac, line_frac, line_char_frac]);
        out.fail_if(
            self.dup_para_frac.is_some_and(|m| para_frac > m),
            "gopher_dup_para",
        );
        out.fail_if(
            self.dup_para_char_frac.is_some_and(|m| para_char_frac > m),
            "gopher_dup_para_chars",
        );
        out.fail_if(
            self.dup_line_frac.is_some_and(|m| line_frac > m),
            "gopher_dup_line",
        );
        out.fail_if(
            self.dup_line_char_frac.is_some_and(|m| line_char_frac > m),
            "gopher_dup_line_chars",
        );

        scratch.token_hashes.clear();
        scratch.token_chars.clear();
        for w in words.iter(text) {
            scratch.token_hashes.push(xxh3_64(w.as_bytes()));
            scratch.token_chars.push(char_len(w) as u32);
        }
        // Hashes of the n-grams starting at every word, extended one word at a time from n = 1
        // up to the largest n asked for.
        let mut needed: Vec<usize> = self
            .top_n_grams
            .iter()
            .chain(&self.dup_n_grams)
            .map(|&(n, _)| n)
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let mut top = vec![0.0; self.top_n_grams.len()];
        let mut dup = vec![0.0; self.dup_n_grams.len()];
        let n_words = scratch.token_hashes.len();
        scratch.live.clear();
        scratch.live.extend(0..n_words as u32);
        scratch.grams.clear();
        scratch.grams.extend_from_slice(&scratch.token_hashes);
        let mut n_have = 1;
        for n in needed {
            if n > n_words {
                break;
            }
            while n_have < n {
                // Words too close to the end to start an n-gram drop out; the rest take one more
                // word into their hash.
                let t = &scratch.token_hashes;
                let keep = scratch
                    .live
                    .partition_point(|&i| (i as usize) + n_have < n_words);
                scratch.live.truncate(keep);
                scratch.grams.truncate(keep);
                for (&i, g) in scratch.live.iter().zip(&mut scratch.grams) {
                    *g = (g.rotate_left(23) ^ t[i as usize + n_have])
                        .wrapping_mul(0xff51_afd7_ed55_8ccd);
                }
                n_have += 1;
            }
            let (top_chars, dup_chars) = count_ngrams(scratch, n);
            for (k, &(tn, _)) in self.top_n_grams.iter().enumerate() {
                if tn == n {
                    top[k] = ratio(top_chars, text_chars);
                }
            }
            for (k, &(dn, _)) in self.dup_n_grams.iter().enumerate() {
                if dn == n {
                    dup[k] = ratio(dup_chars, text_chars);
                }
            }
        }
        for (&frac, &(n, max)) in top.iter().zip(&self.top_n_grams) {
            out.stats.push(frac);
            if frac > max {
                out.failed.push(format!("gopher_top_{n}_gram"));
            }
        }
        for (&frac, &(n, max)) in dup.iter().zip(&self.dup_n_grams) {
            out.stats.push(frac);
            if frac > max {
                out.failed.push(format!("gopher_dup_{n}_gram"));
            }
        }
    }
}

/// Spread a mixed n-gram hash over all bits (the maps use it as is).
#[inline]
fn finish(x: u64) -> u64 {
    x ^ (x >> 29)
}

/// For the n-grams of the words in `s.live`: the characters of the most frequent one (words joined
/// by spaces) times its count, among equally frequent ones the first in the text, as Python's
/// `Counter.most_common` picks it; and the characters (words joined without spaces) of n-grams
/// that repeat an earlier one, skipping past a repeat so overlapping repeats are not counted twice
/// (datatrove's `find_all_duplicate`). Then `s.live` keeps only the words whose n-gram repeats,
/// for the next n. The n-grams of the other words occur once, so they change neither figure.
fn count_ngrams(s: &mut RepetitionScratch, n: usize) -> (usize, usize) {
    let live = s.live.len();
    s.counts.reset(live);
    s.slot_of.clear();
    s.slot_of.resize(live, 0);
    s.repeats.clear();
    s.repeats.resize(live, false);
    // (count, first entry) of the most frequent n-gram so far.
    let mut best: (u32, u32) = (1, 0);
    for (k, &g) in s.grams.iter().enumerate() {
        // Long documents outgrow the cache; asking for a slot some entries ahead overlaps the
        // misses (5 % on the filter bench's sample).
        if let Some(&ahead) = s.grams.get(k + PREFETCH_AHEAD) {
            s.counts.prefetch(finish(ahead));
        }
        let slot = s.counts.add(finish(g), k as u32);
        s.slot_of[k] = slot as u32;
        let GramSlot { count, first, .. } = s.counts.slots[slot];
        // An entry repeats once its n-gram has been met before; the first occurrence is marked
        // when the second arrives.
        if count > 1 {
            s.repeats[k] = true;
            s.repeats[first as usize] = true;
        }
        // Counts only grow, so checking each slot as it grows finds the final maximum. Entries
        // are in text order, so the earlier entry is the earlier word.
        if count > best.0 || (count == best.0 && first < best.1) {
            best = (count, first);
        }
    }
    let chars_at = |i: usize| {
        s.token_chars[i..i + n]
            .iter()
            .map(|&c| c as usize)
            .sum::<usize>()
    };
    // When every n-gram occurs once, the first word's is the most common.
    let top_word = if best.0 > 1 {
        s.live[best.1 as usize] as usize
    } else {
        0
    };
    let top = (chars_at(top_word) + n - 1) * best.0 as usize;
    // The duplicate scan walks the text; words outside `live` start an n-gram met only once,
    // which neither counts nor is skipped over.
    let mut repeated = 0usize;
    let mut next = 0usize;
    for (k, &i) in s.live.iter().enumerate() {
        let i = i as usize;
        if !s.repeats[k] || i < next {
            continue;
        }
        let slot = &mut s.counts.slots[s.slot_of[k] as usize];
        if slot.count & SEEN != 0 {
            repeated += chars_at(i);
            next = i + n;
        } else {
            slot.count |= SEEN;
        }
    }
    let mut kept = 0;
    for k in 0..live {
        if s.repeats[k] {
            s.live[kept] = s.live[k];
            s.grams[kept] = s.grams[k];
            kept += 1;
        }
    }
    s.live.truncate(kept);
    s.grams.truncate(kept);
    (top, repeated)
}
