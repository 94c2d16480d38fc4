//! Text normalization shared by exact and near-duplicate detection.
//!
//! The output is the document's words, lowercased, with punctuation removed, joined by single spaces.
//! Joining by one space makes every word n-gram a contiguous slice of the output, so shingles are
//! hashed straight from it without building strings.

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

/// Normalize `text` into `out` (cleared first). Reusing `out` across documents avoids an allocation
/// per document on the hot path.
pub fn normalize_into(text: &str, cfg: &NormalizeConfig, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    if cfg.nfkc {
        let folded: String = text.nfkc().collect();
        push_words(&folded, cfg, out);
    } else {
        push_words(text, cfg, out);
    }
}

#[must_use]
pub fn normalize(text: &str, cfg: &NormalizeConfig) -> String {
    let mut out = String::new();
    normalize_into(text, cfg, &mut out);
    out
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

/// Per ASCII byte: 0 for a separator, else the byte to emit (lowercased or digit-folded as set).
fn ascii_table(cfg: &NormalizeConfig) -> [u8; 128] {
    let mut t = [0u8; 128];
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

/// One pass over the bytes: ASCII bytes go through a lookup table, and only the bytes of
/// non-ASCII characters are decoded (most real text is ASCII with a few names or symbols).
fn push_words(text: &str, cfg: &NormalizeConfig, out: &mut String) {
    let table = ascii_table(cfg);
    let bytes = text.as_bytes();
    let mut pending_space = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            i += 1;
            let o = table[b as usize];
            if o == 0 {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(o as char);
            continue;
        }
        let c = text[i..].chars().next().expect("i is on a char boundary");
        i += c.len_utf8();
        if is_separator(c, cfg.strip_punctuation) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if cfg.fold_digits && is_unicode_decimal(c) {
            out.push('0');
        } else if cfg.lowercase {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
}

fn is_unicode_decimal(c: char) -> bool {
    // Nd digits outside ASCII (Arabic-Indic, Devanagari, full-width, ...): NFKC-free folding.
    matches!(c as u32, 0x0660..=0x0669 | 0x06F0..=0x06F9 | 0x0966..=0x096F | 0xFF10..=0xFF19)
}

#[cfg(test)]
mod tests {
    use super::*;

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
