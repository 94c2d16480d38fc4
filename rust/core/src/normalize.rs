//! Text normalization shared by exact and near-duplicate detection.
//!
//! The output is the document's words, lowercased, with punctuation removed, joined by single spaces.
//! `for_each_word` yields the same words without building the output, which is how shingling reads
//! them.
//!
//! The fast path maps every byte through a 256-entry table (separators to 0) in one branch-free pass,
//! then finds the runs of non-zero bytes 64 at a time with bit masks. A run of ASCII bytes is one word,
//! already lowercased in the mapped buffer; only a run that holds a non-ASCII byte is decoded char by
//! char (`push_words`, which may split it further at Unicode separators). Per-byte branches at word
//! boundaries made the earlier char loop several times slower.

use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    pub lowercase: bool,
    /// Drop Unicode punctuation and symbols (they separate words, like whitespace).
    pub strip_punctuation: bool,
    /// Map every decimal digit to `0`, so "page 12" and "page 13" normalize alike.
    pub fold_digits: bool,
    /// Apply NFKC first (full-width forms, ligatures, compatibility characters).
    pub nfkc: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            lowercase: true,
            strip_punctuation: true,
            fold_digits: false,
            nfkc: false,
        }
    }
}

/// Normalize `text` into `out` (cleared first). Reusing `scratch` and `out` across documents
/// avoids allocations per document on a hot path.
pub fn normalize_with(
    text: &str,
    cfg: &NormalizeConfig,
    scratch: &mut WordScratch,
    out: &mut String,
) {
    out.clear();
    out.reserve(text.len() + WORD_PAD);
    for_each_padded_word(text, cfg, scratch, |padded, len| {
        push_padded_word(out, padded, len);
    });
}

/// Appends a word from `for_each_padded_word` to `out`, after a space unless `out` is empty. A
/// word of up to 16 bytes is copied as 16 bytes and the tail cut off: a fixed-size copy instead of
/// a `memcpy` call per word.
#[inline]
pub(crate) fn push_padded_word(out: &mut String, padded: &[u8], len: usize) {
    if !out.is_empty() {
        out.push(' ');
    }
    // SAFETY: of the bytes appended, only `padded[..len]` stays, and that is a whole word, valid
    // UTF-8 (see `for_each_word`); nothing reads `out` in between.
    let bytes = unsafe { out.as_mut_vec() };
    if len <= WORD_PAD {
        let end = bytes.len() + len;
        bytes.extend_from_slice(&padded[..WORD_PAD]);
        bytes.truncate(end);
    } else {
        bytes.extend_from_slice(&padded[..len]);
    }
}

#[must_use]
pub fn normalize(text: &str, cfg: &NormalizeConfig) -> String {
    let mut out = String::new();
    normalize_with(text, cfg, &mut WordScratch::default(), &mut out);
    out
}

/// Buffers reused by `for_each_word` across documents.
#[derive(Default)]
pub struct WordScratch {
    /// `byte_table` of the last config seen, keyed by its ASCII options: built once, not per
    /// document.
    table: Option<(u8, [u8; 256])>,
    mapped: Vec<u8>,
    masks: Vec<u64>,
    non_ascii: Vec<u64>,
    run: String,
    nfkc: String,
}

/// Calls `f` with every word of the normalized text, in order: the words `normalize` joins with
/// single spaces.
pub fn for_each_word(
    text: &str,
    cfg: &NormalizeConfig,
    scratch: &mut WordScratch,
    mut f: impl FnMut(&str),
) {
    for_each_padded_word(text, cfg, scratch, |padded, len| {
        // SAFETY: `padded[..len]` is a whole word: ASCII bytes, or a run of the decoded text split
        // at spaces, so valid UTF-8 either way.
        f(unsafe { std::str::from_utf8_unchecked(&padded[..len]) });
    });
}

/// Bytes that stay readable after every word `for_each_padded_word` hands out.
pub const WORD_PAD: usize = 16;

/// `for_each_word`, with each word given as `(padded, len)`: the word is `padded[..len]`, and
/// `padded` holds `WORD_PAD` more bytes after it (whatever follows in the mapped text, then zeros).
/// A word hash can then load 16 bytes and mask them instead of branching on the length.
pub fn for_each_padded_word(
    text: &str,
    cfg: &NormalizeConfig,
    scratch: &mut WordScratch,
    mut f: impl FnMut(&[u8], usize),
) {
    let WordScratch {
        table,
        mapped,
        masks,
        non_ascii,
        run,
        nfkc,
    } = scratch;
    let text = if cfg.nfkc {
        nfkc.clear();
        nfkc.extend(text.nfkc());
        nfkc.as_str()
    } else {
        text
    };
    let key = u8::from(cfg.lowercase)
        | u8::from(cfg.strip_punctuation) << 1
        | u8::from(cfg.fold_digits) << 2;
    if table.as_ref().is_none_or(|(k, _)| *k != key) {
        *table = Some((key, byte_table(cfg)));
    }
    let table = &table.as_ref().expect("set just above").1;
    let bytes = text.as_bytes();
    map_bytes(bytes, cfg, table, mapped, masks, non_ascii);
    // Most documents are all ASCII: then no run needs its bitmap range checked.
    let any_non_ascii = non_ascii.iter().any(|&m| m != 0);
    // A macro rather than a closure: the word loop must inline it (and `f`), which a closure call
    // did not get in every build.
    macro_rules! emit {
        ($start:expr, $end:expr) => {{
            let (start, end): (usize, usize) = ($start, $end);
            if any_non_ascii && any_bit(non_ascii, start, end) {
                // Runs end at ASCII bytes, so `start..end` lies on char boundaries.
                let wide = WIDE_TABLES[usize::from(key)].get_or_init(|| wide_table(cfg));
                decoded_words(&text[start..end], cfg, wide, run, &mut f);
            } else {
                f(&mapped[start..end + WORD_PAD], end - start);
            }
        }};
    }
    // Runs of word bytes (non-zero after mapping), found 64 bytes at a time: bit i of `words` is
    // set when byte i of the chunk belongs to a word.
    let mut run_start = None;
    for (c, &words) in masks.iter().enumerate() {
        let base = c * 64;
        let mut from = 0u32;
        loop {
            let above = u64::MAX << from;
            match run_start {
                None => {
                    let starts = words & above;
                    if starts == 0 {
                        break;
                    }
                    from = starts.trailing_zeros();
                    run_start = Some(base + from as usize);
                }
                Some(start) => {
                    // Bits past a short final chunk read as separators and end its last run.
                    let ends = !words & above;
                    if ends == 0 {
                        break;
                    }
                    from = ends.trailing_zeros();
                    emit!(start, (base + from as usize).min(bytes.len()));
                    run_start = None;
                }
            }
        }
    }
    if let Some(start) = run_start {
        emit!(start, bytes.len());
    }
}

/// The words of a run that holds non-ASCII bytes, decoded char by char (kept out of line: the
/// word loop inlines only the ASCII path, which nearly every word takes).
#[cold]
#[inline(never)]
fn decoded_words(
    text: &str,
    cfg: &NormalizeConfig,
    wide: &WideTable,
    run: &mut String,
    f: &mut impl FnMut(&[u8], usize),
) {
    push_words(text, cfg, Some(wide), run);
    let body = run.len();
    run.extend(std::iter::repeat_n('\0', WORD_PAD));
    let run = run.as_bytes();
    let mut from = 0;
    for (i, &b) in run[..body].iter().chain(std::iter::once(&b' ')).enumerate() {
        if b == b' ' {
            if i > from {
                f(&run[from..i + WORD_PAD], i - from);
            }
            from = i + 1;
        }
    }
}

pub(crate) fn is_separator(c: char, strip_punctuation: bool) -> bool {
    c.is_whitespace() || c.is_control() || (strip_punctuation && is_punct_or_symbol(c))
}

/// Punctuation and symbols: ASCII punctuation plus non-alphanumeric, non-mark characters above ASCII.
/// Marks (combining accents) stay inside their word.
fn is_punct_or_symbol(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    !(c.is_alphanumeric() || is_mark(c))
}

fn is_mark(c: char) -> bool {
    // The combining-mark blocks; enough to keep accented words whole without a full category table.
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0E31..=0x0E3A | 0x0E47..=0x0E4E | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0x3099..=0x309A | 0xFE20..=0xFE2F)
}

/// Whether any bit `start..end` (not empty) is set in the bitmap `masks`. Nearly every word lies
/// within one 64-bit mask, which takes one test.
#[inline]
fn any_bit(masks: &[u64], start: usize, end: usize) -> bool {
    let (first, last) = (start / 64, (end - 1) / 64);
    let from = u64::MAX << (start % 64);
    let to = u64::MAX >> (63 - (end - 1) % 64);
    if first == last {
        return masks[first] & from & to != 0;
    }
    masks[first] & from != 0
        || masks[first + 1..last].iter().any(|&m| m != 0)
        || masks[last] & to != 0
}

/// Maps `bytes` through `table` into `mapped`. Bit i of `words[i / 64]` is set when byte i belongs
/// to a word (maps to non-zero), and of `non_ascii[i / 64]` when it is not ASCII.
fn map_bytes(
    bytes: &[u8],
    cfg: &NormalizeConfig,
    table: &[u8; 256],
    mapped: &mut Vec<u8>,
    words: &mut Vec<u64>,
    non_ascii: &mut Vec<u64>,
) {
    mapped.clear();
    // Zeros after the text: `for_each_padded_word`'s `WORD_PAD`.
    mapped.resize(bytes.len() + WORD_PAD, 0);
    words.clear();
    non_ascii.clear();
    for (src, dst) in bytes.chunks(64).zip(mapped[..bytes.len()].chunks_mut(64)) {
        #[cfg(target_arch = "x86_64")]
        if let Ok(src64) = <&[u8; 64]>::try_from(src) {
            let dst64: &mut [u8; 64] = dst.try_into().expect("chunks of equal length");
            let (w, high) = sse2::map_64(src64, dst64, cfg);
            words.push(w);
            non_ascii.push(high);
            continue;
        }
        let (mut w, mut high) = (0u64, 0u64);
        for (i, (&b, out)) in src.iter().zip(dst.iter_mut()).enumerate() {
            *out = table[usize::from(b)];
            w |= u64::from(*out != 0) << i;
            high |= u64::from(b >= 0x80) << i;
        }
        words.push(w);
        non_ascii.push(high);
    }
}

/// `byte_table` computed 16 bytes at a time with SSE2 (part of x86-64, so no runtime check): range
/// compares classify the bytes and lowercase or fold them.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::NormalizeConfig;
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8,
        _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128, _mm_storeu_si128,
    };

    /// Maps 64 bytes; returns the word-byte and non-ASCII bitmaps.
    pub(super) fn map_64(src: &[u8; 64], dst: &mut [u8; 64], cfg: &NormalizeConfig) -> (u64, u64) {
        let (mut words, mut high) = (0u64, 0u64);
        for (i, (s, d)) in src
            .chunks_exact(16)
            .zip(dst.chunks_exact_mut(16))
            .enumerate()
        {
            // SAFETY: `s` and `d` are 16 bytes each, one unaligned 128-bit load and store; SSE2 is
            // always present on x86-64.
            let (w, h) = unsafe {
                let v = _mm_loadu_si128(s.as_ptr().cast());
                let (out, word) = map_16(v, cfg);
                _mm_storeu_si128(d.as_mut_ptr().cast(), out);
                (_mm_movemask_epi8(word), _mm_movemask_epi8(v))
            };
            words |= u64::from(w as u16) << (16 * i);
            high |= u64::from(h as u16) << (16 * i);
        }
        (words, high)
    }

    /// Bytes `lo..=hi` (ASCII bounds, compared as signed bytes, so bytes ≥ 0x80 are never inside).
    #[inline]
    fn within(v: __m128i, lo: u8, hi: u8) -> __m128i {
        // SAFETY: plain SSE2 register arithmetic.
        unsafe {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
            )
        }
    }

    /// The mapped bytes (0 for separators) and the word-byte lanes (all ones) of 16 input bytes.
    #[inline]
    fn map_16(v: __m128i, cfg: &NormalizeConfig) -> (__m128i, __m128i) {
        // SAFETY: plain SSE2 register arithmetic.
        unsafe {
            let zero = _mm_setzero_si128();
            let non_ascii = _mm_cmplt_epi8(v, zero);
            let digit = within(v, b'0', b'9');
            let upper = within(v, b'A', b'Z');
            let word = if cfg.strip_punctuation {
                let alpha = _mm_or_si128(upper, within(v, b'a', b'z'));
                _mm_or_si128(non_ascii, _mm_or_si128(digit, alpha))
            } else {
                // Everything above space except DEL.
                let printable = _mm_andnot_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)),
                    _mm_cmpgt_epi8(v, _mm_set1_epi8(0x20)),
                );
                _mm_or_si128(non_ascii, printable)
            };
            let mut out = v;
            if cfg.lowercase {
                out = _mm_add_epi8(out, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
            }
            if cfg.fold_digits {
                out = _mm_or_si128(
                    _mm_andnot_si128(digit, out),
                    _mm_and_si128(digit, _mm_set1_epi8(b'0' as i8)),
                );
            }
            (_mm_and_si128(out, word), word)
        }
    }
}

/// Per byte: 0 for an ASCII separator, else the byte to emit (lowercased or digit-folded as set).
/// Bytes of non-ASCII characters map to themselves: they are word bytes until `push_words` decodes
/// them.
fn byte_table(cfg: &NormalizeConfig) -> [u8; 256] {
    let mut t = [0u8; 256];
    for b in 128..=255u8 {
        t[b as usize] = b;
    }
    for b in 0u8..128 {
        let sep = b.is_ascii_whitespace()
            || b.is_ascii_control()
            || (cfg.strip_punctuation && b.is_ascii_punctuation());
        t[b as usize] = if sep {
            0
        } else if cfg.fold_digits && b.is_ascii_digit() {
            b'0'
        } else if cfg.lowercase {
            b.to_ascii_lowercase()
        } else {
            b
        };
    }
    t
}

/// The char-by-char normalizer: each char through `word_char`. Used on the runs that hold
/// non-ASCII characters (with the config's table), and as the reference the fast path is tested
/// against (without one: Unicode's rules alone). `out` is cleared first.
fn push_words(text: &str, cfg: &NormalizeConfig, wide: Option<&WideTable>, out: &mut String) {
    out.clear();
    let mut pending_space = false;
    for c in text.chars() {
        let word = word_char(c, cfg, wide, |l| {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(l);
        });
        if !word {
            pending_space = !out.is_empty();
        }
    }
}

/// Whether `c` belongs to a word under `cfg`; `push` gets the chars it becomes when it does
/// (lowercased, digit-folded). `wide`, the config's table, answers for the chars it covers;
/// Unicode's rules decide the rest.
#[inline]
fn word_char(
    c: char,
    cfg: &NormalizeConfig,
    wide: Option<&WideTable>,
    mut push: impl FnMut(char),
) -> bool {
    match wide.and_then(|w| w.get(c as usize).copied()) {
        Some(0) => false,
        Some(mapped) if mapped != WIDE_SLOW => {
            push(char::from_u32(mapped).expect("the table holds chars"));
            true
        }
        _ if is_separator(c, cfg.strip_punctuation) => false,
        _ if cfg.fold_digits && is_decimal_digit(c) => {
            push('0');
            true
        }
        _ if cfg.lowercase => {
            c.to_lowercase().for_each(push);
            true
        }
        _ => {
            push(c);
            true
        }
    }
}

/// Code points with a `WideTable` entry: the Basic Multilingual Plane, everything UTF-8 writes in
/// three bytes or fewer (Latin with diacritics, Greek, Cyrillic, Hebrew, Arabic, Indic scripts,
/// CJK, ...). 256 KiB per config, built once per process.
const WIDE: usize = 0x1_0000;
/// A `WideTable` entry for a char whose lowercase is several chars: the char-by-char rules apply.
const WIDE_SLOW: u32 = u32::MAX;

/// Per code point below `WIDE`, what `push_words` does with it under one config: 0 for a
/// separator, else the code point it emits (lowercased, digit-folded), or `WIDE_SLOW` (and for
/// the surrogates, which are no chars). One lookup instead of Unicode's category and case
/// tables, which made Cyrillic and Greek text 5× slower than with it.
type WideTable = [u32; WIDE];

/// The `wide_table` of each config (indexed by its ASCII-options key), built once per process at
/// the first non-ASCII run that needs it.
static WIDE_TABLES: [OnceLock<Box<WideTable>>; 8] = [const { OnceLock::new() }; 8];

/// Whether `c` belongs to a word under the default rules (lowercase, punctuation stripped);
/// `push` gets the chars it lowercases to when it does. The code-point table answers for the
/// Basic Multilingual Plane, Unicode's rules for the rest.
pub(crate) fn default_word_char(c: char, push: impl FnMut(char)) -> bool {
    const DEFAULT_KEY: usize = 0b011; // lowercase, strip_punctuation, no digit folding
    let cfg = NormalizeConfig::default();
    let table = WIDE_TABLES[DEFAULT_KEY].get_or_init(|| wide_table(&cfg));
    word_char(c, &cfg, Some(table), push)
}

fn wide_table(cfg: &NormalizeConfig) -> Box<WideTable> {
    let mut t: Box<WideTable> = vec![0u32; WIDE].try_into().expect("WIDE entries");
    for (cp, slot) in (0u32..).zip(t.iter_mut()) {
        let Some(c) = char::from_u32(cp) else {
            *slot = WIDE_SLOW;
            continue;
        };
        *slot = if is_separator(c, cfg.strip_punctuation) {
            0
        } else if cfg.fold_digits && is_decimal_digit(c) {
            u32::from('0')
        } else if cfg.lowercase {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => u32::from(l),
                _ => WIDE_SLOW,
            }
        } else {
            cp
        };
    }
    t
}

fn is_decimal_digit(c: char) -> bool {
    // ASCII digits, and Nd digits outside ASCII (Arabic-Indic, Devanagari, full-width, ...):
    // NFKC-free folding.
    matches!(c as u32, 0x30..=0x39 | 0x0660..=0x0669 | 0x06F0..=0x06F9 | 0x0966..=0x096F | 0xFF10..=0xFF19)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The char-by-char normalizer over the whole text: what the fast path must reproduce.
    fn reference(text: &str, cfg: &NormalizeConfig) -> String {
        let folded: String = if cfg.nfkc {
            text.nfkc().collect()
        } else {
            text.to_string()
        };
        let mut out = String::new();
        push_words(&folded, cfg, None, &mut out);
        out
    }

    #[test]
    fn fast_path_matches_char_by_char_reference() {
        // ASCII words, digits and separators mixed with accented and non-Latin letters, Unicode
        // spaces and punctuation, combining marks, case changes that alter byte length, and
        // full-width forms; lengths cross the 64-byte mask chunks.
        let pieces = [
            "a",
            "Bc",
            "DEF",
            "7",
            "42",
            " ",
            "  ",
            "\t",
            "\n",
            ",",
            ".",
            "-",
            "(",
            "_",
            "'",
            "é",
            "É",
            "ß",
            "İ",
            "\u{212A}",
            "東京",
            "\u{a0}",
            "—",
            "«",
            "»",
            "\u{301}",
            "🙂",
            "Ｆ",
            "１２",
            "\u{85}",
            "\u{2028}",
            "ｘ",
            "ǅ",
            "٣",
            "Жёлтый",
            "ΣΟΦΊΑ",
            "ς",
            "שלום",
            "،",
        ];
        let mut state = 12345u64;
        let mut next = |m: usize| (crate::minhash::splitmix64(&mut state) % m as u64) as usize;
        let cfgs: Vec<NormalizeConfig> = (0..16)
            .map(|bits| NormalizeConfig {
                lowercase: bits & 1 != 0,
                strip_punctuation: bits & 2 != 0,
                fold_digits: bits & 4 != 0,
                nfkc: bits & 8 != 0,
            })
            .collect();
        let mut scratch = WordScratch::default();
        let mut out = String::new();
        for doc in 0..3000 {
            let len = next(if doc % 10 == 0 { 400 } else { 60 });
            // Every fourth text is ASCII only (the path that skips the non-ASCII bitmap), and
            // every eighth has few separators, so words run past 16 bytes.
            let choices = match doc % 8 {
                1 | 5 => 11,
                3 => 6,
                _ => pieces.len(),
            };
            let text: String = (0..len).map(|_| pieces[next(choices)]).collect();
            for cfg in &cfgs {
                normalize_with(&text, cfg, &mut scratch, &mut out);
                assert_eq!(out, reference(&text, cfg), "{text:?} {cfg:?}");
            }
        }
    }

    /// The eight configs the byte and code-point tables are built for (NFKC off).
    fn every_ascii_config() -> impl Iterator<Item = NormalizeConfig> {
        (0..8).map(|bits| NormalizeConfig {
            lowercase: bits & 1 != 0,
            strip_punctuation: bits & 2 != 0,
            fold_digits: bits & 4 != 0,
            nfkc: false,
        })
    }

    #[test]
    fn wide_table_matches_the_char_rules() {
        // Every code point of the BMP, ASCII too, between word bytes and separators, under
        // every config: the table's lookups against the Unicode rules they stand for.
        let mut text = String::new();
        for c in (0u32..WIDE as u32).filter_map(char::from_u32) {
            text.extend(['a', c, 'b', ' ', c, ' ']);
        }
        for cfg in every_ascii_config() {
            let (mut fast, mut slow) = (String::new(), String::new());
            push_words(&text, &cfg, Some(&wide_table(&cfg)), &mut fast);
            push_words(&text, &cfg, None, &mut slow);
            assert_eq!(fast, slow, "{cfg:?}");
        }
    }

    #[test]
    fn default_word_char_matches_the_char_rules() {
        // The BMP through the table, and astral chars (emoji, rare CJK, Deseret capitals) through
        // the full rules.
        let astral = [
            0x1F600, 0x1F4A9, 0x20000, 0x2A6D6, 0x10400, 0x10428, 0x1D400, 0xE0001,
        ];
        for c in (0u32..0x1_0000).chain(astral).filter_map(char::from_u32) {
            let mut got = String::new();
            let word = default_word_char(c, |l| got.push(l));
            assert_eq!(word, !is_separator(c, true), "{c:?}");
            let want: String = if word {
                c.to_lowercase().collect()
            } else {
                String::new()
            };
            assert_eq!(got, want, "{c:?}");
        }
    }

    #[test]
    fn any_bit_matches_bit_by_bit() {
        let mut state = 99u64;
        let masks: Vec<u64> = (0..4)
            .map(|i| {
                let m = crate::minhash::splitmix64(&mut state);
                // Sparse masks, so that ranges with no bit set are common.
                m & crate::minhash::splitmix64(&mut state) & u64::from(i != 2).wrapping_neg()
            })
            .collect();
        for start in 0..256 {
            for end in start + 1..=256 {
                let naive = (start..end).any(|i| masks[i / 64] >> (i % 64) & 1 == 1);
                assert_eq!(any_bit(&masks, start, end), naive, "{start}..{end}");
            }
        }
    }

    #[test]
    fn every_byte_maps_like_the_table() {
        // 256 bytes in four 64-byte chunks go through the vector path; one more byte takes the
        // scalar tail.
        let bytes: Vec<u8> = (0..=255u8).chain([b'Q']).collect();
        for cfg in every_ascii_config() {
            let table = byte_table(&cfg);
            let (mut mapped, mut words, mut high) = (Vec::new(), Vec::new(), Vec::new());
            map_bytes(&bytes, &cfg, &table, &mut mapped, &mut words, &mut high);
            for (i, &b) in bytes.iter().enumerate() {
                assert_eq!(mapped[i], table[usize::from(b)], "byte {b:#x} {cfg:?}");
                assert_eq!(
                    words[i / 64] >> (i % 64) & 1 == 1,
                    mapped[i] != 0,
                    "byte {b:#x}"
                );
                assert_eq!(high[i / 64] >> (i % 64) & 1 == 1, b >= 0x80, "byte {b:#x}");
            }
        }
    }

    #[test]
    fn collapses_and_strips() {
        let cfg = NormalizeConfig::default();
        assert_eq!(
            normalize("  Hello,   World!\n\tFoo-bar ", &cfg),
            "hello world foo bar"
        );
        assert_eq!(normalize("", &cfg), "");
        assert_eq!(normalize("...!!!", &cfg), "");
    }

    #[test]
    fn ascii_bytes_and_decoded_chars_agree() {
        // The same words with ASCII and non-ASCII neighbours normalize alike.
        let cfg = NormalizeConfig::default();
        assert_eq!(
            normalize("The Quick (brown) fox; 12 dogs.", &cfg),
            "the quick brown fox 12 dogs"
        );
        assert_eq!(
            normalize("The Quick «brown» fox— 12 dogs…", &cfg),
            "the quick brown fox 12 dogs"
        );
        assert_eq!(normalize("ÀB\u{a0}Ç", &cfg), "àb ç");
    }

    #[test]
    fn unicode_words_keep_marks_and_drop_symbols() {
        let cfg = NormalizeConfig::default();
        assert_eq!(
            normalize("Café — naïve «résumé» 東京タワー 🙂", &cfg),
            "café naïve résumé 東京タワー"
        );
        // A combining acute accent stays in its word.
        assert_eq!(normalize("Cafe\u{301} ok", &cfg), "cafe\u{301} ok");
    }

    #[test]
    fn digit_folding_and_nfkc() {
        let fold = NormalizeConfig {
            fold_digits: true,
            ..NormalizeConfig::default()
        };
        assert_eq!(normalize("page 12 of ٣٤", &fold), "page 00 of 00");
        let nfkc = NormalizeConfig {
            nfkc: true,
            ..NormalizeConfig::default()
        };
        assert_eq!(normalize("ＦＵＬＬ ﬁne", &nfkc), "full fine");
    }
}
