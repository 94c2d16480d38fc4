//! Hand-written forms of the two split regexes that byte-level BPE tokenizers nearly always use:
//! GPT-2's, and cl100k's (Llama 3 uses the same one). Running the regex engine was three quarters
//! of encoding time; these matchers walk the text once, byte by byte where it is ASCII.
//!
//! They give exactly the regex's matches:
//! - each one tries the regex's alternatives in the regex's order, and where an alternative
//!   backtracks, the comments say what it gives back;
//! - the character classes (`\p{L}`, `\p{N}`, `\s`) are asked of the same regex engine, once per
//!   code point that the text holds, so they agree with it on every Unicode detail.
//!
//! Tests compare both matchers with the regex on random text built from awkward characters, and
//! the case-insensitive contractions on every code point of the Basic Multilingual Plane.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use tokenizers::utils::SysRegex;

/// GPT-2's byte regex, the one `ByteLevel { use_regex: true }` splits with.
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// tiktoken's `cl100k_base` regex, which Llama 3's `tokenizer.json` carries in a `Split`.
pub const CL100K_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A split regex this module reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Gpt2,
    Cl100k,
}

impl Split {
    /// The matcher for `pattern`, when it is one of the two regexes above, character for
    /// character.
    #[must_use]
    pub fn for_pattern(pattern: &str) -> Option<Self> {
        match pattern {
            GPT2_PATTERN => Some(Self::Gpt2),
            CL100K_PATTERN => Some(Self::Cl100k),
            _ => None,
        }
    }

    /// Calls `word` with every match of the regex in `text`, in order. Every character starts a
    /// match of both regexes, so the matches cover the text and there are no gaps between them.
    pub fn for_each_word<E>(
        self,
        text: &str,
        mut word: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let classes = Classes::get();
        let mut i = 0;
        while i < text.len() {
            let end = match self {
                Self::Gpt2 => gpt2_match(classes, text, i),
                Self::Cl100k => cl100k_match(classes, text, i),
            };
            word(&text[i..end])?;
            i = end;
        }
        Ok(())
    }
}

/// The end of GPT-2's match at `i`.
fn gpt2_match(cl: &Classes, s: &str, i: usize) -> usize {
    let t = s.as_bytes();
    // 's|'t|'re|'ve|'m|'ll|'d
    if t[i] == b'\''
        && let Some(n) = contraction(&t[i + 1..])
    {
        return i + 1 + n;
    }
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: the space is taken when a run of one of the three
    // classes follows it. Without it the run would have to start at the space, and cannot.
    let j = if t[i] == b' ' && i + 1 < t.len() {
        i + 1
    } else {
        i
    };
    let (class, _) = cl.at(s, j);
    if class != SPACE {
        return cl.run_end(s, j, class);
    }
    whitespace_match(cl, s, i, false)
}

/// The end of cl100k's match at `i`.
fn cl100k_match(cl: &Classes, s: &str, i: usize) -> usize {
    let t = s.as_bytes();
    let b = t[i];
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if b == b'\''
        && let Some(n) = folded_contraction(&s[i + 1..])
    {
        return i + 1 + n;
    }
    let (class, len) = cl.at(s, i);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if class == LETTER {
        return cl.run_end(s, i, LETTER);
    }
    let next = i + len;
    if class != NUMBER && b != b'\r' && b != b'\n' && next < t.len() && cl.at(s, next).0 == LETTER {
        return cl.run_end(s, next, LETTER);
    }
    // \p{N}{1,3}
    if class == NUMBER {
        let mut end = next;
        for _ in 0..2 {
            if end == t.len() {
                break;
            }
            let (c, n) = cl.at(s, end);
            if c != NUMBER {
                break;
            }
            end += n;
        }
        return end;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let j = if b == b' ' { next } else { i };
    if j < t.len() && cl.at(s, j).0 == OTHER {
        let mut end = cl.run_end(s, j, OTHER);
        while end < t.len() && matches!(t[end], b'\r' | b'\n') {
            end += 1;
        }
        return end;
    }
    whitespace_match(cl, s, i, true)
}

/// The end of the match at whitespace `i`, where no earlier alternative matched:
/// `\s*[\r\n]+` first when `line_breaks` (cl100k), then `\s+(?!\S)|\s+`.
fn whitespace_match(cl: &Classes, s: &str, i: usize, line_breaks: bool) -> usize {
    let t = s.as_bytes();
    let (mut end, mut last, mut after_break) = (i, i, None);
    while end < t.len() {
        let (c, n) = cl.at(s, end);
        if c != SPACE {
            break;
        }
        if line_breaks && matches!(t[end], b'\r' | b'\n') {
            after_break = Some(end + 1);
        }
        last = end;
        end += n;
    }
    // `\s*` gives back characters until `[\r\n]+` can match: up to the run's last line break.
    if let Some(e) = after_break {
        return e;
    }
    // `\s+(?!\S)` holds for the whole run at the end of the text. Before a non-space it gives back
    // the run's last character, which then starts the next match; a run of one character fails
    // it and `\s+` takes the character.
    if end == t.len() || last == i {
        end
    } else {
        last
    }
}

/// Bytes after an apostrophe that complete `'s|'t|'re|'ve|'m|'ll|'d`.
fn contraction(rest: &[u8]) -> Option<usize> {
    match rest {
        [b's' | b't' | b'm' | b'd', ..] => Some(1),
        [b'r' | b'v', b'e', ..] | [b'l', b'l', ..] => Some(2),
        _ => None,
    }
}

/// `contraction` under Unicode case folding, where the long s `ſ` folds to `s` (a test checks
/// the other characters of the plane against the regex).
fn folded_contraction(rest: &str) -> Option<usize> {
    let fold = |c: char| {
        if c == 'ſ' {
            's'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let mut chars = rest.chars().map(|c| (fold(c), c.len_utf8()));
    let (a, a_len) = chars.next()?;
    let second = match a {
        's' | 't' | 'm' | 'd' => return Some(a_len),
        'r' | 'v' => 'e',
        'l' => 'l',
        _ => return None,
    };
    let (b, b_len) = chars.next()?;
    (b == second).then_some(a_len + b_len)
}

const UNKNOWN: u8 = 0;
const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const SPACE: u8 = 3;
/// Neither a letter, a number nor whitespace: `[^\s\p{L}\p{N}]`.
const OTHER: u8 = 4;

const CODE_POINTS: usize = 0x11_0000;

/// Each character's class, as the regex engine sees it. The classes are disjoint Unicode
/// categories (`L`, `N`, and `\s` = `Zs`, `Zl`, `Zp` and a few controls), so one value each.
struct Classes {
    letter: SysRegex,
    number: SysRegex,
    space: SysRegex,
    ascii: [u8; 128],
    /// Filled the first time a code point is met (`UNKNOWN` until then). Shared by all threads:
    /// a race only asks the engine twice for the same answer.
    wide: Box<[AtomicU8]>,
}

impl Classes {
    fn get() -> &'static Self {
        static CLASSES: OnceLock<Classes> = OnceLock::new();
        CLASSES.get_or_init(|| {
            let regex = |p: &str| SysRegex::new(p).expect("a valid class regex");
            let mut c = Self {
                letter: regex(r"\p{L}"),
                number: regex(r"\p{N}"),
                space: regex(r"\s"),
                ascii: [UNKNOWN; 128],
                wide: std::iter::repeat_with(|| AtomicU8::new(UNKNOWN))
                    .take(CODE_POINTS)
                    .collect(),
            };
            for b in 0..128u8 {
                c.ascii[usize::from(b)] = c.ask(char::from(b));
            }
            c
        })
    }

    fn ask(&self, c: char) -> u8 {
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        let is = |r: &SysRegex| r.find_iter(s).next().is_some();
        if is(&self.letter) {
            LETTER
        } else if is(&self.number) {
            NUMBER
        } else if is(&self.space) {
            SPACE
        } else {
            OTHER
        }
    }

    /// The class and UTF-8 length of the character at byte `i` of `s`.
    // Always inlined: as a call it was 8 % of encoding; the non-ASCII path stays out of line.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn at(&self, s: &str, i: usize) -> (u8, usize) {
        let b = s.as_bytes()[i];
        if b < 0x80 {
            return (self.ascii[usize::from(b)], 1);
        }
        self.wide_at(s, i)
    }

    #[inline(never)]
    fn wide_at(&self, s: &str, i: usize) -> (u8, usize) {
        let c = s[i..].chars().next().expect("i is a char boundary");
        let slot = &self.wide[c as usize];
        let mut class = slot.load(Ordering::Relaxed);
        if class == UNKNOWN {
            class = self.ask(c);
            slot.store(class, Ordering::Relaxed);
        }
        (class, c.len_utf8())
    }

    /// The end of the run of `class` characters from `i`.
    #[inline]
    fn run_end(&self, s: &str, mut i: usize, class: u8) -> usize {
        let t = s.as_bytes();
        // ASCII first, a byte and a table load per step; the general loop takes over at the first
        // other byte.
        while i < t.len() && t[i] < 0x80 && self.ascii[usize::from(t[i])] == class {
            i += 1;
        }
        while i < s.len() {
            let (c, n) = self.at(s, i);
            if c != class {
                break;
            }
            i += n;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex_words(regex: &SysRegex, text: &str) -> Vec<String> {
        regex
            .find_iter(text)
            .map(|(a, b)| text[a..b].to_owned())
            .collect()
    }

    fn split_words(split: Split, text: &str) -> Vec<String> {
        let mut words = Vec::new();
        split
            .for_each_word(text, |w| {
                words.push(w.to_owned());
                Ok::<(), ()>(())
            })
            .unwrap();
        words
    }

    /// Characters where the regexes' alternatives meet: every kind of whitespace and line break,
    /// apostrophes and the letters of the contractions in both cases (and `ſ`, which folds to
    /// `s`), letters and numbers from several scripts (`Nl` and `No` as well as digits),
    /// combining marks (neither letters nor numbers), symbols and emoji beyond the BMP.
    const ALPHABET: &[char] = &[
        ' ', ' ', ' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}', '\u{85}', '\u{a0}', '\u{2028}',
        '\u{3000}', '\u{1c}', '\'', '\'', '\'', 's', 'S', 'ſ', 't', 'T', 'r', 'R', 'e', 'E', 'v',
        'V', 'm', 'M', 'l', 'L', 'd', 'D', 'a', 'z', 'é', 'ß', 'Ж', 'ж', 'א', 'ع', '漢', 'か', '0',
        '7', '٣', '½', 'Ⅻ', '²', '\u{301}', '\u{94d}', '.', ',', '!', '-', '_', '(', '"', '«', '—',
        '€', '🤗', '𝔸', '\u{200b}', '\u{feff}', '\u{1}',
    ];

    #[test]
    fn matchers_agree_with_the_regexes_on_random_text() {
        let mut rng = crate::test_rng::XorShift::new(0x2545_F491_4F6C_DD1D);
        for (split, pattern) in [(Split::Gpt2, GPT2_PATTERN), (Split::Cl100k, CL100K_PATTERN)] {
            assert_eq!(Split::for_pattern(pattern), Some(split));
            let regex = SysRegex::new(pattern).unwrap();
            for _ in 0..30_000 {
                let len = rng.below(24);
                let text: String = (0..len)
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect();
                let words = split_words(split, &text);
                assert_eq!(words, regex_words(&regex, &text), "{split:?} on {text:?}");
                assert_eq!(words.concat(), text);
            }
        }
    }

    #[test]
    fn matchers_agree_with_the_regexes_on_prose_and_code() {
        let text = "He said: \"I'm sure it's fine, we'll see -- they've gone.\"\r\n\
            \tdef f(x):\n        return x**2  # 1234567 £3.50\n\n\n  \n\
            Ярослав's O'NEILL'S WE'LL don'T 東京タワーは2024年に... 🤗🤗 ok   \n";
        for (split, pattern) in [(Split::Gpt2, GPT2_PATTERN), (Split::Cl100k, CL100K_PATTERN)] {
            let regex = SysRegex::new(pattern).unwrap();
            assert_eq!(split_words(split, text), regex_words(&regex, text));
        }
    }

    /// Every character of the BMP, and every 13th beyond it, in places that exercise its class and
    /// the contractions' case folding: the whole split must equal the regex's.
    #[test]
    fn matchers_agree_with_the_regexes_on_every_character() {
        for (split, pattern) in [(Split::Gpt2, GPT2_PATTERN), (Split::Cl100k, CL100K_PATTERN)] {
            let regex = SysRegex::new(pattern).unwrap();
            let wide = (0x1_0000..0x11_0000).step_by(13);
            for code in (0..0x1_0000).chain(wide) {
                let Some(c) = char::from_u32(code) else {
                    continue;
                };
                for text in [
                    format!("'{c}"),
                    format!("'{c}e"),
                    format!("'{c}l"),
                    format!("'r{c}"),
                    format!("'l{c}"),
                    format!("a{c}b {c}1{c}{c}"),
                    format!("x {c}\n{c}  {c}"),
                    format!("{c} {c}.!\r\n"),
                ] {
                    assert_eq!(
                        split_words(split, &text),
                        regex_words(&regex, &text),
                        "{split:?} on {text:?} (U+{code:04X})"
                    );
                }
            }
        }
    }
}
