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
        push_words(text.nfkc(), cfg, out);
    } else if text.is_ascii() && !cfg.fold_digits {
        push_words_ascii(text.as_bytes(), cfg, out);
    } else {
        push_words(text.chars(), cfg, out);
    }
}

#[must_use]
pub fn normalize(text: &str, cfg: &NormalizeConfig) -> String {
    let mut out = String::new();
    normalize_into(text, cfg, &mut out);
    out
}

fn is_separator(c: char, strip_punctuation: bool) -> bool {
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

fn push_words(chars: impl Iterator<Item = char>, cfg: &NormalizeConfig, out: &mut String) {
    let mut pending_space = false;
    for c in chars {
        if is_separator(c, cfg.strip_punctuation) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if cfg.fold_digits && (c.is_ascii_digit() || is_unicode_decimal(c)) {
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

/// Byte loop for pure-ASCII text, the common case in web and code corpora (about 3× the char path).
fn push_words_ascii(bytes: &[u8], cfg: &NormalizeConfig, out: &mut String) {
    // SAFETY of the push below: only ASCII bytes are pushed, so `buf` stays UTF-8.
    let buf = unsafe { out.as_mut_vec() };
    let mut pending_space = false;
    for &b in bytes {
        let sep = b.is_ascii_whitespace()
            || b.is_ascii_control()
            || (cfg.strip_punctuation && b.is_ascii_punctuation());
        if sep {
            pending_space = !buf.is_empty();
            continue;
        }
        if pending_space {
            buf.push(b' ');
            pending_space = false;
        }
        buf.push(if cfg.lowercase {
            b.to_ascii_lowercase()
        } else {
            b
        });
    }
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
    fn ascii_and_unicode_paths_agree() {
        let cfg = NormalizeConfig::default();
        let text = "The Quick (brown) fox; jumps -- over 12 lazy dogs.";
        let mut via_chars = String::new();
        push_words(text.chars(), &cfg, &mut via_chars);
        assert_eq!(normalize(text, &cfg), via_chars);
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
