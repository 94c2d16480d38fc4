//! Small text measures the rules share, with Python's semantics where the reference rules (Gopher,
//! C4 and `FineWeb` as datatrove writes them) depend on them: lengths in code points, `splitlines`
//! line breaks, `strip` whitespace.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use xxhash_rust::xxh3::xxh3_64;

/// Length in Unicode code points (Python's `len`).
#[inline]
#[must_use]
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.bytes().filter(|b| (b & 0xC0) != 0x80).count()
}

/// The lines of `s` as Python's `str.splitlines()` gives them (`\n`, `\r\n`, `\r`, `\v`, `\f`,
/// `\x1c`–`\x1e`, `\x85`, U+2028, U+2029; no empty last line after a final break).
pub fn splitlines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        for (i, c) in rest.char_indices() {
            let brk = match c {
                '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
                | '\u{2029}' => c.len_utf8(),
                '\r' => {
                    if rest.as_bytes().get(i + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    }
                }
                _ => continue,
            };
            let line = &rest[..i];
            rest = &rest[i + brk..];
            return Some(line);
        }
        let line = rest;
        rest = "";
        Some(line)
    })
}

/// Split at runs of `sep` of at least `min_run` (Python's `re.split("\n+")` and `"\n{2,}"`):
/// leading and trailing empty pieces are kept, as `re.split` keeps them.
#[must_use]
pub fn split_runs(s: &str, sep: u8, min_run: usize) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut piece = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == sep {
            let run = b[i..].iter().take_while(|&&x| x == sep).count();
            if run >= min_run {
                out.push(&s[piece..i]);
                piece = i + run;
            }
            i += run;
        } else {
            i += 1;
        }
    }
    out.push(&s[piece..]);
    out
}

/// Python's `str.isspace()` for one character: Unicode whitespace plus U+001C..U+001F.
#[inline]
#[must_use]
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.isalpha()` for one character (letters; combining marks are not).
#[inline]
#[must_use]
pub fn is_py_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    super::charsets::is_alphabetic(c) && !is_mark_like(c)
}

/// Combining marks that Rust counts as alphabetic and Python does not (the common blocks).
fn is_mark_like(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05C7 | 0x0610..=0x061A
        | 0x064B..=0x065F | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963
        | 0x0981..=0x0983 | 0x09BC..=0x09D7 | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Python's `str.strip()`: whitespace off both ends.
#[inline]
#[must_use]
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Elements seen before (counted again each time they recur) and their total length in code
/// points: datatrove's `find_duplicates`. Elements are compared by a 64-bit hash and length.
pub fn duplicates<'a>(
    items: impl IntoIterator<Item = &'a str>,
    seen: &mut HashSet<u64, PreHashedBuild>,
) -> (usize, usize) {
    seen.clear();
    let (mut n, mut chars) = (0, 0);
    for it in items {
        if !seen.insert(xxh3_64(it.as_bytes()) ^ (it.len() as u64).rotate_left(48)) {
            n += 1;
            chars += char_len(it);
        }
    }
    (n, chars)
}

/// Non-overlapping occurrences of `pat` (Python's `str.count`).
#[must_use]
pub fn count_str(s: &str, pat: &str) -> usize {
    s.matches(pat).count()
}

/// `a / b`, 0 when `b` is 0 (a rule over no lines or words has nothing to complain about; the
/// emptiness itself is a separate rule).
#[inline]
#[must_use]
pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A hasher for keys that already are good 64-bit hashes.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type PreHashedBuild = BuildHasherDefault<PreHashed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        let got: Vec<&str> = splitlines("a\nb\r\nc\rd\u{2028}e\n\nf\n").collect();
        assert_eq!(got, ["a", "b", "c", "d", "e", "", "f"]);
        assert_eq!(splitlines("").count(), 0);
        assert_eq!(splitlines("\n").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn split_runs_matches_re_split() {
        assert_eq!(
            split_runs("\na\n\nb\nc\n", b'\n', 1),
            ["", "a", "b", "c", ""]
        );
        assert_eq!(split_runs("a\n\nb\nc\n\n\nd", b'\n', 2), ["a", "b\nc", "d"]);
    }

    #[test]
    fn duplicates_count_every_recurrence() {
        let mut seen = HashSet::default();
        assert_eq!(duplicates(["ab", "c", "ab", "ab", "é"], &mut seen), (2, 4));
    }

    #[test]
    fn lengths_are_code_points() {
        assert_eq!(char_len("héllo…"), 6);
        assert_eq!(count_str("a.....b...", "..."), 2);
    }
}
