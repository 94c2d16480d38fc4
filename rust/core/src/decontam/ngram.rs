//! Words and word n-grams for decontamination, with byte offsets into the original text.
//!
//! A word is a maximal run of characters that are not separators (whitespace, control characters,
//! punctuation and symbols, as in `normalize`), lowercased. Each word is hashed with xxh3-64; the
//! key of an n-gram is a polynomial rolling hash of its word hashes, so sliding the window costs
//! O(1) whatever n is.

use crate::normalize::default_word_char;
use xxhash_rust::xxh3::xxh3_64;

/// A word of the original text: the hash of its lowercased form and its byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    pub hash: u64,
    pub start: usize,
    pub end: usize,
}

/// ASCII letters and digits are word bytes; every other ASCII byte separates words.
const fn ascii_word_table() -> [bool; 128] {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    t
}
const ASCII_WORD: [bool; 128] = ascii_word_table();

/// The words of `text`, appended to `out` (cleared first); `buf` is scratch for lowercased words.
///
/// Most words are ASCII and already lowercase: those are hashed straight from the text. A word with
/// capitals is lowercased into `buf` first; a word with non-ASCII characters goes through `buf`
/// character by character.
pub fn words_into(text: &str, out: &mut Vec<Word>, buf: &mut Vec<u8>) {
    out.clear();
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let b = bytes[i];
        if b < 0x80 {
            if !ASCII_WORD[b as usize] {
                i += 1;
                continue;
            }
        } else {
            let c = text[i..].chars().next().expect("i is on a char boundary");
            if !default_word_char(c, |_| ()) {
                i += c.len_utf8();
                continue;
            }
        }
        let start = i;
        let mut upper = false;
        while i < n && bytes[i] < 0x80 && ASCII_WORD[bytes[i] as usize] {
            upper |= bytes[i].is_ascii_uppercase();
            i += 1;
        }
        if i == n || bytes[i] < 0x80 {
            let hash = if upper {
                buf.clear();
                buf.extend(bytes[start..i].iter().map(u8::to_ascii_lowercase));
                xxh3_64(buf)
            } else {
                xxh3_64(&bytes[start..i])
            };
            out.push(Word {
                hash,
                start,
                end: i,
            });
            continue;
        }
        // The word goes on with non-ASCII characters.
        buf.clear();
        buf.extend(bytes[start..i].iter().map(u8::to_ascii_lowercase));
        let mut tmp = [0u8; 4];
        while i < n {
            let b = bytes[i];
            if b < 0x80 {
                if !ASCII_WORD[b as usize] {
                    break;
                }
                buf.push(b.to_ascii_lowercase());
                i += 1;
                continue;
            }
            let c = text[i..].chars().next().expect("i is on a char boundary");
            let word = default_word_char(c, |l| {
                buf.extend_from_slice(l.encode_utf8(&mut tmp).as_bytes());
            });
            if !word {
                break;
            }
            i += c.len_utf8();
        }
        out.push(Word {
            hash: xxh3_64(buf),
            start,
            end: i,
        });
    }
}

/// The normalized form of `text` (its words, lowercased, joined by single spaces): the matched
/// n-gram as reports show it.
#[must_use]
pub fn normalized_words(text: &str) -> String {
    let mut words = Vec::new();
    words_into(text, &mut words, &mut Vec::new());
    let mut out = String::new();
    for w in &words {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(text[w.start..w.end].chars().flat_map(char::to_lowercase));
    }
    out
}

/// Multiplier of the rolling hash (odd, from the golden ratio).
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

/// Keys of every window of `n` consecutive words: `keys[i]` covers `words[i..i + n]`. Empty when
/// there are fewer than `n` words.
pub fn ngram_keys(words: &[Word], n: usize, keys: &mut Vec<u64>) {
    keys.clear();
    if n == 0 || words.len() < n {
        return;
    }
    let top = BASE.wrapping_pow(n as u32 - 1);
    let mut h = 0u64;
    for w in &words[..n] {
        h = h.wrapping_mul(BASE).wrapping_add(w.hash);
    }
    keys.push(finish(h));
    for i in n..words.len() {
        h = h
            .wrapping_sub(words[i - n].hash.wrapping_mul(top))
            .wrapping_mul(BASE)
            .wrapping_add(words[i].hash);
        keys.push(finish(h));
    }
}

/// A final mix, so that keys are uniform even where the polynomial is not.
fn finish(h: u64) -> u64 {
    let mut z = h ^ (h >> 30);
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        let mut out = Vec::new();
        words_into(text, &mut out, &mut Vec::new());
        out
    }

    #[test]
    fn words_carry_offsets_and_fold_case_and_punctuation() {
        let text = "Hello,  WORLD! Ça va? x=1";
        let w = words(text);
        let spans: Vec<&str> = w.iter().map(|w| &text[w.start..w.end]).collect();
        assert_eq!(spans, ["Hello", "WORLD", "Ça", "va", "x", "1"]);
        assert_eq!(w[0].hash, words("hello")[0].hash);
        assert_eq!(w[2].hash, words("ça")[0].hash);
        assert_eq!(normalized_words(text), "hello world ça va x 1");
        // Mixed words, capitals inside non-ASCII words, separators above ASCII.
        let text = "naïve—CAFÉ déjà-vu Straße «quoted» ΑΒΓ";
        let got: Vec<u64> = words(text).iter().map(|w| w.hash).collect();
        let want: Vec<u64> = ["naïve", "café", "déjà", "vu", "straße", "quoted", "αβγ"]
            .iter()
            .map(|w| xxh3_64(w.as_bytes()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rolling_keys_equal_keys_computed_from_scratch() {
        let text = "the quick brown fox jumps over the lazy dog and the quick brown fox again";
        let w = words(text);
        let mut rolling = Vec::new();
        ngram_keys(&w, 4, &mut rolling);
        assert_eq!(rolling.len(), w.len() - 3);
        for (i, k) in rolling.iter().enumerate() {
            let mut fresh = Vec::new();
            ngram_keys(&w[i..i + 4], 4, &mut fresh);
            assert_eq!(*k, fresh[0]);
        }
        // "the quick brown fox" appears twice.
        assert_eq!(rolling[0], rolling[10]);
        // Case, punctuation and spacing do not change keys.
        let mut other = Vec::new();
        ngram_keys(&words("THE quick,  brown\nfox!"), 4, &mut other);
        assert_eq!(other, vec![rolling[0]]);
    }
}
